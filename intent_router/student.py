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
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse

from intent_router.taxonomy import Taxonomy
from intent_router.text import is_content_word, normalise, quoted_spans, words_of

logger = logging.getLogger(__name__)

FEATURE_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 artifacts have no prior and no known-word mask
_DIGITS = re.compile(r"\d")
_NOT_NAMES = ("I", "I'll", "I'm", "I've", "I'd")
CHAR_NGRAMS = (3, 4, 5)  # character n-gram sizes inside words
LENGTH_NORM = 0.5  # a query's features each count n ** -LENGTH_NORM (n: how many it has)
_WORD_CACHE_LIMIT = 200_000
_STRIP = ".,;:!?\"'()"


def knowledge_keys(query: str) -> list[int]:
    """32-bit keys of a query's content words and their 5-letter pieces: what `informed`
    looks up. A word counts as known when it, or a piece of it, was in a training query."""
    keys = []
    for word in normalise(query).split(" "):
        if is_content_word(word):
            keys.append(zlib.crc32(word.encode()))
            padded = "<" + word + ">"
            keys += [zlib.crc32(padded[i : i + 5].encode()) for i in range(len(padded) - 4)]
    return keys


def _word_features(word: str) -> list[str]:
    padded = "<" + _DIGITS.sub("0", word) + ">"
    size = len(padded)
    feats = ["w:" + word]
    for n in CHAR_NGRAMS:
        feats += ["c:" + padded[i : i + n] for i in range(size - n + 1)]
    return feats


def _query_features(query: str, words: list[str]) -> list[str]:
    """Features of the whole query: word bigrams and a few shape features."""
    feats = ["bias"]
    feats += ["b:" + a + " " + b for a, b in itertools.pairwise(words)]
    if quoted_spans(query):
        feats.append("s:quoted")
    rest = query[1:]
    if rest != rest.lower():  # some capital letter after the first character
        for raw in query.split()[1:]:
            bare = raw.strip(_STRIP)
            if bare[:1].isupper() and bare not in _NOT_NAMES:
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


class _Encoder:
    """Feature ids of queries, and whether each is informed, in one pass.

    Each word's ids (and whether the model knows it) are worked out once and remembered, so
    serving costs a normalisation, a few dictionary lookups and the bigrams per query."""

    def __init__(
        self,
        n_buckets: int,
        known: set[int] | None,
        phrases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.mask = n_buckets - 1
        self.known = known
        self.phrases = dict(phrases or {})
        self.first_words = {p.split(" ")[0] for p in self.phrases}
        self.longest = max((len(p.split(" ")) for p in self.phrases), default=0)
        self._words: dict[str, tuple[list[int], bool]] = {}
        self._features: dict[str, int] = {}

    def _word(self, word: str) -> tuple[list[int], bool]:
        entry = self._words.get(word)
        if entry is None:
            if len(self._words) >= _WORD_CACHE_LIMIT:
                self._words.clear()
            mask, known = self.mask, self.known
            ids = [zlib.crc32(f.encode()) & mask for f in _word_features(word)]
            is_known = known is not None and any(k in known for k in knowledge_keys(word))
            entry = self._words[word] = (ids, is_known)
        return entry

    def __call__(self, query: str) -> tuple[list[int], bool]:
        """(feature ids, informed): informed when the model has no record of what it knows, or
        the query has a known content word, a quote or a capitalised name."""
        words = words_of(query)
        features = self._features
        ids: list[int] = []
        informed = self.known is None
        query_features = _query_features(query, words)
        if self.first_words:
            found = self._phrase_features(words)
            query_features += found
            informed = informed or bool(found)
        for feature in query_features:
            value = features.get(feature)
            if value is None:
                if len(features) >= _WORD_CACHE_LIMIT:
                    features.clear()
                value = features[feature] = zlib.crc32(feature.encode()) & self.mask
            ids.append(value)
            informed = informed or feature.startswith(("s:quoted", "W:"))
        for word in words:
            word_ids, is_known = self._word(word)
            ids += word_ids
            informed = informed or is_known
        return ids, informed

    def _phrase_features(self, words: list[str]) -> list[str]:
        """Features of the taxonomy phrases in the query (longest match first)."""
        out: list[str] = []
        i = 0
        while i < len(words):
            if words[i] in self.first_words:
                for n in range(min(self.longest, len(words) - i), 0, -1):
                    found = self.phrases.get(" ".join(words[i : i + n]))
                    if found is not None:
                        out += found
                        i += n - 1
                        break
            i += 1
        return out


def taxonomy_phrases(taxonomy: Taxonomy) -> dict[str, tuple[str, ...]]:
    """The taxonomy's own vocabulary as student features: each attribute value gives its
    attribute and the signals it informs; each signal cue gives its signal. Learned weights of
    these features carry over to values the training queries never mentioned."""
    phrases: dict[str, list[str]] = {}
    for attribute in taxonomy.attributes:
        informed = [f"tx:{s}" for s, affinity in attribute.informs.items() if affinity >= 0.5]
        for value in attribute.values:
            key = normalise(value)
            if key:
                phrases.setdefault(key, []).extend([f"ta:{attribute.name}", *informed])
    for signal in taxonomy.signals:
        for cue in signal.cues:
            key = normalise(cue)
            if key:
                phrases.setdefault(key, []).append(f"tc:{signal.name}")
    return {k: tuple(dict.fromkeys(v)) for k, v in sorted(phrases.items())}


def round_to_grid(probabilities: np.ndarray, step: float) -> np.ndarray:
    """Round each row to multiples of `step` that still sum to 1 (largest remainder)."""
    units = round(1 / step)
    if probabilities.shape[0] == 1:
        return _round_row(probabilities[0], units)[None, :]
    scaled = probabilities * units
    floored = np.floor(scaled)
    remainder = scaled - floored
    missing = (units - floored.sum(axis=1)).astype(int)
    order = np.argsort(-remainder, axis=1, kind="stable")
    rank = np.empty_like(order)  # each entry's place in its row's remainder order
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :], axis=1)
    rounded: np.ndarray = (floored + (rank < missing[:, None])) / units
    return rounded


