"""Greedy, sampling and beam search over any decoder with the PersonVLM ``decode`` signature.

Batch rules, and why: rows are independent requests batched only for throughput, so
* a row that emits ``<eos>`` leaves the batch at once (its KV cache rows are dropped through
  ``cache.reorder``), so it costs nothing more and nothing can be appended after its ``<eos>``;
* every choice (processors, top-k, the sampling generator, beam ranking) looks only at the row's
  own history, so a caption never depends on which other images shared the batch.

Cached decoding feeds the prompt once and then one token per step; ``use_cache=False`` feeds the
whole prefix every step. Both go through the same loop, so the only difference is the cache.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from personvlm.generation.config import GenerationConfig
from personvlm.generation.constraint import EOS_ID, CompactConstraint, ConstraintState
from personvlm.generation.processors import allowed_tokens, apply_repetition_penalty, filter_top_k_top_p

DecodeFn = Callable[[Tensor, Tensor, Any], tuple[Tensor, Any]]


class Decoder(Protocol):
    """Anything with ``decode(input_ids[B,T], visual[B,...], cache) -> (logits[B,T,V], cache)``.

    The cache (None on the first call) must offer ``reorder(index) -> cache`` selecting batch rows.
    """

    def decode(self, input_ids: Tensor, visual: Tensor, cache: Any = None) -> tuple[Tensor, Any]: ...


class _Stepper:
    """Runs the decoder for the rows still alive and keeps their inputs, visuals and cache aligned."""

    def __init__(self, decode: DecodeFn, visual: Tensor, prompt: Tensor, use_cache: bool) -> None:
        self.decode, self.visual, self.ids, self.use_cache = decode, visual, prompt, use_cache
        self.cache: Any = None

    def next_logits(self) -> Tensor:
        if self.use_cache:
            fed = self.ids if self.cache is None else self.ids[:, -1:]
            logits, self.cache = self.decode(fed, self.visual, self.cache)
        else:
            logits, _ = self.decode(self.ids, self.visual, None)
        return logits[:, -1].float()

    def advance(self, index: list[int], tokens: list[int]) -> None:
        """Keep rows ``index`` (in that order; repeats allowed) and append one token to each."""
        if index != list(range(self.ids.shape[0])):
            rows = torch.tensor(index, dtype=torch.long, device=self.ids.device)
            self.ids, self.visual = self.ids.index_select(0, rows), self.visual.index_select(0, rows)
            if self.cache is not None:
                reordered = self.cache.reorder(rows)
                self.cache = self.cache if reordered is None else reordered
        new = torch.tensor(tokens, dtype=self.ids.dtype, device=self.ids.device).unsqueeze(1)
        self.ids = torch.cat([self.ids, new], dim=1)


class _Rows:
    """Per-row decoding restrictions: grammar state, repetition penalty, no-repeat n-grams."""

    def __init__(self, config: GenerationConfig, constraints: list[CompactConstraint | None], eos_id: int) -> None:
        self.config, self.constraints, self.eos_id = config, constraints, eos_id
        self.states: list[ConstraintState | None] = [c.start() if c else None for c in constraints]
        if eos_id in config.suppress_tokens:
            raise ValueError(f"GenerationConfig.suppress_tokens must not contain <eos> ({eos_id}): rows could never end")
        self.suppress: Tensor | None = None

    def restrict(self, logits: Tensor, histories: list[list[int]], step: int) -> Tensor:
        """``logits`` of the live rows with penalties applied and forbidden tokens at ``-inf``."""
        cfg = self.config
        if cfg.repetition_penalty != 1.0:
            seen = torch.zeros_like(logits, dtype=torch.bool)
            for row, history in enumerate(histories):
                seen[row, history] = True
            logits = apply_repetition_penalty(logits, seen, cfg.repetition_penalty)
        budget = cfg.max_new_tokens - step
        if step == 0:
            for size in {c.vocab_size for c in self.constraints if c is not None} - {logits.shape[-1]}:
                raise ValueError(f"the constraint's vocabulary has {size} tokens but the model scores "
                                 f"{logits.shape[-1]}: build it from the model's own vocabulary")
            ids = [t for t in cfg.suppress_tokens if t < logits.shape[-1]]
            self.suppress = torch.tensor(ids, dtype=torch.long, device=logits.device) if ids else None
        if self.suppress is not None:
            logits = logits.index_fill(-1, self.suppress, -torch.inf)
        grammar = [c.allowed_ids(s, budget) if c is not None and s is not None else None
                   for c, s in zip(self.constraints, self.states, strict=True)]
        allowed = allowed_tokens(logits.shape[-1], histories, cfg.no_repeat_ngram_size, grammar, self.eos_id)
        if allowed is not None:
            logits = logits.masked_fill(~allowed.to(logits.device), -torch.inf)
        return logits

    def follow(self, index: list[int], tokens: list[int]) -> None:
        """Rows ``index`` of the current batch continue with ``tokens`` (in the new row order)."""
        self.constraints = [self.constraints[i] for i in index]
        states = [self.states[i] for i in index]
        self.states = [c.advance(s, t) if c is not None and s is not None else None
                       for c, s, t in zip(self.constraints, states, tokens, strict=True)]


def _sample_or_greedy(stepper: _Stepper, rows: _Rows, batch: int, config: GenerationConfig) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(batch)]
    alive = list(range(batch))  # original row of each live row
    generators = None
    if config.do_sample and config.seed is not None:
        generators = [torch.Generator().manual_seed(config.seed + i) for i in range(batch)]
    for step in range(config.max_new_tokens):
        logits = rows.restrict(stepper.next_logits(), [out[r] for r in alive], step)
        if config.do_sample:
            logits = filter_top_k_top_p(logits / config.temperature, config.top_k, config.top_p)
            probs = logits.softmax(dim=-1).cpu()
            tokens = [int(torch.multinomial(probs[j], 1, generator=generators[r] if generators else None))
                      for j, r in enumerate(alive)]
        else:
            tokens = logits.argmax(dim=-1).tolist()
        for r, token in zip(alive, tokens, strict=True):
            out[r].append(token)
        keep = [j for j, token in enumerate(tokens) if token != rows.eos_id]
        if not keep or step == config.max_new_tokens - 1:
            break
        alive = [alive[j] for j in keep]
        kept_tokens = [tokens[j] for j in keep]
        rows.follow(keep, kept_tokens)
        stepper.advance(keep, kept_tokens)
    return out


class _Hypotheses:
    """The best ``k`` finished captions of one beam-search row, ranked by length-penalised score."""

    def __init__(self, k: int, length_penalty: float) -> None:
        self.k, self.length_penalty = k, length_penalty
        self.items: list[tuple[float, list[int]]] = []  # ascending score

    def add(self, logprob: float, tokens: list[int]) -> None:
        score = logprob / max(len(tokens), 1) ** self.length_penalty
        if len(self.items) < self.k or score > self.items[0][0]:
            bisect.insort(self.items, (score, tokens), key=lambda item: item[0])
            del self.items[: max(0, len(self.items) - self.k)]

    def done(self, best_running: float, length: int, max_length: int, early_stopping: bool) -> bool:
        """Whether no running beam can still enter the top ``k``."""
        if len(self.items) < self.k:
            return False
        if early_stopping:
            return True
        # Scores are log-probs (<= 0) and only fall; with a positive length penalty the best a
        # beam can reach is its current score spread over the longest allowed length.
        best_length = max_length if self.length_penalty > 0 else length
        return best_running / best_length ** self.length_penalty <= self.items[0][0]

    def best(self) -> list[int]:
        return self.items[-1][1] if self.items else []


def _beam_search(stepper: _Stepper, rows: _Rows, batch: int, config: GenerationConfig) -> list[list[int]]:
    k, eos = config.num_beams, rows.eos_id
    hyps = [_Hypotheses(k, config.length_penalty) for _ in range(batch)]
    alive = list(range(batch))  # batch rows still searching; each owns k consecutive beam rows
    scores = torch.zeros(batch, k)
    scores[:, 1:] = -torch.inf  # all beams start identical: expand only the first
    scores = scores.flatten()
    histories: list[list[int]] = [[] for _ in range(batch * k)]
    for step in range(config.max_new_tokens):
        logits = rows.restrict(stepper.next_logits(), histories, step)
        logprobs = logits.log_softmax(dim=-1)
        logprobs = logprobs.masked_fill(logprobs.isnan(), -torch.inf)  # a row with no legal token
        vocab = logprobs.shape[-1]
        candidates = (scores.unsqueeze(1) + logprobs.cpu()).view(len(alive), k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=-1)
        index: list[int] = []
        tokens: list[int] = []
        new_scores: list[float] = []
        still_alive: list[int] = []
        for a, b in enumerate(alive):
            picked: list[tuple[int, int, float]] = []
            for rank, (score, flat) in enumerate(zip(top_scores[a].tolist(), top_index[a].tolist(), strict=True)):
                if score == -torch.inf or len(picked) == k:
                    break
                row, token = a * k + flat // vocab, flat % vocab
                if token == eos:
                    if rank < k:
                        hyps[b].add(score, [*histories[row], eos])
                else:
                    picked.append((row, token, score))
            if not picked or hyps[b].done(picked[0][2], step + 1, config.max_new_tokens, config.early_stopping):
                continue
            if step == config.max_new_tokens - 1:
                for row, token, score in picked:
                    hyps[b].add(score, [*histories[row], token])
                continue
            picked += [(picked[0][0], picked[0][1], -torch.inf)] * (k - len(picked))  # dead filler beams
            still_alive.append(b)
            for row, token, score in picked:
                index.append(row)
                tokens.append(token)
                new_scores.append(score)
        if not still_alive:
            break
        alive = still_alive
        histories = [[*histories[row], token] for row, token in zip(index, tokens, strict=True)]
        scores = torch.tensor(new_scores)
        rows.follow(index, tokens)
        stepper.advance(index, tokens)
    return [h.best() for h in hyps]


def generate(
    model: Decoder | DecodeFn,
    visual: Tensor,
    prompt: Sequence[int] | Sequence[Sequence[int]] | Tensor,
    config: GenerationConfig | None = None,
    constraint: CompactConstraint | Sequence[CompactConstraint | None] | None = None,
    eos_id: int = EOS_ID,
) -> list[list[int]]:
    """Decode one caption per row of ``visual``.

    ``model`` is a PersonVLM (its ``decode``) or any function ``(input_ids, visual, cache) ->
    (logits, cache)``; call ``model.eval()`` first, dropout would make decoding random.
    ``prompt`` is the start of every row, e.g. ``[vocab.bos_id, vocab.style_id("compact")]``, or
    one equal-length prompt per row. ``constraint`` (one for all rows, or one per row, None =
    free) keeps rows inside the compact grammar; it raises ValueError when ``max_new_tokens`` is
    too short for the shortest caption it allows.

    Returns, per row, the generated token ids without the prompt, ending with ``<eos>`` when the
    row finished (no ``<eos>`` means it was cut at ``max_new_tokens``); nothing follows ``<eos>``.
    """
    config = config or GenerationConfig()
    decode: DecodeFn = model.decode if hasattr(model, "decode") else model  # type: ignore[assignment]
    batch = visual.shape[0]
    prompt_ids = _prompt_tensor(prompt, batch).to(visual.device)
    constraints = _per_row(constraint, batch)
    for row, c in enumerate(constraints):
        if c is not None and c.min_tokens() > config.max_new_tokens:
            raise ValueError(f"row {row}: the constraint's shortest caption needs {c.min_tokens()} tokens, "
                             f"more than max_new_tokens={config.max_new_tokens}")
    if batch == 0:
        return []
    k = config.num_beams
    with torch.no_grad():
        if k == 1:
            stepper = _Stepper(decode, visual, prompt_ids, config.use_cache)
            return _sample_or_greedy(stepper, _Rows(config, constraints, eos_id), batch, config)
        stepper = _Stepper(decode, visual.repeat_interleave(k, dim=0), prompt_ids.repeat_interleave(k, dim=0),
                           config.use_cache)
        beam_constraints = [c for c in constraints for _ in range(k)]
        return _beam_search(stepper, _Rows(config, beam_constraints, eos_id), batch, config)


def _prompt_tensor(prompt: Sequence[int] | Sequence[Sequence[int]] | Tensor, batch: int) -> Tensor:
    ids = torch.as_tensor(prompt, dtype=torch.long) if not isinstance(prompt, Tensor) else prompt.long()
    if ids.dim() == 1:
        ids = ids.unsqueeze(0).expand(batch, -1)
    if ids.dim() != 2 or ids.shape[0] != batch or ids.shape[1] == 0:
        raise ValueError(f"prompt: expected token ids [T] or [{batch}, T] with T >= 1, got shape {tuple(ids.shape)}")
    return ids


def _per_row(constraint: CompactConstraint | Sequence[CompactConstraint | None] | None,
             batch: int) -> list[CompactConstraint | None]:
    if constraint is None or isinstance(constraint, CompactConstraint):
        return [constraint] * batch
    constraints = list(constraint)
    if len(constraints) != batch:
        raise ValueError(f"constraint: expected one per row ({batch}), got {len(constraints)}")
    return constraints
