"""Constrained compact decoding: every caption parses, and heads' values can be forced exactly."""

from __future__ import annotations

import random

import pytest
import torch

from personvlm.data.vocab import Vocab
from personvlm.generation import CompactConstraint, GenerationConfig, generate
from personvlm.generation.constraint import _grammar
from personvlm.schema import ATTRIBUTES, UNKNOWN, PersonDescription, parse_compact, to_compact
from personvlm.schema.compact import compact_slots
from personvlm.schema.description import normalise

WIDTH = 64


def _schema_vocab(replace: dict[str, str] | None = None) -> Vocab:
    phrases = [phrase for _, table, _ in compact_slots() for phrase in table]
    return Vocab([(replace or {}).get(t, t) for t in Vocab.build([*phrases, ","]).itos])


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return _schema_vocab()


@pytest.fixture(scope="module")
def model(vocab: Vocab) -> torch.nn.Module:
    from personvlm.models.config import ModelConfig
    from personvlm.models.personvlm import PersonVLM

    torch.manual_seed(0)
    config = ModelConfig(encoder="tiny_cnn", pretrained=False, width=WIDTH, layers=2, heads=4,
                         vocab_size=len(vocab), max_len=128, dropout=0.0)
    return PersonVLM(config).eval()


def _visual(rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, 8, WIDTH, generator=torch.Generator().manual_seed(seed))


def _prompt(vocab: Vocab) -> list[int]:
    return [vocab.bos_id, vocab.style_id("compact")]


def _random_description(rng: random.Random) -> PersonDescription:
    values: dict[str, object] = {}
    for a in ATTRIBUTES:
        if a.multi:
            values[a.name] = UNKNOWN if rng.random() < 0.1 else tuple(v for v in a.values if rng.random() < 0.3)
        else:
            values[a.name] = rng.choice([*a.values, UNKNOWN])
    return PersonDescription.from_values(values)


def test_500_sampled_compact_captions_from_a_random_model_all_parse(vocab: Vocab, model: torch.nn.Module) -> None:
    config = GenerationConfig(max_new_tokens=64, do_sample=True, temperature=2.0, seed=0)
    rows = generate(model, _visual(500), _prompt(vocab), config, CompactConstraint(vocab))
    captions = [vocab.decode(row) for row in rows]
    assert all(row[-1] == vocab.eos_id for row in rows)
    unparsed = [c for c in captions if parse_compact(c) is None]
    assert unparsed == []
    assert [c for c in captions if to_compact(parse_compact(c)) != c] == [], "every caption is canonical"
    assert len(set(captions)) > 300, "the sample should explore the grammar, not repeat one caption"
    assert max(len(row) for row in rows) > 10


def _exact_values(vocab: Vocab, d: PersonDescription) -> CompactConstraint:
    return CompactConstraint(vocab, {name: {value} for name, value in d.values().items()})


@pytest.mark.parametrize("config", [GenerationConfig(max_new_tokens=80), GenerationConfig(max_new_tokens=80, num_beams=3)],
                         ids=["greedy", "beam"])
@pytest.mark.parametrize("build", [CompactConstraint.agreeing_with, _exact_values], ids=["pinned", "automaton"])
def test_agreeing_with_a_description_decodes_exactly_its_values(
        vocab: Vocab, model: torch.nn.Module, config: GenerationConfig, build: object) -> None:
    rng = random.Random(1)
    descriptions = [_random_description(rng) for _ in range(12)]
    descriptions.append(parse_compact(""))  # nothing to say (no bag, no hat, all else unknown): empty caption
    constraints = [build(vocab, d) for d in descriptions]  # type: ignore[operator]
    rows = generate(model, _visual(13, seed=1), _prompt(vocab), config, constraints)
    uncached = GenerationConfig(**{**config.__dict__, "use_cache": False})
    assert generate(model, _visual(13, seed=1), _prompt(vocab), uncached, constraints) == rows
    assert rows[-1] == [vocab.eos_id]
    for row, d in zip(rows, descriptions, strict=True):
        parsed = parse_compact(vocab.decode(row))
        assert parsed is not None and parsed.values() == d.values(), (vocab.decode(row), to_compact(d))


