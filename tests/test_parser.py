"""The natural-language caption parser on the traps of real MSP60K phrasing.

Sentences here are written for the tests (not copied from MSP60K) and each targets one rule:
pronouns, words inside words, negation, background and other people, colour attachment.
"""

from __future__ import annotations

import pytest

from personvlm.schema import UNKNOWN, parse
from personvlm.schema.parse_natural import negated_spans, parse_natural, subject_sentences


def values(text: str) -> dict:
    return parse(text).values()


# --- gender and age ----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "gender"), [
    ("The image shows a person walking. She is wearing a red coat.", "female"),
    ("The image shows a person walking. He is wearing a red coat.", "male"),
    ("The photo shows a woman in a blue dress.", "female"),        # "man" inside "woman"
    ("A female pedestrian is standing.", "female"),                # "male" inside "female"
    ("The image shows a man walking next to a woman.", "male"),    # the first person named is the subject
    ("The image shows a pedestrian from behind.", UNKNOWN),
])
def test_gender_from_nouns_and_pronouns(text: str, gender: str) -> None:
    assert values(text)["gender"] == gender


def test_silent_gender_with_typically_female_dress_is_female() -> None:
    assert values("The image shows a person with long black hair wearing a floral skirt.")["gender"] == "female"


def test_silent_gender_defaults_to_the_majority_of_the_age_group_unless_female_cues() -> None:
    assert values("The image shows a child walking in a white shirt.")["gender"] == "male"
    assert values("The image shows a child with long hair in a dress.")["gender"] == "female"
    assert values("The image shows an adult walking in a white shirt.")["gender"] == "female"  # the majority


@pytest.mark.parametrize(("text", "age"), [
    ("The image shows a man walking.", "adult"),                   # default when no age word
    ("The image shows a young girl with a backpack.", "child"),
    ("The image shows an elderly woman standing.", "elderly"),
    ("The image shows a young adult woman walking.", "adult"),
    ("The image shows a woman holding a child's hand.", "adult"),
    ("The image shows a young female reading a book.", "child"),
    ("The image shows a person with short hair sitting at a desk in a classroom.", "child"),
    ("The image shows a young man in a classroom.", "adult"),    # an age word beats the setting
])
def test_age(text: str, age: str) -> None:
    assert values(text)["age"] == age


# --- negation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "name", "value"), [
    ("He is not carrying a bag.", "bags", ()),
    ("She has no bag.", "bags", ()),
    ("There is no visible backpack.", "bags", ()),
    ("He is not wearing a hat, glasses or a mask.", "headwear", "none"),
    ("He is not wearing a hat, glasses or a mask.", "glasses", "no"),
    ("He is not wearing a hat, glasses or a mask.", "mask", "no"),
    ("She walks without glasses.", "glasses", "no"),
    ("A bag is not visible.", "bags", ()),
    ("He does not appear to be carrying a bag, but he is wearing a cap.", "headwear", "cap"),
    ("He is not wearing a hat and is carrying a backpack.", "bags", ("backpack",)),
])
def test_negations(text: str, name: str, value: object) -> None:
    assert values("The image shows a man walking. " + text)[name] == value


def test_negation_scope_stops_at_a_new_clause() -> None:
    spans = negated_spans("he is not wearing a hat, but he carries a backpack")
    text = "he is not wearing a hat, but he carries a backpack"
    assert any(a <= text.index("hat") < b for a, b in spans)
    assert not any(a <= text.index("backpack") < b for a, b in spans)


# --- background, boilerplate and other people --------------------------------------------------
def test_background_objects_do_not_become_clothes() -> None:
    v = values("The image shows a man walking. He is wearing a white t-shirt. "
               "The background shows a red car and a blue umbrella. No text or unique identifiers are visible.")
    assert v["upper_color"] == "white"
    assert v["held"] == ()


