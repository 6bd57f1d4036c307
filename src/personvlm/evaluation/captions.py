"""Corpus-level caption metrics computed exactly as the COCO caption toolkit (pycocoevalcap 1.2)
computes them: BLEU-1..4 ("closest" reference length), ROUGE-L (beta 1.2) and CIDEr-D.

Why a port instead of a dependency: pycocoevalcap is 104 MB of GPL jars and needs a JVM, and a
home-made "CIDEr" is how the previous implementation reported numbers nobody could compare.
This port keeps the toolkit's arithmetic, including its quirks, because the point is that our
numbers mean what published numbers mean:

- tokens come from ``ptb_tokenizer.tokenize`` (PTB tokenisation, lower-cased, punctuation dropped);
- BLEU and CIDEr split on whitespace (an empty caption has no words), ROUGE-L splits on a single
  space (an empty caption is one empty word), as the reference does;
- ROUGE-L takes the best precision and the best recall over references independently;
- CIDEr-D's Gaussian length penalty compares *bigram* counts (the reference's ``n == 1``), its
  document frequencies and log corpus size come from the references being scored.

``tests/test_caption_metrics.py`` checks agreement to 1e-6 with values the real toolkit produced
(``tests/fixtures/coco_caption_fixtures.json``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from personvlm.evaluation.ptb_tokenizer import tokenize_joined

METRIC_NAMES: tuple[str, ...] = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D")
MAX_N = 4
ROUGE_BETA = 1.2
CIDER_SIGMA = 6.0

NGramCounts = dict[tuple[str, ...], int]


def ngram_counts(words: Sequence[str], n: int = MAX_N) -> NGramCounts:
    """All 1..n-gram counts of a word list."""
    counts: NGramCounts = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i:i + k])] += 1
    return counts


def _check(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
    if not candidates:
        raise ValueError("no captions to score")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(f"item {i}: expected a non-empty list of reference captions, got {refs!r}")


# --- BLEU --------------------------------------------------------------------------------------
def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Corpus BLEU-1..4 on already tokenised captions (space-joined), as ``BleuScorer`` with
    option "closest": clipped n-gram matches and the closest reference length (ties to the
    shorter) are summed over the corpus before the geometric mean and the brevity penalty."""
    tiny, small = 1e-15, 1e-9
    guess, correct = [0] * MAX_N, [0] * MAX_N
    test_total, ref_total = 0, 0
    for cand, refs in zip(candidates, references, strict=True):
        max_counts: NGramCounts = {}
        ref_lens = []
        for ref in refs:
            words = ref.split()
            ref_lens.append(len(words))
            for gram, count in ngram_counts(words).items():
                max_counts[gram] = max(max_counts.get(gram, 0), count)
        words = cand.split()
        test_len = len(words)
        test_total += test_len
        ref_total += min((abs(length - test_len), length) for length in ref_lens)[1]
        for k in range(MAX_N):
            guess[k] += max(0, test_len - k)
        for gram, count in ngram_counts(words).items():
            correct[len(gram) - 1] += min(max_counts.get(gram, 0), count)
    scores, product = [], 1.0
    for k in range(MAX_N):
        product *= float(correct[k] + tiny) / (guess[k] + small)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (test_total + tiny) / (ref_total + small)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


# --- ROUGE-L -----------------------------------------------------------------------------------
def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l_single(candidate: str, refs: Sequence[str]) -> float:
    """ROUGE-L F-score of one caption: best precision and best recall over ``refs``."""
    cand = candidate.split(" ")
    precisions, recalls = [], []
    for ref in refs:
        ref_words = ref.split(" ")
        lcs = _lcs(ref_words, cand)
        precisions.append(lcs / float(len(cand)))
        recalls.append(lcs / float(len(ref_words)))
    p, r = max(precisions), max(recalls)
    if p == 0 or r == 0:
        return 0.0
    return ((1 + ROUGE_BETA**2) * p * r) / float(r + ROUGE_BETA**2 * p)


