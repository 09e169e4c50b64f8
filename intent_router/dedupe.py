"""Merge, dedupe and split: exact (normalised) duplicates first, then near-duplicates (MinHash LSH
over character 4-grams). No holdout query keeps a near-duplicate in the training set."""

from __future__ import annotations

import zlib
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


def _minhashes(texts: list[str], num_perm: int) -> list[MinHash]:
    return list(
        MinHash.bulk(
            [list(shingles(t)) for t in texts], num_perm=num_perm, seed=1, hashfunc=zlib.crc32
        )
    )


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
) -> DedupeResult:
    """Drop exact then near duplicates; holdout rows near any training row are dropped too.

    Both frames need a `query` and a `cell` column; row order decides which duplicate survives.
    """
    train = train.reset_index(drop=True).assign(norm=lambda d: d["query"].map(normalise))
    holdout = holdout.reset_index(drop=True).assign(norm=lambda d: d["query"].map(normalise))

    train_exact = train["norm"].duplicated(keep="first")
    holdout_exact = holdout["norm"].duplicated(keep="first") | holdout["norm"].isin(
        set(train["norm"])
    )
    train = train.assign(layer=np.where(train_exact, "exact", ""))
    holdout = holdout.assign(layer=np.where(holdout_exact, "exact", ""))

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    keep_idx = train.index[train["layer"] == ""]
    train_hashes = _minhashes(train.loc[keep_idx, "norm"].tolist(), num_perm)
    near = []
    for idx, mh in zip(keep_idx, train_hashes, strict=True):
        if lsh.query(mh):
            near.append(idx)
        else:
            lsh.insert(f"t{idx}", mh)
    train.loc[near, "layer"] = "near"

    holdout_lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    keep_idx = holdout.index[holdout["layer"] == ""]
    holdout_hashes = _minhashes(holdout.loc[keep_idx, "norm"].tolist(), num_perm)
    near_train, near_self = [], []
    for idx, mh in zip(keep_idx, holdout_hashes, strict=True):
        if lsh.query(mh):
            near_train.append(idx)
        elif holdout_lsh.query(mh):
            near_self.append(idx)
        else:
            holdout_lsh.insert(f"h{idx}", mh)
    holdout.loc[near_train, "layer"] = "near-train"
    holdout.loc[near_self, "layer"] = "near"

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
    for column in ("", "exact", "near", "near-train"):
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