def test_allowed_values_restrict_without_fixing_everything(vocab: Vocab, model: torch.nn.Module) -> None:
    allowed = {"upper_color": {"red", "blue"}, "gender": {"female"}, "bags": {(), ("backpack", "handbag")}}
    config = GenerationConfig(max_new_tokens=64, do_sample=True, temperature=2.0, seed=1)
    rows = generate(model, _visual(100, seed=2), _prompt(vocab), config, CompactConstraint(vocab, allowed))
    parsed = [parse_compact(vocab.decode(row)) for row in rows]
    assert all(p is not None for p in parsed)
    assert {p.value("upper_color") for p in parsed} == {"red", "blue"}
    assert {p.value("gender") for p in parsed} == {"female"}
    assert {p.value("bags") for p in parsed} == {(), ("backpack", "handbag")}
    assert len({p.value("upper_type") for p in parsed}) > 5, "unrestricted attributes stay free"


def _random_walk(constraint: CompactConstraint, rng: random.Random, budget: int = 64) -> list[int]:
    """A caption drawn uniformly token by token from what the constraint allows."""
    state, ids = constraint.start(), []
    while not state.finished:
        token = rng.choice(constraint.allowed_mask(state, budget - len(ids)).nonzero().flatten().tolist())
        state = constraint.advance(state, token)
        ids.append(token)
    return ids


def test_random_restrictions_yield_only_canonical_captions_with_allowed_values(vocab: Vocab) -> None:
    rng = random.Random(5)
    feasible = 0
    for _ in range(40):
        allowed: dict[str, set[object]] = {}
        for a in ATTRIBUTES:
            if rng.random() < 0.4:
                choices = [UNKNOWN, (), *((v,) for v in a.values)] if a.multi else [UNKNOWN, *a.values]
                allowed[a.name] = set(rng.sample(choices, rng.randint(1, 3)))
        try:
            constraint = CompactConstraint(vocab, allowed)
        except ValueError:
            continue  # e.g. only "unknown" hair colour but only "bald" length: nothing to say fits
        feasible += 1
        for _ in range(10):
            ids = _random_walk(constraint, rng)
            caption = vocab.decode(ids)
            parsed = parse_compact(caption)
            assert parsed is not None and to_compact(parsed) == caption, caption
            assert len(ids) <= 64
            for name, values in allowed.items():
                assert parsed.value(name) in {normalise(name, v) for v in values}, (caption, name, values)
    assert feasible > 20


def test_a_short_budget_still_ends_with_a_complete_caption(vocab: Vocab, model: torch.nn.Module) -> None:
    rng = random.Random(2)
    description = _random_description(rng)
    constraint = CompactConstraint.agreeing_with(vocab, description)
    shortest = constraint.min_tokens()
    config = GenerationConfig(max_new_tokens=shortest, do_sample=True, seed=0)
    (row,) = generate(model, _visual(1), _prompt(vocab), config, constraint)
    assert row[-1] == vocab.eos_id and len(row) <= shortest
    assert parse_compact(vocab.decode(row)).values() == description.values()
    free = CompactConstraint(vocab)
    rows = generate(model, _visual(50), _prompt(vocab), GenerationConfig(max_new_tokens=4, do_sample=True, seed=0),
                    free)
    assert all(r[-1] == vocab.eos_id and parse_compact(vocab.decode(r)) is not None for r in rows)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, _visual(1), _prompt(vocab), GenerationConfig(max_new_tokens=shortest - 1), constraint)


def test_grammar_masks_eos_after_a_separator_and_at_the_start(vocab: Vocab) -> None:
    constraint = CompactConstraint(vocab)
    state = constraint.start()
    assert not constraint.allowed_mask(state, 64)[vocab.eos_id]
    for word in ("male", ","):
        state = constraint.advance(state, vocab.stoi[word])
    mask = constraint.allowed_mask(state, 64)
    assert not mask[vocab.eos_id] and not mask[vocab.stoi[","]]
    assert mask[vocab.stoi["black"]] and not mask[vocab.stoi["female"]], "slots only move forward"
    with pytest.raises(ValueError, match="not allowed"):
        constraint.advance(state, vocab.eos_id)
    state = constraint.advance(state, vocab.stoi["black"])
    state = constraint.advance(state, vocab.stoi["hair"])
    assert constraint.allowed_mask(state, 64)[vocab.eos_id]
    assert not state.finished and constraint.advance(state, vocab.eos_id).finished


