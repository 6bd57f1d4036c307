"""The schema contract: legal values, JSON round trip, MSP60K one_hot both ways, compact grammar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personvlm.schema import (
    ATTRIBUTES,
    ONE_HOT_LEN,
    UNKNOWN,
    PersonDescription,
    from_one_hot,
    parse_compact,
    to_compact,
    to_one_hot,
)
from personvlm.schema.description import ONE_HOT_NAMES

SHARED = Path(__file__).resolve().parents[2] / "shared"

EXAMPLE = {
    "gender": "male", "age": "adult", "hair_length": "short", "hair_color": "black",
    "upper_color": "red", "upper_sleeve": "long", "upper_type": "jacket",
    "lower_color": "blue", "lower_type": "jeans", "shoes_color": "black", "shoes_type": "casual",
    "bags": ["backpack"], "motion": "walking", "orientation": "front",
    "headwear": "none", "glasses": "no", "mask": "no", "scarf": "no", "gloves": "no", "held": [], "pose": [],
}


def test_missing_attributes_are_unknown_and_every_attribute_is_present() -> None:
    d = PersonDescription.from_values({"gender": "female"})
    assert d.value("gender") == "female"
    assert d.value("age") == UNKNOWN
    assert set(d.values()) == {a.name for a in ATTRIBUTES}
    assert d.attributes["age"].confidence == 0.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"gender": "robot"}, "gender: illegal value 'robot'"),
        ({"bags": ["rucksack"]}, "bags: illegal value"),
        ({"bags": "backpack"}, "bags: expected a list"),
        ({"colour": "red"}, "unknown attribute 'colour'"),
    ],
)
def test_illegal_values_are_refused_with_a_clear_message(values: dict, message: str) -> None:
    with pytest.raises((ValueError, KeyError), match=message):
        PersonDescription.from_values(values)


def test_sets_are_canonical_so_order_does_not_matter() -> None:
    a = PersonDescription.from_values({"bags": ["suitcase", "backpack"]})
    b = PersonDescription.from_values({"bags": ["backpack", "suitcase"]})
    assert a.values() == b.values()
    assert a.value("bags") == ("backpack", "suitcase")


def test_json_round_trip_is_lossless_including_confidences() -> None:
    d = PersonDescription.from_values(EXAMPLE, confidence=0.73, caption="x", style="compact")
    d = d.replace(gender=PersonDescription.from_values({}).attributes["gender"])  # an unknown with conf 0
    back = PersonDescription.from_json(d.to_json())
    assert back == d
    assert json.loads(d.to_json())["attributes"]["bags"]["value"] == ["backpack"]


def test_compact_caption_reads_as_designed_and_parses_back() -> None:
    d = PersonDescription.from_values(EXAMPLE)
    text = to_compact(d)
    assert text == ("male adult, short black hair, red long-sleeved jacket, blue jeans, black casual shoes, "
                    "backpack, walking, front view")
    assert parse_compact(text).values() == d.values()


def test_compact_says_unknown_for_unknown_carried_items_and_omits_absent_ones() -> None:
    d = PersonDescription.from_values({**EXAMPLE, "bags": UNKNOWN, "glasses": UNKNOWN, "held": ["phone"]})
    text = to_compact(d)
    assert "unknown bag" in text and "unknown glasses" in text and "holding phone" in text
    assert "mask" not in text
    assert parse_compact(text).values() == d.values()


def test_lower_dress_without_upper_keeps_its_slot() -> None:
    d = PersonDescription.from_values({"lower_type": "dress", "lower_color": "red", "headwear": "none",
                                       "glasses": "no", "mask": "no", "scarf": "no", "gloves": "no",
                                       "bags": [], "held": [], "pose": []})
    text = to_compact(d)
    assert text == "top, red dress"
    assert parse_compact(text).values() == d.values()


@pytest.mark.parametrize("text", ["hello world", "male adult, flying", "backpack, backpack", "walking, male adult"])
def test_text_outside_the_grammar_is_not_compact(text: str) -> None:
    assert parse_compact(text) is None


def test_one_hot_round_trip_on_a_labelled_description() -> None:
    d = PersonDescription.from_values(EXAMPLE)
    oh = to_one_hot(d)
    assert len(oh) == ONE_HOT_LEN == 58
    on = {ONE_HOT_NAMES[i] for i, v in enumerate(oh) if v}
    assert on == {"Male", "Adult", "Black hair", "Long sleeves", "Jacket", "Jeans", "Trousers", "Casual shoes",
                  "Backpack", "Walking", "Front"}  # MSP60K labels jeans as Trousers too
    assert to_one_hot(from_one_hot(oh)) == oh


def test_one_hot_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="58 entries, got 3"):
        from_one_hot([0, 1, 0])
    with pytest.raises(ValueError, match="0 or 1"):
        from_one_hot([2] * 58)


def test_one_hot_round_trip_on_real_msp60k_labels() -> None:
    """Every real label vector survives one_hot -> description -> one_hot, except where MSP60K
    marks two values of an attribute we model as exclusive (e.g. Trousers + Dress)."""
    path = SHARED / "msp60k" / "val.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not present (shared data beside the repo)")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    exact = sum(to_one_hot(from_one_hot(r["one_hot"])) == r["one_hot"] for r in rows)
    assert exact / len(rows) > 0.8
    for r in rows:
        back = to_one_hot(from_one_hot(r["one_hot"]))
        lost = [i for i in range(58) if back[i] != r["one_hot"][i]]
        # only bits lost from multiply-marked exclusive groups; the only invented ones are those the
        # mapping implies (jeans are also Trousers, a top of unknown sleeve length is MSP60K's Shirt)
        invented = {ONE_HOT_NAMES[i] for i in lost if r["one_hot"][i] == 0}
        assert invented <= {"Trousers", "Shirt"}
