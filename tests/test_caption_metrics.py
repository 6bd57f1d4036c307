"""Caption metrics agree with the COCO caption toolkit (pycocoevalcap 1.2) to 1e-6.

Expected values come from ``fixtures/coco_caption_fixtures.json``, written by
``fixtures/make_coco_fixtures.py`` with the real toolkit (Java PTBTokenizer included).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personvlm.evaluation.captions import METRIC_NAMES, CiderD, caption_metrics, consensus_caption, rouge_l_single
from personvlm.evaluation.ptb_tokenizer import tokenize, tokenize_joined

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "coco_caption_fixtures.json").read_text(encoding="utf-8"))
IDS = [case["name"] for case in FIXTURES]


def test_fixture_set_is_varied() -> None:
    assert len(FIXTURES) >= 20
    names = set(IDS)
    assert {"empty_candidate", "one_word", "multi_refs", "repeated_words", "longer_than_refs"} <= names


@pytest.mark.parametrize("case", FIXTURES, ids=IDS)
def test_tokenisation_matches_ptbtokenizer(case: dict) -> None:
    assert [tokenize_joined(c) for c in case["candidates"]] == case["tokenized_candidates"]
    assert [[tokenize_joined(r) for r in refs] for refs in case["references"]] == case["tokenized_references"]


@pytest.mark.parametrize("case", FIXTURES, ids=IDS)
def test_scores_match_pycocoevalcap(case: dict) -> None:
    got = caption_metrics(case["candidates"], case["references"])
    assert set(got) == set(METRIC_NAMES)
    for name, expected in case["expected"].items():
        assert got[name] == pytest.approx(expected, abs=1e-6), name


def test_tokenizer_splits_like_ptb() -> None:
    assert tokenize("A man's red (dark) T-shirt; he doesn't carry a bag...") == [
        "a", "man", "'s", "red", "-lrb-", "dark", "-rrb-", "t-shirt", "he", "does", "n't", "carry", "a", "bag"]
    assert tokenize("") == []
    assert tokenize("etc. e.g. 3.5 1,000 km/h") == ["etc.", "e.g.", "3.5", "1,000", "km/h"]


def test_perfect_caption_scores_high_and_wrong_caption_low() -> None:
    refs = [["a man in a red jacket walking"], ["a woman in a blue dress standing"], ["a child running"]]
    perfect = caption_metrics([r[0] for r in refs], refs)
    assert perfect["BLEU-1"] == pytest.approx(1.0)
    assert perfect["ROUGE-L"] == pytest.approx(1.0)
    wrong = caption_metrics(["zebra", "zebra", "zebra"], refs)
    assert wrong["CIDEr-D"] == 0.0 and wrong["ROUGE-L"] == 0.0
    assert wrong["BLEU-1"] < 1e-6


def test_rouge_takes_best_precision_and_recall_independently() -> None:
    # precision is best against the first reference, recall against the second
    score = rouge_l_single("a b", ["a b c d e f", "a"])
    p, r, beta2 = 1.0, 1.0, 1.2**2
    assert score == pytest.approx((1 + beta2) * p * r / (r + beta2 * p))


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="2 candidates but 1"):
        caption_metrics(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="item 0: expected a non-empty list"):
        caption_metrics(["a"], [[]])
    with pytest.raises(ValueError, match="item 0"):
        caption_metrics(["a"], ["a plain string is not a list of references"])
    with pytest.raises(ValueError, match="3 candidates for 1"):
        CiderD([["a"]]).scores(["a", "b", "c"])


def test_consensus_caption_is_the_most_typical_reference_scored_leave_one_out() -> None:
    refs = [["a man in a black coat walking"], ["a man in a black coat standing"],
            ["a man in a black jacket walking"], ["a woman in a red dress"], ["a man in a black coat walking"]]
    base = consensus_caption(refs)
    assert base.caption == "a man in a black coat walking" and base.source_item == 0
    others = refs[1:]
    assert base.scores == caption_metrics([base.caption] * len(others), others)
    # on the other items it still matches item 4 exactly, but never gets its own item for free
    assert base.scores["CIDEr-D"] < caption_metrics([base.caption] * len(refs), refs)["CIDEr-D"]
    with pytest.raises(ValueError, match="at least 2 items"):
        consensus_caption([["alone"]])


@pytest.mark.parametrize("case", [c for c in FIXTURES if len(c["references"]) > 1][:6], ids=lambda c: c["name"])
def test_constant_score_equals_scoring_the_caption_everywhere(case: dict) -> None:
    refs = case["tokenized_references"]
    cider = CiderD(refs)
    for candidate in case["tokenized_candidates"][:3]:
        expected = sum(cider.scores([candidate] * len(refs))) / len(refs)
        assert cider.constant_score(candidate) == pytest.approx(expected, rel=1e-9, abs=1e-12)