def test_repeatable_slots_take_distinct_items_in_order(vocab: Vocab) -> None:
    constraint = CompactConstraint(vocab)
    state = constraint.start()
    for word in ("handbag", ","):
        state = constraint.advance(state, vocab.stoi[word])
    mask = constraint.allowed_mask(state, 64)
    assert not mask[vocab.stoi["handbag"]] and not mask[vocab.stoi["backpack"]]  # repeated / out of order
    assert mask[vocab.stoi["paper"]] and mask[vocab.stoi["walking"]]
    state = constraint.advance(state, vocab.stoi["unknown"])  # "unknown held item" may follow...
    mask = constraint.allowed_mask(state, 64)
    assert mask[vocab.stoi["held"]] and not mask[vocab.stoi["bag"]]  # ...but not "unknown bag" after a bag


def test_the_top_placeholder_only_introduces_a_lower_dress(vocab: Vocab, model: torch.nn.Module) -> None:
    constraint = CompactConstraint(vocab)
    state = constraint.advance(constraint.start(), vocab.stoi["top"])
    assert not constraint.allowed_mask(state, 64)[vocab.eos_id]
    state = constraint.advance(state, vocab.stoi[","])
    mask = constraint.allowed_mask(state, 64)
    assert mask[vocab.stoi["dress"]] and mask[vocab.stoi["red"]]
    assert not mask[vocab.stoi["jeans"]] and not mask[vocab.stoi["walking"]]
    dress = parse_compact("").replace(lower_type="dress", lower_color="red")
    (row,) = generate(model, _visual(1), _prompt(vocab), GenerationConfig(max_new_tokens=16), _exact_values(vocab, dress))
    assert vocab.decode(row) == "top, red dress"


def test_phrases_the_vocabulary_cannot_spell_are_never_generated(model: torch.nn.Module) -> None:
    vocab = _schema_vocab(replace={"jacket": "anorak"})
    config = GenerationConfig(max_new_tokens=64, do_sample=True, temperature=2.0, seed=3)
    rows = generate(model, _visual(100), _prompt(vocab), config, CompactConstraint(vocab))
    assert all(vocab.unk_id not in row for row in rows)
    captions = [vocab.decode(row) for row in rows]
    assert all(parse_compact(c) is not None and "anorak" not in c for c in captions)
    with pytest.raises(ValueError, match="no compact caption"):
        CompactConstraint(vocab, {"upper_type": {"jacket"}})
    with pytest.raises(ValueError, match="no compact caption"):
        CompactConstraint.agreeing_with(vocab, PersonDescription.from_values({"upper_type": "jacket"}))


def test_a_constraint_from_another_vocabulary_is_refused(vocab: Vocab, model: torch.nn.Module) -> None:
    phrases = [phrase for _, table, _ in compact_slots() for phrase in table]
    other = Vocab.build([*phrases, ",", "extra"])
    with pytest.raises(ValueError, match="vocabulary has 104 tokens but the model scores 103"):
        generate(model, _visual(1), _prompt(vocab), GenerationConfig(), CompactConstraint(other))


def test_bad_allowed_values_are_refused_with_the_attribute_named(vocab: Vocab) -> None:
    with pytest.raises(ValueError, match="colour"):
        CompactConstraint(vocab, {"colour": {"red"}})
    with pytest.raises(ValueError, match="upper_color"):
        CompactConstraint(vocab, {"upper_color": {"red-ish"}})
    with pytest.raises(ValueError, match="string"):
        CompactConstraint(vocab, {"upper_color": "red"})
    with pytest.raises(ValueError, match="separator|','"):
        CompactConstraint(Vocab(["<pad>", "<bos>", "<eos>", "<unk>", "<compact>", "<natural>", "male"]))


def test_the_grammar_is_built_once_per_vocabulary(vocab: Vocab) -> None:
    assert _grammar(vocab) is _grammar(vocab)
    assert _grammar(_schema_vocab()) is not _grammar(vocab)
    first = CompactConstraint(vocab, {"gender": {"male"}})
    again = CompactConstraint(vocab, {"gender": {"male"}})
    assert first._automaton is again._automaton
