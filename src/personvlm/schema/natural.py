"""The ``natural`` caption style: MSP60K-like sentences that read back into the same values.

``to_natural`` is deterministic (one fixed phrasing per value, so a model trained on it sees a
consistent target). It names every known attribute and says "The X is unclear." only for an
unknown attribute the reader would otherwise fill in (silence about a bag means "no bag", see
``parse_natural.SILENT_DEFAULTS``): the caption is checked against the parser while it is
written, so ``parse(to_natural(d)).values() == d.values()`` holds by construction wherever the
parser reads the known values right (the property test checks that part).
"""

from __future__ import annotations

from typing import Any

from personvlm.schema.attributes import NAMES, UNKNOWN
from personvlm.schema.compact import SLEEVE_WORDS
from personvlm.schema.description import PersonDescription
from personvlm.schema.lexicon import (
    BAG_TYPES,
    GENERIC_LOWER,
    GENERIC_SHOES,
    HELD_ITEMS,
    ORIENTATION_WORDS,
    SHOE_TYPES,
)
from personvlm.schema.parse_natural import UNCLEAR_SUBJECTS, parse_natural

PRONOUNS = {"male": ("he", "his"), "female": ("she", "her"), UNKNOWN: ("they", "their")}
_PERSON_NOUNS: dict[tuple[str, str], str] = {
    ("male", "child"): "boy", ("female", "child"): "girl", (UNKNOWN, "child"): "child",
    ("male", "adult"): "adult man", ("female", "adult"): "adult woman", (UNKNOWN, "adult"): "adult",
    ("male", "elderly"): "elderly man", ("female", "elderly"): "elderly woman", (UNKNOWN, "elderly"): "elderly person",
    ("male", UNKNOWN): "man", ("female", UNKNOWN): "woman", (UNKNOWN, UNKNOWN): "person",
}
_WALKING_VIEW = {"front": "walking towards the camera", "back": "walking away from the camera"}
_BUILD_WORDS = {"fat": "a heavy build", "normal": "an average build", "thin": "a thin build"}
_MOTION_WORDS = {"walking": "walking", "running": "running", "standing": "standing", "sitting": "sitting",
                 "riding bicycle": "riding a bicycle", "riding scooter": "riding a motor scooter",
                 "riding skateboard": "riding a skateboard"}
_POSE_WORDS = {"calling": "making a call", "smoking": "smoking",
               "hands behind back": "keeping the hands behind the back", "arms crossed": "keeping the arms crossed"}
_HEADWEAR_WORDS = {"hat": "a hat", "cap": "a cap", "helmet": "a helmet"}
_ACCESSORY_WORDS = {"glasses": "glasses", "mask": "a mask", "scarf": "a scarf", "gloves": "gloves"}
_UPPER_PLACEHOLDER = "top"
_SINGULAR_LOWER = ("long skirt", "short skirt", "dress")


def article(phrase: str) -> str:
    """``phrase`` with "a" or "an" in front, by its first letter (good enough for our vocabulary)."""
    return f"an {phrase}" if phrase[:1] in "aeiou" else f"a {phrase}"


def join_list(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def join_words(*parts: str) -> str:
    """The known, non-empty words of a phrase: ``join_words("red", "unknown", "jacket") == "red jacket"``."""
    return " ".join(p for p in parts if p and p != UNKNOWN)


def person_phrase(v: dict[str, Any]) -> str:
    """"an adult man with short black hair" (hair only when known)."""
    noun = article(_PERSON_NOUNS[(v["gender"], v["age"])])
    length, color = v["hair_length"], v["hair_color"]
    if length == "bald":
        hair = "balding " + join_words(color, "hair") if color != UNKNOWN else "a bald head"
    elif length == UNKNOWN and color == UNKNOWN:
        return noun
    else:
        hair = join_words(length, color, "hair")
    return f"{noun} with {hair}"


def upper_phrase(v: dict[str, Any]) -> str | None:
    color, sleeve, kind = v["upper_color"], v["upper_sleeve"], v["upper_type"]
    if color == sleeve == kind == UNKNOWN:
        return None
    return article(join_words(color, SLEEVE_WORDS.get(sleeve, UNKNOWN), _UPPER_PLACEHOLDER if kind == UNKNOWN else kind))


def lower_phrase(v: dict[str, Any]) -> str | None:
    color, kind = v["lower_color"], v["lower_type"]
    if color == kind == UNKNOWN:
        return None
    phrase = join_words(color, GENERIC_LOWER[0] if kind == UNKNOWN else kind)
    return article(phrase) if kind in _SINGULAR_LOWER else phrase


def shoes_phrase(v: dict[str, Any]) -> str | None:
    color, kind = v["shoes_color"], v["shoes_type"]
    if color == kind == UNKNOWN:
        return None
    return join_words(color, GENERIC_SHOES[0] if kind == UNKNOWN else SHOE_TYPES[kind][0])


def worn_items(v: dict[str, Any]) -> list[str]:
    """Everything the person wears, outermost-first as captions list them."""
    items = [_HEADWEAR_WORDS.get(v["headwear"], "")]
    items += [upper_phrase(v) or "", lower_phrase(v) or "", shoes_phrase(v) or ""]
    items += [word for name, word in _ACCESSORY_WORDS.items() if v[name] == "yes"]
    return [i for i in items if i]


def _sentences(v: dict[str, Any]) -> list[str]:
    subject = PRONOUNS[v["gender"]][0]
    verb = "are" if subject == "they" else "is"
    first = f"The image shows {person_phrase(v)}"
    extras = [_MOTION_WORDS[v["motion"]]] if v["motion"] != UNKNOWN else []
    if v["motion"] == "walking" and v["orientation"] in _WALKING_VIEW:
        extras = [_WALKING_VIEW[v["orientation"]]]  # MSP60K's "walking towards the camera"
    elif v["orientation"] != UNKNOWN:
        extras.append("seen " + ORIENTATION_WORDS[v["orientation"]])
    out = [first + (", " + ", ".join(extras) if extras else "") + "."]
    if v["body"] != UNKNOWN:
        out.append(f"{subject.capitalize()} {'have' if subject == 'they' else 'has'} {_BUILD_WORDS[v['body']]}.")
    worn = worn_items(v)
    if worn:
        out.append(f"{subject.capitalize()} {verb} wearing {join_list(worn)}.")
    if isinstance(v["bags"], tuple) and v["bags"]:
        out.append(f"{subject.capitalize()} {verb} carrying {join_list([article(BAG_TYPES[b][0]) for b in v['bags']])}.")
    if isinstance(v["held"], tuple) and v["held"]:
        out.append(f"{subject.capitalize()} {verb} holding {join_list([article(HELD_ITEMS[h][0]) for h in v['held']])}.")
    if isinstance(v["pose"], tuple) and v["pose"]:
        out.append(f"{subject.capitalize()} {verb} {join_list([_POSE_WORDS[p] for p in v['pose']])}.")
    return out


def to_natural(desc: PersonDescription) -> str:
    """Render ``desc`` as natural sentences that ``parse_natural`` reads back to the same values."""
    v = desc.values()
    text = " ".join(_sentences(v))
    read = parse_natural(text).values()
    unclear = [f"The {UNCLEAR_SUBJECTS[name]} is unclear." for name in NAMES
               if v[name] == UNKNOWN and read[name] != UNKNOWN]
    return " ".join([text, *unclear])


__all__ = ["PRONOUNS", "article", "join_list", "join_words", "parse_natural", "to_natural"]
