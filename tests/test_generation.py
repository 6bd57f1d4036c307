"""Decoding algorithms on a toy history-dependent model, and KV-cache parity on the real decoder."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from personvlm.generation import GenerationConfig, generate
from personvlm.generation.processors import apply_repetition_penalty, banned_ngram_tokens, filter_top_k_top_p

EOS = 2
V = 7


class ToyCache:
    """Running token sum per row: enough state that a wrong ``reorder`` changes the logits."""

    def __init__(self, total: Tensor, length: int) -> None:
        self.total, self.length = total, length

    def reorder(self, index: Tensor) -> ToyCache:
        self.total = self.total.index_select(0, index)
        return self


class ToyDecoder:
    """logits_t = bigram[token_t] + history[(sum of tokens <= t) % V] + visual (a per-row bias ``[B, V]``).

    Records the batch size of every call, so tests can see finished rows leave the batch.
    """

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.bigram = torch.randn(V, V, generator=g) * 2
        self.history = torch.randn(V, V, generator=g) * 2
        self.batch_sizes: list[int] = []

    def decode(self, input_ids: Tensor, visual: Tensor, cache: ToyCache | None = None) -> tuple[Tensor, ToyCache]:
        self.batch_sizes.append(input_ids.shape[0])
        past = cache.total if cache is not None else torch.zeros(input_ids.shape[0], dtype=torch.long)
        sums = past.unsqueeze(1) + input_ids.cumsum(dim=1)
        logits = self.bigram[input_ids] + self.history[sums % V] + visual.unsqueeze(1)
        length = (cache.length if cache is not None else 0) + input_ids.shape[1]
        return logits, ToyCache(sums[:, -1], length)


def _visual(rows: int, seed: int = 1) -> Tensor:
    visual = torch.randn(rows, V, generator=torch.Generator().manual_seed(seed))
    visual[:, EOS] -= 1.0  # captions of a few tokens, not one
    return visual


def _logprob(model: ToyDecoder, visual: Tensor, prompt: list[int], tokens: list[int]) -> float:
    ids = torch.tensor([prompt + tokens])
    logits, _ = model.decode(ids, visual.unsqueeze(0))
    logp = logits[0].log_softmax(-1)
    start = len(prompt) - 1
    return sum(float(logp[start + i, t]) for i, t in enumerate(tokens))


PROMPT = [1, 4]


def _cfg(**settings: object) -> GenerationConfig:
    """The toy model has no special tokens: nothing is suppressed unless a test says so."""
    return GenerationConfig(**{"suppress_tokens": (), **settings})  # type: ignore[arg-type]


def test_greedy_matches_a_full_recompute_argmax_loop() -> None:
    model, visual = ToyDecoder(), _visual(1)
    expected: list[int] = []
    for _ in range(10):
        logits, _ = model.decode(torch.tensor([PROMPT + expected]), visual)
        expected.append(int(logits[0, -1].argmax()))
        if expected[-1] == EOS:
            break
    assert generate(model, visual, PROMPT, _cfg(max_new_tokens=10)) == [expected]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_search_finds_the_exhaustive_best_caption(length_penalty: float) -> None:
    model, visual = ToyDecoder(seed=3), _visual(1, seed=4)
    steps = 3
    candidates = [list(seq[:i]) + [EOS] for seq in itertools.product([t for t in range(V) if t != EOS], repeat=steps)
                  for i in range(steps)] + [list(s) for s in itertools.product(
                      [t for t in range(V) if t != EOS], repeat=steps)]

    def score(tokens: list[int]) -> float:
        return _logprob(model, visual[0], PROMPT, tokens) / len(tokens) ** length_penalty

    best = max({tuple(c) for c in candidates}, key=lambda c: score(list(c)))
    config = _cfg(max_new_tokens=steps, num_beams=V * V, length_penalty=length_penalty)
    assert generate(model, visual, PROMPT, config) == [list(best)]


CONFIGS = {
    "greedy": _cfg(max_new_tokens=12),
    "greedy+penalties": _cfg(max_new_tokens=12, repetition_penalty=1.5, no_repeat_ngram_size=2),
    "beam": _cfg(max_new_tokens=12, num_beams=3, length_penalty=1.0),
    "beam+penalties": _cfg(max_new_tokens=12, num_beams=4, repetition_penalty=1.3, no_repeat_ngram_size=2),
    "sample": _cfg(max_new_tokens=12, do_sample=True, temperature=1.5, top_k=5, top_p=0.9, seed=7),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_a_row_decodes_the_same_alone_or_in_a_batch(name: str) -> None:
    config, model, visual = CONFIGS[name], ToyDecoder(), _visual(3)
    together = generate(model, visual, PROMPT, config)
    for i in range(3):
        seed = None if config.seed is None else config.seed + i  # row i samples from generator seed + i
        alone_config = _cfg(**{**config.__dict__, "seed": seed})
        assert generate(model, visual[i:i + 1], PROMPT, alone_config) == [together[i]], f"row {i}"


@pytest.mark.parametrize("name", CONFIGS)
def test_kv_cached_toy_decoding_equals_recomputing_the_prefix(name: str) -> None:
    model, visual = ToyDecoder(seed=5), _visual(4, seed=6)
    cached = generate(model, visual, PROMPT, CONFIGS[name])
    uncached = generate(model, visual, PROMPT, _cfg(**{**CONFIGS[name].__dict__, "use_cache": False}))
    assert cached == uncached


def test_finished_rows_leave_the_batch_and_nothing_follows_eos() -> None:
    model, visual = ToyDecoder(), _visual(6, seed=2)
    visual[0, EOS] = 100.0  # row 0 ends at once
    visual[5, EOS] = -100.0  # row 5 never ends
    out = generate(model, visual, PROMPT, _cfg(max_new_tokens=8))
    assert out[0] == [EOS]
    assert len(out[5]) == 8 and EOS not in out[5]
    assert all(EOS not in row[:-1] for row in out), "a token after <eos> leaked"
    assert len({len(row) for row in out}) >= 3, "rows should finish at different steps"
    # Step t decodes exactly the rows that had not finished before it.
    assert model.batch_sizes == [sum(len(row) > t for row in out) for t in range(len(model.batch_sizes))]


def test_beam_search_rows_also_stop_at_eos() -> None:
    model = ToyDecoder()
    visual = torch.zeros(2, V)
    visual[0, EOS] = 100.0
    out = generate(model, visual, PROMPT, _cfg(max_new_tokens=5, num_beams=3, early_stopping=True))
    assert out[0] == [EOS]
    assert all(EOS not in row[:-1] for row in out)
    # Row 0 has its 3 finished hypotheses after step 2: its beams leave the batch.
    assert model.batch_sizes[:2] == [6, 6] and set(model.batch_sizes[2:]) == {3}


def test_no_repeat_ngram_keeps_every_generated_bigram_unique() -> None:
    model, visual = ToyDecoder(), _visual(5)
    visual[:, EOS] = -100.0
    for row in generate(model, visual, PROMPT, _cfg(max_new_tokens=20, no_repeat_ngram_size=2)):
        bigrams = list(itertools.pairwise(row))
        assert len(bigrams) == len(set(bigrams)), row


def test_repetition_penalty_reduces_repeats() -> None:
    model, visual = ToyDecoder(), _visual(8)
    visual[:, EOS] = -100.0

    def repeats(config: GenerationConfig) -> int:
        return sum(len(row) - len(set(row)) for row in generate(model, visual, PROMPT, config))

    assert repeats(_cfg(max_new_tokens=6, repetition_penalty=50.0)) < repeats(
        _cfg(max_new_tokens=6))


def test_sampling_is_seeded_and_top_k_1_is_greedy() -> None:
    model, visual = ToyDecoder(), _visual(6)
    sample = _cfg(max_new_tokens=10, do_sample=True, seed=3)
    assert generate(model, visual, PROMPT, sample) == generate(model, visual, PROMPT, sample)
    other = generate(model, visual, PROMPT, _cfg(max_new_tokens=10, do_sample=True, seed=4))
    assert other != generate(model, visual, PROMPT, sample)
    greedy = generate(model, visual, PROMPT, _cfg(max_new_tokens=10))
    top1 = _cfg(max_new_tokens=10, do_sample=True, top_k=1, seed=0)
    assert generate(model, visual, PROMPT, top1) == greedy


def test_special_tokens_other_than_eos_are_never_generated() -> None:
    model, visual = ToyDecoder(), _visual(4)
    visual[:, [0, 1, 3]] += 50.0  # <pad>, <bos>, <unk> would win every step
    for config in (GenerationConfig(max_new_tokens=10), GenerationConfig(max_new_tokens=10, num_beams=2),
                   GenerationConfig(max_new_tokens=10, do_sample=True, seed=0)):
        rows = generate(model, visual, PROMPT, config)
        assert all(t not in (0, 1, 3, 4, 5) for row in rows for t in row)
    free = generate(model, visual, PROMPT, GenerationConfig(max_new_tokens=10, suppress_tokens=()))
    assert all(t in (0, 1, 3) for row in free for t in row)
    with pytest.raises(ValueError, match="suppress_tokens"):
        generate(model, visual, PROMPT, GenerationConfig(suppress_tokens=(EOS,)))


def test_processors() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    seen = torch.tensor([[True, True, False]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, -4.0, 1.0]]
    assert banned_ngram_tokens([1, 2, 3, 1, 2], 3) == {3}
    assert banned_ngram_tokens([1, 2, 3], 1) == {1, 2, 3}
    assert banned_ngram_tokens([5], 3) == set()
    probs = torch.tensor([[0.5, 0.3, 0.2]]).log()
    kept = lambda out: torch.isfinite(out[0]).tolist()  # noqa: E731
    assert kept(filter_top_k_top_p(probs, 0, 0.6)) == [True, True, False]
    assert kept(filter_top_k_top_p(probs, 0, 0.5)) == [True, False, False]
    assert kept(filter_top_k_top_p(probs, 2, 1.0)) == [True, True, False]
    assert math.isclose(float(filter_top_k_top_p(probs, 0, 1.0)[0, 2].exp()), 0.2, rel_tol=1e-6)


@pytest.mark.parametrize(("field", "value"), [
    ("max_new_tokens", 0), ("num_beams", 0), ("temperature", 0.0), ("top_k", -1), ("top_p", 0.0),
    ("top_p", 1.5), ("repetition_penalty", 0.0), ("no_repeat_ngram_size", -2),
])
def test_bad_settings_are_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        GenerationConfig(**{field: value})


def test_sampling_with_beams_and_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="do_sample"):
        GenerationConfig(num_beams=2, do_sample=True)
    model, visual = ToyDecoder(), _visual(2)
    with pytest.raises(ValueError, match="prompt"):
        generate(model, visual, [[1, 4]] * 3)
    with pytest.raises(ValueError, match="prompt"):
        generate(model, visual, [])
    assert generate(model, visual[:0], PROMPT) == [] and model.batch_sizes == []


# --- the real decoder ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    from personvlm.models.config import ModelConfig
    from personvlm.models.personvlm import PersonVLM

    torch.manual_seed(0)
    config = ModelConfig(encoder="tiny_cnn", pretrained=False, width=64, layers=2, heads=4, vocab_size=40,
                         max_len=64, dropout=0.0)
    model = PersonVLM(config).eval()
    with torch.no_grad():  # sharper than the init's near-uniform logits, so choices are clear-cut
        model.decoder.tok.weight.mul_(40.0)
    return model


@pytest.mark.parametrize("name", ["greedy", "beam", "beam+penalties", "sample"])
def test_kv_cached_decoding_gives_the_tokens_of_uncached_decoding(tiny_model: torch.nn.Module, name: str) -> None:
    visual = torch.randn(3, 8, 64, generator=torch.Generator().manual_seed(0))
    config = _cfg(**{**CONFIGS[name].__dict__, "max_new_tokens": 20})
    cached = generate(tiny_model, visual, PROMPT, config)
    uncached = generate(tiny_model, visual, PROMPT, _cfg(**{**config.__dict__, "use_cache": False}))
    assert cached == uncached
    assert any(len(row) > 3 for row in cached), "too short to show anything"
