"""Vocabulary: tokenisation rules, id contract, round trips, size limits, OOV report, file errors."""

from __future__ import annotations

import json

import pytest

from personvlm.data.vocab import SPECIALS, Vocab, VocabError, detokenize, tokenize

CAPTION = ("The image shows an adult man (face partly visible). He wears a long-sleeved, "
           "dark-colored T-shirt and the person's bag is red.")


def test_punctuation_is_split_but_hyphens_and_apostrophes_stay():
    toks = tokenize(CAPTION)
    assert "visible" in toks and ")" in toks and "." in toks and "(" in toks
    assert not any(t.endswith((")", ".", ",")) and len(t) > 1 for t in toks)
    for word in ("long-sleeved", "dark-colored", "t-shirt", "person's"):
        assert word in toks
    assert tokenize("visible).") == ["visible", ")", "."]
    assert all(t == t.lower() for t in toks)


def test_special_ids_follow_the_contract():
    vocab = Vocab.build([CAPTION])
    assert vocab.itos[:6] == list(SPECIALS)
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.style_id("compact") == 4 and vocab.style_id("natural") == 5
    with pytest.raises(ValueError, match="caption style"):
        vocab.style_id("poetic")


def test_encode_decode_round_trip():
    compact = "male adult, short black hair, red long-sleeved jacket, blue jeans, backpack, walking, front view"
    vocab = Vocab.build([compact, CAPTION])
    ids = vocab.encode(compact, style="compact")
    assert ids[:2] == [vocab.bos_id, vocab.style_id("compact")] and ids[-1] == vocab.eos_id
    assert vocab.decode(ids) == compact
    assert vocab.decode(vocab.encode(CAPTION)) == detokenize(tokenize(CAPTION))
    assert vocab.decode(vocab.encode(CAPTION)).startswith("the image shows an adult man (face partly visible).")
    assert vocab.encode("red jacket", add_special=False) == [vocab.stoi["red"], vocab.stoi["jacket"]]


def test_decode_stops_at_eos_and_keeps_unknown_words_visible():
    vocab = Vocab.build(["red jacket"])
    ids = vocab.encode("red zebra jacket", style="natural")
    assert vocab.unk_id in ids
    assert vocab.decode(ids) == "red <unk> jacket"
    assert vocab.decode([*vocab.encode("red", add_special=False), vocab.eos_id, vocab.stoi["jacket"]]) == "red"


def test_min_freq_and_max_size():
    texts = ["red red red blue blue green"]
    assert "green" not in Vocab.build(texts, min_freq=2) and "blue" in Vocab.build(texts, min_freq=2)
    small = Vocab.build(texts, max_size=len(SPECIALS) + 1)
    assert len(small) == len(SPECIALS) + 1 and "red" in small and "blue" not in small
    assert Vocab.build(texts).itos == Vocab.build(texts).itos  # deterministic order


def test_oov_rate():
    vocab = Vocab.build(["a red jacket"])
    assert vocab.oov_rate(["a red jacket"]) == 0.0
    assert vocab.oov_rate(["a blue jacket", "a red coat"]) == pytest.approx(2 / 6)
    assert vocab.oov_rate([]) == 0.0


def test_save_load_round_trip(tmp_path):
    vocab = Vocab.build([CAPTION])
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocab.load(tmp_path / "vocab.json")
    assert loaded.itos == vocab.itos
    assert loaded.encode(CAPTION, style="natural") == vocab.encode(CAPTION, style="natural")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"words": []}', "expected"),
        (json.dumps({"tokens": ["a", "b"]}), "special tokens"),
        (json.dumps({"tokens": [*SPECIALS, "red", "red"]}), "duplicate"),
    ],
)
def test_bad_vocab_files_are_named(tmp_path, content, expected):
    path = tmp_path / "vocab.json"
    path.write_text(content)
    with pytest.raises(VocabError, match=expected) as err:
        Vocab.load(path)
    assert str(path) in str(err.value)


def test_missing_vocab_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        Vocab.load(tmp_path / "vocab.json")


def test_vocab_command_reports_oov_and_names_bad_lines(tmp_path):
    from typer.testing import CliRunner

    from personvlm.cli import app

    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in [
        {"image": "a.jpg", "answer": "A man in a red jacket.", "compact": "male adult, red jacket"},
        {"image": "b.jpg", "answer": "A woman in a red coat."},
    ]) + "\n")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"answer": "A man in a green jacket."}) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["data", "vocab", str(train), "--check", str(other), "--out", str(tmp_path / "v.json")])
    assert result.exit_code == 0, result.output
    assert "green (1)" in result.stdout and "14.2857%" in result.stdout  # 1 of 7 tokens
    assert "jacket" in Vocab.load(tmp_path / "v.json")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"answer": "ok"}\n{broken\n{"image": "x.jpg"}\n')
    result = runner.invoke(app, ["data", "vocab", str(bad)])
    assert result.exit_code == 1
    assert "bad.jsonl:2: not valid JSON" in result.stderr and "bad.jsonl:3: no caption text" in result.stderr
