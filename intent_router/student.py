"""The local student: hashed word and character n-grams into a softmax layer.

It is trained on the teacher's soft labels (the weight vectors), so it learns how wordings map to
weights from examples; it never sees the teacher's lexicon or rules. Small (a few MB) and fast
(tens of microseconds per query).
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

from intent_router.text import normalise, quoted_spans

logger = logging.getLogger(__name__)

FEATURE_VERSION = 1
_DIGITS = re.compile(r"\d")


def feature_strings(query: str) -> list[str]:
    """Word unigrams and bigrams, char 3-5-grams inside words, and a few shape features."""
    words = normalise(query).split(" ")
    feats = ["bias"]
    feats += ["w:" + w for w in words]
    feats += ["b:" + a + " " + b for a, b in itertools.pairwise(words)]
    for w in words:
        padded = "<" + _DIGITS.sub("0", w) + ">"
        size = len(padded)
        for n in (3, 4, 5):
            feats += ["c:" + padded[i : i + n] for i in range(size - n + 1)]
    if quoted_spans(query):
        feats.append("s:quoted")
    for raw in query.split()[1:]:
        bare = raw.strip(".,;:!?\"'()")
        if bare[:1].isupper() and bare not in ("I", "I'll", "I'm", "I've", "I'd"):
            feats += ["s:capitalised", "W:" + bare]
    if len(words) <= 2:
        feats.append("s:short")
    elif len(words) >= 15:
        feats.append("s:long")
    return feats


def _hash(features: Sequence[str], n_buckets: int) -> np.ndarray:
    mask = n_buckets - 1
    return np.fromiter(
        (zlib.crc32(f.encode()) & mask for f in features), dtype=np.int64, count=len(features)
    )


def round_to_grid(probabilities: np.ndarray, step: float) -> np.ndarray:
    """Round each row to multiples of `step` that still sum to 1 (largest remainder)."""
    units = round(1 / step)
    scaled = probabilities * units
    floored = np.floor(scaled)
    remainder = scaled - floored
    missing = (units - floored.sum(axis=1)).astype(int)
    order = np.argsort(-remainder, axis=1, kind="stable")
    result = floored.copy()
    for row, extra in enumerate(missing):
        result[row, order[row, :extra]] += 1
    rounded: np.ndarray = result / units
    return rounded


@dataclass
class TrainingReport:
    epochs: int
    final_loss: float
    examples: int
    converged: bool


@dataclass
class HashedNgramStudent:
    """Multinomial logistic regression over hashed n-grams, trained on soft labels."""

    signals: tuple[str, ...]
    n_buckets: int = 2**18
    round_step: float = 0.05
    weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def __post_init__(self) -> None:
        if self.n_buckets & (self.n_buckets - 1):
            raise ValueError("n_buckets must be a power of two")
        k = len(self.signals)
        if self.weights.size == 0:
            self.weights = np.zeros((self.n_buckets, k), dtype=np.float32)
        if self.bias.size == 0:
            self.bias = np.zeros(k, dtype=np.float32)

    # -- features ---------------------------------------------------------------------------
    def _design(self, queries: Sequence[str]) -> scipy.sparse.csr_matrix:
        rows = [_hash(feature_strings(q), self.n_buckets) for q in queries]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(r) for r in rows])
        indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        values = np.concatenate([np.full(len(r), 1 / np.sqrt(len(r))) for r in rows])
        matrix = scipy.sparse.csr_matrix(
            (values, indices, indptr), shape=(len(rows), self.n_buckets)
        )
        matrix.sum_duplicates()
        return matrix

    # -- training ---------------------------------------------------------------------------
    def fit(
        self,
        queries: Sequence[str],
        soft_labels: np.ndarray,
        *,
        l2: float = 1e-6,
        max_iterations: int = 400,
        on_iteration: Callable[[int, int], None] | None = None,
    ) -> TrainingReport:
        """Minimise soft-label cross-entropy (plus L2) with L-BFGS."""
        x = self._design(queries)
        y = np.asarray(soft_labels, dtype=np.float64)
        n, k = y.shape
        if k != len(self.signals) or n != len(queries):
            raise ValueError("soft_labels must be (len(queries), len(signals))")
        used = np.unique(x.indices)
        logger.info("training on %d examples, %d active buckets", n, len(used))
        x_used = x[:, used]
        xt_used = x_used.T.tocsr()
        m = len(used)

        def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w = theta[: m * k].reshape(m, k)
            b = theta[m * k :]
            logits = x_used @ w + b
            logits -= logits.max(axis=1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            p = np.exp(log_p)
            loss = -(y * log_p).sum() / n + l2 * (w * w).sum()
            diff = (p - y) / n
            grad_w = xt_used @ diff + 2 * l2 * w
            grad_b = diff.sum(axis=0)
            return float(loss), np.concatenate([grad_w.ravel(), grad_b])

        iteration = 0

        def callback(_: np.ndarray) -> None:
            nonlocal iteration
            iteration += 1
            if on_iteration is not None:
                on_iteration(iteration, max_iterations)

        import scipy.optimize  # imported here: loading it costs ~0.5 s and only training needs it

        theta0 = np.zeros(m * k + k)
        result = scipy.optimize.minimize(
            loss_and_grad,
            theta0,
            jac=True,
            method="L-BFGS-B",
            callback=callback,
            options={"maxiter": max_iterations},
        )
        self.weights = np.zeros((self.n_buckets, k), dtype=np.float32)
        self.weights[used] = result.x[: m * k].reshape(m, k).astype(np.float32)
        self.bias = result.x[m * k :].astype(np.float32)
        return TrainingReport(
            epochs=int(result.nit),
            final_loss=float(result.fun),
            examples=n,
            converged=bool(result.success),
        )

    # -- inference --------------------------------------------------------------------------
    def predict_proba(self, queries: Sequence[str]) -> np.ndarray:
        """Unrounded weight vectors, one row per query."""
        feats = [_hash(feature_strings(q), self.n_buckets) for q in queries]
        lengths = np.fromiter((len(f) for f in feats), dtype=np.int64, count=len(feats))
        flat = np.concatenate(feats)
        starts = np.zeros(len(feats), dtype=np.int64)
        starts[1:] = np.cumsum(lengths)[:-1]
        sums = np.add.reduceat(self.weights[flat], starts, axis=0)
        logits = sums / np.sqrt(lengths)[:, None] + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
        return result

    def predict_weights(self, queries: Sequence[str]) -> np.ndarray:
        return round_to_grid(self.predict_proba(queries), self.round_step)

    def explain(self, query: str, signal: str, top: int = 3) -> list[str]:
        """The word features that pushed hardest towards `signal` for this query."""
        column = self.signals.index(signal)
        words = [f for f in feature_strings(query) if f.startswith(("w:", "b:"))]
        if not words:
            return []
        idx = _hash(words, self.n_buckets)
        w = self.weights[idx]
        push = w[:, column] - w.mean(axis=1)
        ranked = sorted(zip(push, words, strict=True), key=lambda p: -p[0])
        return [name[2:] for score, name in ranked[:top] if score > 0]

    # -- persistence ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        meta = {
            "signals": list(self.signals),
            "n_buckets": self.n_buckets,
            "round_step": self.round_step,
            "feature_version": FEATURE_VERSION,
        }
        np.savez_compressed(
            buffer, weights=self.weights, bias=self.bias, meta=np.array(json.dumps(meta))
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> HashedNgramStudent:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            if meta["feature_version"] != FEATURE_VERSION:
                raise ValueError(
                    f"student artifact has feature version {meta['feature_version']}, "
                    f"this code reads {FEATURE_VERSION}"
                )
            return cls(
                signals=tuple(meta["signals"]),
                n_buckets=int(meta["n_buckets"]),
                round_step=float(meta["round_step"]),
                weights=archive["weights"],
                bias=archive["bias"],
            )