def _round_row(row: np.ndarray, units: int) -> np.ndarray:
    scaled = [float(p) * units for p in row]
    floored = [float(int(v)) for v in scaled]
    missing = units - int(sum(floored))
    order = sorted(range(len(scaled)), key=lambda i: -(scaled[i] - floored[i]))
    for i in order[:missing]:
        floored[i] += 1
    return np.array(floored) / units


@dataclass
class TrainingReport:
    epochs: int
    final_loss: float
    examples: int
    converged: bool


@dataclass
class HashedNgramStudent:
    """Multinomial logistic regression over hashed n-grams, trained on soft labels.

    It remembers the content words (and their 5-letter pieces) it saw in training; a query
    with none of them and no quote or capitalised name gets the training prior instead of a
    guess from the bias.
    """

    signals: tuple[str, ...]
    n_buckets: int = 2**18
    round_step: float = 0.05
    weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    prior: np.ndarray | None = None  # mean soft label of the training set
    phrases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # taxonomy_phrases()
    known: np.ndarray | None = None  # sorted uint32 knowledge keys of the training queries

    def __post_init__(self) -> None:
        if self.n_buckets & (self.n_buckets - 1):
            raise ValueError("n_buckets must be a power of two")
        k = len(self.signals)
        if self.weights.size == 0:
            self.weights = np.zeros((self.n_buckets, k), dtype=np.float32)
        if self.bias.size == 0:
            self.bias = np.zeros(k, dtype=np.float32)
        self._reset_encoder()

    def _reset_encoder(self) -> None:
        known = set(self.known.tolist()) if self.known is not None else None
        self._encode = _Encoder(self.n_buckets, known, self.phrases)
        self._push_cache: dict[str, list[float]] = {}

    # -- features ---------------------------------------------------------------------------
    def _design(self, queries: Sequence[str]) -> scipy.sparse.csr_matrix:
        rows = [self._encode(q)[0] for q in queries]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(r) for r in rows])
        indices = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=indptr[-1])
        values = np.concatenate([np.full(len(r), len(r) ** -LENGTH_NORM) for r in rows])
        matrix = scipy.sparse.csr_matrix(
            (values, indices, indptr), shape=(len(rows), self.n_buckets)
        )
        matrix.sum_duplicates()
        return matrix

    def informed(self, query: str) -> bool:
        """True when the query has a quote, a capitalised name or a content word (or a piece
        of one) seen in training."""
        return self._encode(query)[1]

    # -- training ---------------------------------------------------------------------------
    def fit(
        self,
        queries: Sequence[str],
        soft_labels: np.ndarray,
        *,
        l2: float = 1e-6,
        max_iterations: int = 300,
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
        from threadpoolctl import threadpool_limits

        theta0 = np.zeros(m * k + k)
        # L-BFGS-B's vector updates are memory-bound BLAS calls; BLAS threads only contend
        # with each other and with the rest of the run (7x slower on a busy 2-core machine).
        with threadpool_limits(limits=1, user_api="blas"):
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
        self.prior = y.mean(axis=0).astype(np.float32)
        self.known = np.unique(
            np.fromiter((k for q in queries for k in knowledge_keys(q)), dtype=np.uint32)
        )
        self._reset_encoder()
        return TrainingReport(
            epochs=int(result.nit),
            final_loss=float(result.fun),
            examples=n,
            converged=bool(result.success),
        )

    # -- inference --------------------------------------------------------------------------
    def predict_proba(self, queries: Sequence[str]) -> np.ndarray:
        """Unrounded weight vectors, one row per query (the prior for an uninformed guess)."""
        return self._proba_informed(queries)[0]

    def _proba_informed(self, queries: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """(predict_proba, whether each query got the prior), encoding each query once."""
        prior = self.prior
        if len(queries) == 1:  # the serving case: plain floats beat numpy calls on 4 numbers
            ids, informed = self._encode(queries[0])
            if prior is not None and not informed:
                return np.asarray(prior, dtype=np.float64)[None, :], [True]
            scale = len(ids) ** -LENGTH_NORM
            sums = self.weights[ids].sum(axis=0).tolist()
            raw = [v * scale + b for v, b in zip(sums, self.bias.tolist(), strict=True)]
            top = max(raw)
            exps = [math.exp(v - top) for v in raw]
            total = sum(exps)
            return np.array([[e / total for e in exps]]), [False]
        flat: list[int] = []
        lengths: list[int] = []
        uninformed: list[int] = []
        for row, query in enumerate(queries):
            ids, informed = self._encode(query)
            flat += ids
            lengths.append(len(ids))
            if not informed:
                uninformed.append(row)
        size = np.array(lengths, dtype=np.int64)
        starts = np.zeros(len(lengths), dtype=np.int64)
        starts[1:] = np.cumsum(size)[:-1]
        sums = np.add.reduceat(self.weights[np.array(flat, dtype=np.int64)], starts, axis=0)
        logits = sums * (size**-LENGTH_NORM)[:, None] + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
        gave_prior = [False] * len(queries)
        if prior is not None and uninformed:
            result[uninformed] = prior
            for row in uninformed:
                gave_prior[row] = True
        return result, gave_prior

    def predict_weights(self, queries: Sequence[str]) -> np.ndarray:
        return round_to_grid(self.predict_proba(queries), self.round_step)

    def predict_weights_and_prior(self, queries: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """`predict_weights`, and for each query whether it is the training prior."""
        proba, gave_prior = self._proba_informed(queries)
        return round_to_grid(proba, self.round_step), gave_prior

    def answers_prior(self, query: str) -> bool:
        """True when `predict_proba` gives this query the training prior (nothing it knows)."""
        return self.prior is not None and not self.informed(query)

    def explain(self, query: str, signal: str, top: int = 3) -> list[str]:
        """The content words (and content-word pairs) that pushed hardest towards `signal`."""
        return self.explain_signals(query, [signal], top)[0]

    def explain_signals(self, query: str, signals: Sequence[str], top: int = 3) -> list[list[str]]:
        """`explain` for several signals, the query's candidates looked up once."""
        words = words_of(query)
        content = [is_content_word(w) for w in words]
        candidates = ["w:" + w for w, keep in zip(words, content, strict=True) if keep]
        candidates += [
            "b:" + words[i] + " " + words[i + 1]
            for i in range(len(words) - 1)
            if content[i] and content[i + 1]
        ]
        if not candidates:
            return [[] for _ in signals]
        pushes = self._pushes(candidates)
        out: list[list[str]] = []
        for signal in signals:
            column = self.signals.index(signal)
            scores = [p[column] for p in pushes]
            ranked = sorted(range(len(candidates)), key=scores.__getitem__, reverse=True)
            cues: list[str] = []
            for index in ranked:
                if scores[index] <= 0 or len(cues) == top:
                    break
                cue = candidates[index][2:]
                if not any(cue in c.split(" ") or c in cue.split(" ") for c in cues):
                    cues.append(cue)
            out.append(cues)
        return out

    def _pushes(self, candidates: list[str]) -> list[list[float]]:
        """Per candidate feature, how far its weight for each signal is above its mean
        (remembered: the weights do not change after training)."""
        cache = self._push_cache
        missing = [c for c in candidates if c not in cache]
        if missing:
            if len(cache) >= _WORD_CACHE_LIMIT:
                cache.clear()
            w = self.weights[_hash(missing, self.n_buckets)]
            push = w - w.mean(axis=1, keepdims=True)
            cache.update(zip(missing, push.tolist(), strict=True))
        return [cache[c] for c in candidates]

    # -- persistence ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        meta = {
            "signals": list(self.signals),
            "n_buckets": self.n_buckets,
            "round_step": self.round_step,
            "feature_version": FEATURE_VERSION,
            "phrases": self.phrases,
        }
        arrays: dict[str, Any] = {"weights": self.weights, "bias": self.bias}
        if self.prior is not None and self.known is not None:
            arrays["prior"] = self.prior
            arrays["known"] = self.known
        np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> HashedNgramStudent:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            if meta["feature_version"] not in READABLE_VERSIONS:
                raise ValueError(
                    f"student artifact has feature version {meta['feature_version']}, "
                    f"this code reads {', '.join(map(str, READABLE_VERSIONS))}"
                )
            n_buckets = int(meta["n_buckets"])
            prior = known = None
            if "prior" in archive.files and "known" in archive.files:
                prior, known = archive["prior"], archive["known"]
            return cls(
                signals=tuple(meta["signals"]),
                n_buckets=n_buckets,
                round_step=float(meta["round_step"]),
                weights=archive["weights"],
                bias=archive["bias"],
                prior=prior,
                known=known,
                phrases={k: tuple(v) for k, v in meta.get("phrases", {}).items()},
            )