def test_other_people_do_not_lend_their_clothes() -> None:
    v = values("The image shows a woman standing. She wears a green jacket. "
               "Another person wearing a hat and carrying a backpack is partly visible on the left.")
    assert v["headwear"] == "none"
    assert v["bags"] == ()


def test_cut_within_a_sentence_keeps_the_subject_part() -> None:
    v = values("The image shows a man with a backpack walking past another person in a red hat.")
    assert v["bags"] == ("backpack",)
    assert v["headwear"] == "none"


def test_boilerplate_sentences_are_dropped() -> None:
    kept = subject_sentences("Here is a description of the image:\n\nThe image shows a man. "
                             "There is no visible text or unique identifiers in the image. "
                             "The lighting is dim and bluish. The background is a plain wall.")
    assert kept == ["the image shows a man"]


# --- clothing ------------------------------------------------------------------------------------
def test_colours_attach_to_the_garment_they_modify() -> None:
    v = values("The image shows a man. He is wearing a red long-sleeved jacket, blue jeans and black casual shoes.")
    assert (v["upper_color"], v["upper_sleeve"], v["upper_type"]) == ("red", "long", "jacket")
    assert (v["lower_color"], v["lower_type"]) == ("blue", "jeans")
    assert (v["shoes_color"], v["shoes_type"]) == ("black", "casual")


@pytest.mark.parametrize(("text", "kind"), [
    ("She is walking. Her shoes appear to be dark-colored leather.", "leather"),
    ("He is standing. His footwear appears to be casual.", "casual"),
    ("He is standing. His shoes are light-colored casual sneakers.", "casual"),
])
def test_shoe_type_said_as_a_predicate(text: str, kind: str) -> None:
    assert values(text)["shoes_type"] == kind


def test_dark_colored_and_light_blue() -> None:
    v = values("The image shows a woman in a dark-colored, long-sleeved, cotton-padded coat and light-blue trousers.")
    assert (v["upper_color"], v["upper_type"]) == ("black", "cotton-padded coat")
    assert v["lower_color"] == "blue"


@pytest.mark.parametrize(("text", "sleeve"), [
    ("He is wearing a shirt with short sleeves.", "short"),
    ("He is wearing a short-sleeved shirt.", "short"),
    ("She wears a blouse with long sleeves.", "long"),
    ("She wears a sleeveless top.", "sleeveless"),
    ("He is wearing a shirt.", UNKNOWN),
])
def test_sleeve_phrasing(text: str, sleeve: str) -> None:
    assert values("The image shows a person. " + text)["upper_sleeve"] == sleeve


def test_outer_layer_decides_the_upper_type() -> None:
    assert values("The image shows a man wearing a black jacket over a white t-shirt.")["upper_type"] == "jacket"


def test_padding_words_make_a_cotton_padded_coat() -> None:
    v = values("The image shows a woman. Her coat is long and appears padded.")
    assert v["upper_type"] == "cotton-padded coat"


def test_skirt_length_from_its_modifiers() -> None:
    assert values("She wears a long, beige skirt.")["lower_type"] == "long skirt"
    assert values("She wears a pleated skirt that falls to her knees.")["lower_type"] == "long skirt"
    assert values("She wears a denim skirt.")["lower_type"] == "short skirt"


def test_dress_with_a_separate_top_is_the_lower_garment() -> None:
    v = values("The image shows a woman in a white short-sleeved shirt and a blue dress.")
    assert (v["upper_type"], v["lower_type"], v["lower_color"]) == ("shirt", "dress", "blue")


@pytest.mark.parametrize("text", [
    "She is wearing a white top, jeans, and a short skirt.",
    "She is wearing a white top and a short skirt over jeans.",
    "She wears dark trousers and a short skirt.",
])
def test_a_skirt_named_with_trousers_is_worn_over_them(text: str) -> None:
    assert values(text)["lower_type"] == "short skirt"


