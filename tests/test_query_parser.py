"""How free-text searches are read into attribute filters and full-text terms."""

from __future__ import annotations

import pytest

from personvlm.serving.query import Condition, parse_query


def _any_of(query: str) -> list[tuple[bool, list[dict[str, str | None]]]]:
    return [(f.negate, [{c.attribute: c.value for c in alt} for alt in f.alternatives])
            for f in parse_query(query).filters]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("woman in a red coat with a suitcase", [
            (False, [{"gender": "female"}]),
            (False, [{"upper_type": "coat", "upper_color": "red"},
                     {"upper_type": "cotton-padded coat", "upper_color": "red"}]),
            (False, [{"bags": "suitcase"}]),
        ]),
        ("red jacket, backpack", [(False, [{"upper_type": "jacket", "upper_color": "red"}]),
                                  (False, [{"bags": "backpack"}])]),
        ("no backpack", [(True, [{"bags": "backpack"}])]),
        ("man without hat", [(False, [{"gender": "male"}]), (True, [{"headwear": "hat"}])]),
        ("not wearing any glasses", [(True, [{"glasses": "yes"}])]),
        ("child", [(False, [{"age": "child"}])]),
        ("elderly man with umbrella", [(False, [{"age": "elderly"}]), (False, [{"gender": "male"}]),
                                       (False, [{"held": "umbrella"}])]),
        ("grey hair", [(False, [{"hair_color": "gray"}])]),
        ("dark blue jeans", [(False, [{"lower_type": "jeans", "lower_color": "blue"}])]),
        ("navy pants", [(False, [{"lower_type": "trousers", "lower_color": "blue"}])]),
        ("red long-sleeved shirt", [(False, [{"upper_type": "shirt", "upper_color": "red"}]),
                                    (False, [{"upper_sleeve": "long"}])]),
        ("white shoes", [(False, [{"shoes_color": "white"}])]),
        ("green top", [(False, [{"upper_color": "green"}])]),
        ("red dress", [(False, [{"upper_type": "dress", "upper_color": "red"},
                                {"lower_type": "dress", "lower_color": "red"}])]),
        ("yellow", [(False, [{"upper_color": "yellow"}, {"lower_color": "yellow"}])]),
        ("no bag", [(True, [{"bags": None}])]),
        ("girl", [(False, [{"gender": "female", "age": "child"}])]),
        ("man man male", [(False, [{"gender": "male"}])]),
    ],
)
def test_filters(query: str, expected: list) -> None:
    assert _any_of(query) == expected


def test_unknown_words_become_terms_and_negated_ones_exclusions() -> None:
    q = parse_query("man with a striped shirt near the entrance, no logo")
    assert q.terms == ("striped", "entrance")
    assert q.excluded == ("logo",)
    assert [f.phrase for f in q.filters] == ["man", "shirt"]


def test_negation_scopes_over_one_thing_only() -> None:
    q = parse_query("without hat with backpack")
    assert [(f.phrase, f.negate) for f in q.filters] == [("no hat", True), ("backpack", False)]


def test_empty_and_punctuation_only_queries() -> None:
    assert parse_query("").is_empty
    assert parse_query("  ,;!? ").is_empty
    assert parse_query("the person").is_empty


def test_explain_is_plain_json() -> None:
    assert parse_query("no bag, logo, shoes").explain() == {
        "filters": [{"phrase": "no bag", "negate": True, "any_of": [{"bags": "any"}]}],
        "terms": ["logo"],
        "excluded": [],
        "notes": ["'shoes' alone says nothing to filter on"],
    }


def test_conditions_are_checked_against_the_schema() -> None:
    with pytest.raises(ValueError, match="not one of"):
        Condition("upper_color", "chartreuse")
    with pytest.raises(ValueError, match="multi-label"):
        Condition("gender", None)
