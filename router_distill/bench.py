"""Benchmark (filled in below)."""

from __future__ import annotations

import argparse


def run_bench(args: argparse.Namespace) -> int:
    raise NotImplementedError