def rouge_l(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Per-caption ROUGE-L (the corpus score is their mean)."""
    return [rouge_l_single(c, refs) for c, refs in zip(candidates, references, strict=True)]


# --- CIDEr-D -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TfIdf:
    """tf-idf weights per n-gram order, their L2 norms, and the bigram count used as "length"."""

    vec: tuple[dict[tuple[str, ...], float], ...]
    norm: tuple[float, ...]
    length: int


class CiderD:
    """CIDEr-D with document frequencies from a fixed reference corpus.

    Built once per corpus so that many candidate lists (the model, the image-blind baseline,
    every candidate baseline caption) are scored against the same statistics cheaply.
    """

    def __init__(self, references: Sequence[Sequence[str]], sigma: float = CIDER_SIGMA) -> None:
        self.sigma = sigma
        ref_counts = [[ngram_counts(r.split()) for r in refs] for refs in references]
        self.df: dict[tuple[str, ...], int] = defaultdict(int)
        for refs in ref_counts:
            for gram in {g for counts in refs for g in counts}:
                self.df[gram] += 1
        self.log_n = np.log(float(len(ref_counts)))
        self.refs = [[self._tfidf(c) for c in refs] for refs in ref_counts]
        self._postings: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] | None = None

    def _tfidf(self, counts: NGramCounts) -> _TfIdf:
        vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(MAX_N)]
        norm = [0.0] * MAX_N
        length = 0
        for gram, tf in counts.items():
            df = np.log(max(1.0, self.df.get(gram, 0)))
            n = len(gram) - 1
            vec[n][gram] = float(tf) * (self.log_n - df)
            norm[n] += pow(vec[n][gram], 2)
            if n == 1:
                length += tf
        return _TfIdf(tuple(vec), tuple(float(np.sqrt(x)) for x in norm), length)

    def _sim(self, hyp: _TfIdf, ref: _TfIdf) -> np.ndarray:
        delta = float(hyp.length - ref.length)
        val = np.zeros(MAX_N)
        for n in range(MAX_N):
            ref_vec = ref.vec[n]
            for gram, weight in hyp.vec[n].items():
                ref_weight = ref_vec.get(gram, 0.0)
                val[n] += min(weight, ref_weight) * ref_weight
            if hyp.norm[n] != 0 and ref.norm[n] != 0:
                val[n] /= hyp.norm[n] * ref.norm[n]
            val[n] *= np.e ** (-(delta**2) / (2 * self.sigma**2))
        return val

    def _score(self, hyp: _TfIdf, index: int) -> float:
        refs = self.refs[index]
        total = np.zeros(MAX_N)
        for ref in refs:
            total += self._sim(hyp, ref)
        return float(np.mean(total) / len(refs) * 10.0)

    def constant_score(self, candidate: str) -> float:
        """Corpus CIDEr-D if ``candidate`` were the answer for every item, i.e.
        ``mean(scores([candidate] * N))`` (equal up to float rounding), computed through an
        inverted index so that ranking hundreds of baseline candidates stays cheap."""
        flat = [ref for refs in self.refs for ref in refs]
        if self._postings is None:
            lists: dict[tuple[str, ...], list[tuple[int, float]]] = defaultdict(list)
            for i, ref in enumerate(flat):
                for vec in ref.vec:
                    for gram, weight in vec.items():
                        lists[gram].append((i, weight))
            self._postings = {g: (np.array([i for i, _ in p]), np.array([w for _, w in p])) for g, p in lists.items()}
        hyp = self._tfidf(ngram_counts(candidate.split()))
        dots = np.zeros((len(flat), MAX_N))
        for n in range(MAX_N):
            for gram, weight in hyp.vec[n].items():
                if gram in self._postings:
                    idx, ref_weight = self._postings[gram]
                    dots[idx, n] += np.minimum(weight, ref_weight) * ref_weight
        denom = np.array(hyp.norm)[None, :] * np.array([ref.norm for ref in flat])
        val = np.where(denom != 0, dots / np.where(denom != 0, denom, 1.0), dots)
        delta = hyp.length - np.array([ref.length for ref in flat], dtype=float)
        val *= np.exp(-(delta**2) / (2 * self.sigma**2))[:, None]
        owner = np.repeat(np.arange(len(self.refs)), [len(refs) for refs in self.refs])
        per_item = np.bincount(owner, weights=val.mean(1)) / np.array([len(refs) for refs in self.refs]) * 10.0
        return float(per_item.mean())

    def scores_at(self, candidate: str, index: int) -> float:
        """CIDEr-D of one candidate against the references of item ``index``."""
        return self._score(self._tfidf(ngram_counts(candidate.split())), index)

    def scores(self, candidates: Sequence[str]) -> list[float]:
        """Per-item CIDEr-D of a candidate list aligned with the reference corpus."""
        if len(candidates) != len(self.refs):
            raise ValueError(f"{len(candidates)} candidates for {len(self.refs)} reference items")
        vectors: dict[str, _TfIdf] = {}  # a baseline repeats one caption N times: weigh it once
        for c in candidates:
            if c not in vectors:
                vectors[c] = self._tfidf(ngram_counts(c.split()))
        return [self._score(vectors[c], i) for i, c in enumerate(candidates)]


# --- public API --------------------------------------------------------------------------------
def tokenize_corpus(candidates: Sequence[str], references: Sequence[Sequence[str]]
                    ) -> tuple[list[str], list[list[str]]]:
    """Tokenise candidates and references the way ``COCOEvalCap`` does before scoring."""
    _check(candidates, references)
    return ([tokenize_joined(c) for c in candidates],
            [[tokenize_joined(r) for r in refs] for refs in references])


def caption_metrics(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """BLEU-1..4, ROUGE-L and CIDEr-D of raw captions against any number of raw references each."""
    cands, refs = tokenize_corpus(candidates, references)
    return scores_tokenized(cands, refs, CiderD(refs))


def scores_tokenized(cands: Sequence[str], refs: Sequence[Sequence[str]], cider: CiderD) -> dict[str, float]:
    """The six metrics on tokenised captions, with a prepared CIDEr-D for ``refs``."""
    out = dict(zip(METRIC_NAMES[:4], bleu(cands, refs), strict=True))
    out["ROUGE-L"] = float(np.mean(np.array(rouge_l(cands, refs))))
    out["CIDEr-D"] = float(np.mean(np.array(cider.scores(cands))))
    return out


@dataclass(frozen=True)
class Baseline:
    """The image-blind baseline caption, the item it was taken from, and its six metrics."""

    caption: str
    source_item: int
    scores: dict[str, float]


def consensus_caption(references: Sequence[Sequence[str]], max_candidates: int = 500, seed: int = 0) -> Baseline:
    """The image-blind baseline: the one reference caption that, given as the answer for every
    *other* item, scores the highest corpus CIDEr-D against their references.

    This is the strongest "always say the same thing" system a caption metric can be compared
    with; a model that does not beat it is not looking at the image. The caption is scored
    leave-one-out, on every item except the one it was copied from (which it would match
    perfectly, a leak worth 10/N CIDEr-D on small sets). The pool is every reference caption,
    or ``max_candidates`` of them drawn with ``seed`` on big corpora. Needs two or more items.
    """
    raw_refs = [list(r) for r in references]
    if len(raw_refs) < 2:
        raise ValueError(f"an image-blind baseline needs at least 2 items, got {len(raw_refs)}")
    _, refs = tokenize_corpus([""] * len(raw_refs), raw_refs)
    first: dict[str, tuple[str, int]] = {}
    for item, (tok_refs, raws) in enumerate(zip(refs, raw_refs, strict=True)):
        for tok, raw in zip(tok_refs, raws, strict=True):
            first.setdefault(tok, (raw, item))
    pool = sorted(first)
    if len(pool) > max_candidates:
        rng = np.random.default_rng(seed)
        pool = [pool[i] for i in sorted(rng.choice(len(pool), max_candidates, replace=False))]
    cider = CiderD(refs)
    n = len(refs)

    def leave_one_out(tok: str) -> float:
        item = first[tok][1]
        return (cider.constant_score(tok) * n - cider.scores_at(tok, item)) / (n - 1)

    best = max(pool, key=leave_one_out)
    raw, item = first[best]
    others = refs[:item] + refs[item + 1:]
    return Baseline(raw, item, scores_tokenized([best] * len(others), others, CiderD(others)))
