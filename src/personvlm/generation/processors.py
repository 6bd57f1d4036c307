"""Logit processors shared by greedy, sampling and beam search: each works row by row on ``[R, V]``.

They only ever look at a row's own history, which is what keeps decoding batch-independent.
"""

from __future__ import annotations

import torch
from torch import Tensor


def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL-style penalty on tokens already generated (``seen``: bool ``[R, V]``)."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def banned_ngram_tokens(history: list[int], n: int) -> set[int]:
    """Tokens that would repeat an ``n``-gram already in ``history``."""
    if n <= 0 or len(history) < n - 1:
        return set()
    if n == 1:
        return set(history)
    prefix = history[len(history) - n + 1:]
    return {history[i + n - 1] for i in range(len(history) - n + 1) if history[i:i + n - 1] == prefix}


def allowed_tokens(
    vocab_size: int, histories: list[list[int]], n: int, grammar: list[list[int] | None], eos_id: int
) -> Tensor | None:
    """Bool ``[R, V]`` of tokens each row may emit, or None when nothing is restricted.

    ``grammar`` holds each row's legal tokens (constrained decoding; None = free) and is binding;
    the no-repeat-ngram ban yields where it would leave a row with no legal token, and never
    bans ``<eos>``. Built with one scatter per step: per-row tensors would cost more than the
    tiny decoder itself.
    """
    if n <= 0 and all(g is None for g in grammar):
        return None
    allowed: list[int] = []  # flat indices row * V + token
    banned_free: list[int] = []
    free_rows: list[int] = []
    for row, (history, legal) in enumerate(zip(histories, grammar, strict=True)):
        banned = banned_ngram_tokens(history, n) - {eos_id} if n > 0 else set()
        base = row * vocab_size
        if legal is None:
            free_rows.append(row)
            banned_free += [base + t for t in banned]
        else:
            kept = [t for t in legal if t not in banned] if banned else legal
            allowed += [base + t for t in kept or legal]
    mask = torch.zeros(len(grammar) * vocab_size, dtype=torch.bool)
    if allowed:
        mask[torch.tensor(allowed, dtype=torch.long)] = True
    for row in free_rows:
        mask[row * vocab_size:(row + 1) * vocab_size] = True
    if banned_free:
        mask[torch.tensor(banned_free, dtype=torch.long)] = False
    return mask.view(len(grammar), vocab_size)


def filter_top_k_top_p(logits: Tensor, top_k: int, top_p: float) -> Tensor:
    """Keep the ``top_k`` best tokens and the smallest set whose probability reaches ``top_p``."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability mass strictly before each token
        drop_sorted = before >= top_p
        drop_sorted[..., 0] = False  # always keep the best token
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, -torch.inf)
    return logits
