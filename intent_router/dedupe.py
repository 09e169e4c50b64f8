"""Merge, dedupe and split: exact (normalised) duplicates first, then near-duplicates (MinHash LSH
over character 4-grams). No holdout query keeps a near-duplicate in the training set."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from datasketch import MinHash, MinHashLSH

from intent_router.text import normalise

SHINGLE = 4


def shingles(text: str) -> set[bytes]:
    padded = f" {text} "
    if len(padded) <= SHINGLE:
        return {padded.encode()}
    return {padded[i : i + SHINGLE].encode() for i in range(len(padded) - SHINGLE + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(normalise(a)), shingles(normalise(b))
    return len(sa & sb) / len(sa | sb)


class NearIndex:
    """MinHash LSH for candidates (at a lower threshold, for recall), exact Jaccard to confirm."""

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.lsh = MinHashLSH(threshold=max(0.3, threshold - 0.25), num_perm=num_perm)
        self.sets: list[set[bytes]] = []

    def sketches(self, texts: list[str]) -> list[tuple[MinHash, set[bytes]]]:
        sets = [shingles(t) for t in texts]
        hashes = MinHash.bulk(
            [list(s) for s in sets], num_perm=self.num_perm, seed=1, hashfunc=zlib.crc32
        )
        return list(zip(hashes, sets, strict=True))

    def find_near(self, mh: MinHash, sh: set[bytes]) -> int | None:
        """Position (in insertion order) of an indexed set at or above the threshold."""
        for key in sorted(self.lsh.query(mh)):
            other = self.sets[key]
            if len(sh & other) / len(sh | other) >= self.threshold:
                return int(key)
        return None

    def has_near(self, mh: MinHash, sh: set[bytes]) -> bool:
        return self.find_near(mh, sh) is not None

    def add(self, mh: MinHash, sh: set[bytes]) -> None:
        self.lsh.insert(len(self.sets), mh)
        self.sets.append(sh)


@dataclass
class DedupeResult:
    train: pd.DataFrame
    holdout: pd.DataFrame
    report: pd.DataFrame  # one row per (split, cell): generated, exact, near, kept


def dedupe_and_split(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    threshold: float = 0.85,
    num_perm: int = 64,
    exclude: Sequence[str] = (),
) -> DedupeResult:
    """Drop exact then near duplicates; holdout rows near any training row are dropped too.

    Both frames need a `query` and a `cell` column; row order decides which duplicate survives.
    `exclude` (e.g. the golden set) is evaluation-only: a training or holdout row that is an
    exact or near duplicate of one of them is dropped (layer "excluded").
    """
    train = train.reset_index(drop=True).assign(norm=lambda d: d["query"].map(normalise))
    holdout = holdout.reset_index(drop=True).assign(norm=lambda d: d["query"].map(normalise))

    train_exact = train["norm"].duplicated(keep="first")
    holdout_exact = holdout["norm"].duplicated(keep="first") | holdout["norm"].isin(
        set(train["norm"])
    )
    train = train.assign(layer=np.where(train_exact, "exact", ""))
    holdout = holdout.assign(layer=np.where(holdout_exact, "exact", ""))

    excluded_index = NearIndex(threshold, num_perm)
    excluded_norms = sorted({normalise(q) for q in exclude})
    for mh, sh in excluded_index.sketches(excluded_norms) if excluded_norms else []:
        excluded_index.add(mh, sh)
    excluded_set = set(excluded_norms)

    train_index = NearIndex(threshold, num_perm)
    keep_idx = train.index[train["layer"] == ""]
    near, excluded = [], []
    norms = train.loc[keep_idx, "norm"].tolist()
    sketches = train_index.sketches(norms)
    for idx, norm, (mh, sh) in zip(keep_idx, norms, sketches, strict=True):
        if norm in excluded_set or excluded_index.has_near(mh, sh):
            excluded.append(idx)
        elif train_index.has_near(mh, sh):
            near.append(idx)
        else:
            train_index.add(mh, sh)
    train.loc[near, "layer"] = "near"
    train.loc[excluded, "layer"] = "excluded"

    holdout_index = NearIndex(threshold, num_perm)
    keep_idx = holdout.index[holdout["layer"] == ""]
    near_train, near_self, excluded = [], [], []
    norms = holdout.loc[keep_idx, "norm"].tolist()
    sketches = holdout_index.sketches(norms)
    for idx, norm, (mh, sh) in zip(keep_idx, norms, sketches, strict=True):
        if norm in excluded_set or excluded_index.has_near(mh, sh):
            excluded.append(idx)
        elif train_index.has_near(mh, sh):
            near_train.append(idx)
        elif holdout_index.has_near(mh, sh):
            near_self.append(idx)
        else:
            holdout_index.add(mh, sh)
    holdout.loc[near_train, "layer"] = "near-train"
    holdout.loc[near_self, "layer"] = "near"
    holdout.loc[excluded, "layer"] = "excluded"

    report = pd.concat(
        [_layer_report(train, "train"), _layer_report(holdout, "holdout")], ignore_index=True
    )
    return DedupeResult(
        train=train[train["layer"] == ""].drop(columns=["layer"]).reset_index(drop=True),
        holdout=holdout[holdout["layer"] == ""].drop(columns=["layer"]).reset_index(drop=True),
        report=report,
    )


def _layer_report(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    counts = pd.crosstab(frame["cell"], frame["layer"])
    for column in ("", "exact", "near", "near-train", "excluded"):
        if column not in counts:
            counts[column] = 0
    report = pd.DataFrame(
        {
            "split": split,
            "cell": counts.index,
            "generated": counts.sum(axis=1).to_numpy(),
            "exact_dropped": counts["exact"].to_numpy(),
            "near_dropped": counts["near"].to_numpy(),
            "near_train_dropped": counts["near-train"].to_numpy(),
            "excluded_dropped": counts["excluded"].to_numpy(),
            "kept": counts[""].to_numpy(),
        }
    )
    return report.reset_index(drop=True)


def leaked_pairs(
    train_queries: list[str], holdout_queries: list[str], threshold: float
) -> list[tuple[str, str, float]]:
    """Exact Jaccard check (all pairs): holdout queries too similar to a training query."""
    train_sets = [shingles(normalise(q)) for q in train_queries]
    leaks = []
    for hq in holdout_queries:
        hs = shingles(normalise(hq))
        for tq, ts in zip(train_queries, train_sets, strict=True):
            score = len(hs & ts) / len(hs | ts)
            if score >= threshold:
                leaks.append((hq, tq, score))
    return leaks
