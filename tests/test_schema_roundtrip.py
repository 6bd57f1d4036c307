"""Every caption we write parses back to the description it was written from, in both styles."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personvlm.schema import ATTRIBUTES, STYLES, UNKNOWN, Attribute, PersonDescription, parse, to_text


def _value(attr: Attribute) -> st.SearchStrategy:
    """Any legal value of ``attr``, ``unknown`` included."""
    if attr.multi:
        return st.one_of(st.just(UNKNOWN), st.lists(st.sampled_from(attr.values), unique=True).map(tuple))
    return st.sampled_from(attr.all_values)


descriptions = st.fixed_dictionaries({a.name: _value(a) for a in ATTRIBUTES}).map(PersonDescription.from_values)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desc=descriptions, style=st.sampled_from(STYLES))
def test_caption_round_trip(desc: PersonDescription, style: str) -> None:
    text = to_text(desc, style)
    assert parse(text).values() == desc.values(), text


def test_natural_caption_reads_like_msp60k() -> None:
    desc = PersonDescription.from_values({
        "gender": "male", "age": "adult", "hair_length": "short", "hair_color": "black", "motion": "walking",
        "orientation": "front", "upper_color": "red", "upper_sleeve": "long", "upper_type": "jacket",
        "lower_color": "blue", "lower_type": "jeans", "shoes_color": "black", "shoes_type": "casual",
        "bags": ("backpack",), "held": (), "pose": (), "body": "normal", "headwear": "none",
        "glasses": "no", "mask": "no", "scarf": "no", "gloves": "no",
    })
    assert to_text(desc, "natural") == (
        "The image shows an adult man with short black hair, walking towards the camera. He has an average "
        "build. He is wearing a red long-sleeved jacket, blue jeans and black casual shoes. He is carrying a "
        "backpack.")


def test_unknowns_are_said_only_where_silence_would_mean_something_else() -> None:
    text = to_text(PersonDescription.from_values({"gender": "female", "upper_color": "green"}), "natural")
    assert "The age is unclear." in text          # silence would mean an adult
    assert "presence of bags is unclear" in text  # silence would mean no bag
    assert "color of the shoes" not in text       # silence already means unknown
    assert parse(text).value("upper_color") == "green"