@pytest.mark.parametrize("text", [
    "She is wearing a blue short dress.",
    "She is wearing a dark blue denim dress that falls to mid-thigh.",
    "She wears a black short-sleeved dress. The dress is above her knees.",
])
def test_a_dress_alone_ending_above_the_knee_is_also_a_short_skirt(text: str) -> None:
    v = values(text)
    assert (v["upper_type"], v["lower_type"]) == ("dress", "short skirt")


def test_a_long_dress_worn_with_a_top_is_a_long_skirt() -> None:
    v = values("She is wearing a dark-red, long-sleeved shirt or dress that reaches her knees.")
    assert (v["upper_type"], v["lower_type"]) == ("shirt", "long skirt")


def test_a_dress_alone_covers_top_and_bottom() -> None:
    v = values("The image shows a woman in a red dress.")
    assert (v["upper_type"], v["lower_type"]) == ("dress", "dress")


@pytest.mark.parametrize("text", [
    "The image shows a woman in a navy blue, knee-length dress.",
    "She is wearing a red dress that falls to her knees.",
    "She is wearing a long, dark-colored dress or skirt.",
    "She is wearing a blue dress that falls to mid-calf.",
    "She is wearing a grey dress. The dress appears to be knee-length.",
])
def test_a_dress_alone_reaching_the_knee_is_also_a_long_skirt(text: str) -> None:
    v = values(text)
    assert (v["upper_type"], v["lower_type"]) == ("dress", "long skirt")


# --- hair, body, orientation, motion, carried ----------------------------------------------------
@pytest.mark.parametrize(("text", "length", "color"), [
    ("He has short black hair.", "short", "black"),
    ("Her hair is long and dark.", "long", "black"),
    ("She has long, dark brown hair.", "long", "brown"),
    ("A black-haired man.", UNKNOWN, "black"),
    ("He is bald.", "bald", UNKNOWN),
])
def test_hair(text: str, length: str, color: str) -> None:
    v = values("The image shows a person. " + text)
    assert (v["hair_length"], v["hair_color"]) == (length, color)


@pytest.mark.parametrize(("text", "body"), [
    ("The image shows a man walking.", "normal"),
    ("The image shows a thin, adult male walking.", "thin"),
    ("The image shows a plus-size woman standing.", "fat"),
    ("He wears a shirt with thin stripes.", "normal"),            # thin stripes are not a thin body
])
def test_body(text: str, body: str) -> None:
    assert values(text)["body"] == body


@pytest.mark.parametrize(("text", "orientation"), [
    ("The image shows a man walking towards the camera.", "front"),
    ("The image shows the back of a man walking away from the camera.", "back"),
    ("The image shows a side view of a woman.", "side"),
    ("The image shows a man with a backpack on his back walking towards the camera.", "front"),
    ("The image shows a man walking.", "front"),                  # the default view
])
def test_orientation(text: str, orientation: str) -> None:
    assert values(text)["orientation"] == orientation


def test_riding_beats_standing_and_carried_items_are_found() -> None:
    v = values("The image shows a man riding a scooter, standing up on it. He carries a plastic bag and a "
               "shoulder bag, and is talking on the phone. His hands are not behind his back.")
    assert v["motion"] == "riding scooter"
    assert v["bags"] == ("shoulder bag", "plastic bag")
    assert "calling" in v["pose"]
    assert "hands behind back" not in v["pose"]


def test_unclear_statements_give_unknown() -> None:
    v = parse_natural("The image shows a man. The gender is unclear. The presence of bags is unclear.")
    assert v.value("gender") == UNKNOWN
    assert v.value("bags") == UNKNOWN


def test_odd_text_never_raises_and_reads_as_defaults() -> None:
    for text in ("???", "日本語のテキスト", "The image shows." * 50, "no no not without."):
        v = parse_natural(text).values()
        assert (v["age"], v["bags"], v["gender"]) == ("adult", (), UNKNOWN)
