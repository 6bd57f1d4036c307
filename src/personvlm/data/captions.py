"""Natural captions for synthetic crops, in the varied phrasing of real MSP60K captions.

A model trained on one template learns the template, not the language, and then writes text
unlike the real captions it is scored against. So each part of a caption has several phrasings
taken from ``val.jsonl`` (openings such as "Here is a description of the image:", "The image
shows the back of ...", "walking towards the camera", clothing lists, "He is carrying ...",
image quality, lighting, background and the "no text or unique identifiers" boilerplate), and
``rng`` picks among them. Only known attributes are mentioned (unknown = not visible in the
pixels), and every phrasing is one ``personvlm.schema.parse`` reads back to the same values.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from personvlm.schema import UNKNOWN, PersonDescription
from personvlm.schema.compact import SLEEVE_WORDS
from personvlm.schema.lexicon import GENERIC_LOWER, GENERIC_SHOES, SHOE_TYPES
from personvlm.schema.natural import PRONOUNS, article, join_list, join_words

_OPENINGS = ("", "", "", "Here is a description of the image:\n\n", "Here's a description of the image:\n\n")
_SHOTS = ("picture", "photo", "image", "security camera still", "CCTV still", "shot")
_PERSON = {
    ("male", "child"): ("boy", "young boy", "male child"),
    ("female", "child"): ("girl", "young girl", "female child"),
    (UNKNOWN, "child"): ("child", "young child"),
    ("male", "adult"): ("adult male", "adult man", "male adult", "man"),
    ("female", "adult"): ("adult female", "adult woman", "female adult", "woman"),
    (UNKNOWN, "adult"): ("adult", "adult person"),
    ("male", "elderly"): ("elderly man", "older man", "elderly male"),
    ("female", "elderly"): ("elderly woman", "older woman", "elderly female"),
    (UNKNOWN, "elderly"): ("elderly person", "older person"),
    ("male", UNKNOWN): ("man", "male"),
    ("female", UNKNOWN): ("woman", "female"),
    (UNKNOWN, UNKNOWN): ("person", "individual", "pedestrian"),
}
_ORIENTATION = {
    "front": ("from the front", "facing the camera", "viewed from the front"),
    "back": ("from behind", "with {P} back to the camera", "viewed from behind"),
    "side": ("from the side", "in profile", "viewed from the side"),
}
_FRAMED = {"back": "the back of", "side": "a side view of"}  # "The image shows the back of a man"
_MOTION = {
    "walking": ("walking",), "running": ("running", "jogging"), "standing": ("standing",),
    "sitting": ("sitting", "seated"), "riding bicycle": ("riding a bicycle", "riding a bike"),
    "riding scooter": ("riding a scooter", "riding an electric scooter", "riding a motorbike"),
    "riding skateboard": ("riding a skateboard",),
}
_BODY = {
    "fat": ("{S} appears to be overweight.", "{S} has a heavy build.", "{S} is of a heavy-set build."),
    "normal": ("{S} appears to be of average build.", "{S} has a normal body shape.", "{S} has an average build."),
    "thin": ("{S} is thin.", "{S} has a slim build.", "{S} appears to have a thin build."),
}
_WEAR_VERBS = ("is wearing", "is wearing", "is dressed in", "has on", "wears")
_CARRY = ("{S} is carrying {x}.", "{S} carries {x}.", "{S} appears to be carrying {x}.")
_HOLD = ("{S} is holding {x}.", "{S} holds {x} in {P} hand.")
_POSE = {"calling": "making a call", "smoking": "smoking a cigarette",
         "hands behind back": "keeping {P} hands behind {P} back", "arms crossed": "keeping {P} arms crossed"}
_SHOES = {"leather": ("leather shoes",), "casual": ("casual shoes", "sneakers", "trainers"), "boots": ("boots",),
          "sandals": ("sandals", "slippers"), "other": (SHOE_TYPES["other"][0],)}
_HELD = {"phone": ("a phone", "a mobile phone"), "umbrella": ("an umbrella",), "cup": ("a cup", "a bottle")}
_BAGS = {"backpack": ("a backpack",), "shoulder bag": ("a shoulder bag", "a crossbody bag"),
         "handbag": ("a handbag", "a tote bag"), "plastic bag": ("a plastic bag", "a plastic shopping bag"),
         "paper bag": ("a paper bag",), "suitcase": ("a suitcase",), "other bag": ("a bag of another kind",)}
_NEGATIVES = {
    "bags": ("{S} is not carrying a bag.", "No bag is visible."),
    "headwear": ("{S} is not wearing a hat.",),
    "glasses": ("{S} is not wearing glasses.",),
}
_THEY_VERBS = {"is": "are", "has": "have", "carries": "carry", "holds": "hold", "appears": "appear", "wears": "wear"}
_BOILERPLATE = ("No text or unique identifiers are visible.", "There is no visible text or unique identifiers in "
                "the image.", "No visible text or logos are present.")


def _color_word(color: str, rng: random.Random) -> str:
    """Real captions say "dark-colored" for black clothes and "light blue" for pale blue."""
    if color == "black" and rng.random() < 0.3:
        return "dark-colored"
    if color in ("blue", "green", "gray") and rng.random() < 0.2:
        return rng.choice(("light", "dark")) + " " + color
    return color


def _upper(v: Mapping[str, Any], rng: random.Random) -> str | None:
    color, sleeve, kind = v["upper_color"], v["upper_sleeve"], v["upper_type"]
    if color == sleeve == kind == UNKNOWN:
        return None
    noun = "top" if kind == UNKNOWN else kind
    col = _color_word(color, rng) if color != UNKNOWN else ""
    sl = SLEEVE_WORDS.get(sleeve, "")
    if sl and col and rng.random() < 0.5:
        return article(f"{col}, {sl} {noun}")
    return article(join_words(col, sl, noun))


def _lower(v: Mapping[str, Any], rng: random.Random) -> str | None:
    color, kind = v["lower_color"], v["lower_type"]
    if color == kind == UNKNOWN:
        return None
    phrase = join_words(_color_word(color, rng) if color != UNKNOWN else "", GENERIC_LOWER[0] if kind == UNKNOWN else kind)
    return article(phrase) if kind in ("long skirt", "short skirt", "dress") else phrase


def _shoes(v: Mapping[str, Any], rng: random.Random) -> str | None:
    color, kind = v["shoes_color"], v["shoes_type"]
    if color == kind == UNKNOWN:
        return None
    noun = GENERIC_SHOES[0] if kind == UNKNOWN else rng.choice(_SHOES[kind])
    return join_words(_color_word(color, rng) if color != UNKNOWN else "", noun)


def _person_sentence(v: Mapping[str, Any], rng: random.Random, scene: Mapping[str, Any]) -> str:
    noun = rng.choice(_PERSON[(v["gender"], v["age"])])
    quality = [q for q in scene.get("quality") or [] if isinstance(q, str)]
    lead = article(f"{', '.join(quality)} {rng.choice(_SHOTS)}") + " of " if quality and rng.random() < 0.6 else ""
    orientation, motion = v["orientation"], v["motion"]
    framed = orientation in _FRAMED and not lead and rng.random() < 0.5
    subject = f"{_FRAMED[orientation]} {article(noun)}" if framed else article(noun)
    if v["hair_length"] not in ("bald", UNKNOWN) and v["hair_color"] != UNKNOWN and rng.random() < 0.4:
        subject += f" with {join_words(v['hair_length'], v['hair_color'])} hair"  # "a male adult with black hair"
    # a child "riding a scooter" reads as a kick scooter (MSP60K's skateboard class): name the motor
    phrases = _MOTION[motion][1:] if motion == "riding scooter" and v["age"] == "child" else _MOTION.get(motion)
    tail = [rng.choice(phrases)] if phrases else []
    if orientation != UNKNOWN and not framed:
        if orientation == "back" and motion == "walking" and rng.random() < 0.5:
            tail = ["walking away from the camera"]
        else:
            tail.append(rng.choice(_ORIENTATION[orientation]).format(P=PRONOUNS[v["gender"]][1]))
    verb = rng.choice(("The image shows", "The image shows", "The photo shows", "The image is", "This is"))
    if verb in ("The image is", "This is") and not lead:
        lead = article(rng.choice(_SHOTS)) + " of "
    return f"{verb} {lead}{subject}" + (" " + ", ".join(tail) if tail else "") + "."


def _hair_sentence(v: Mapping[str, Any], rng: random.Random) -> str | None:
    """A template ("{S} has short black hair.") for the known hair attributes."""
    length, color = v["hair_length"], v["hair_color"]
    if length == "bald":
        return "{S} is bald" + (f", with a little {color} hair." if color != UNKNOWN else ".")
    if length == UNKNOWN and color == UNKNOWN:
        return None
    if length != UNKNOWN and color != UNKNOWN and rng.random() < 0.3:
        return "{Pc} hair is " + f"{color} and {length}."
    return "{S} has " + f"{join_words(length, color)} hair."


def natural_caption(desc: PersonDescription, rng: random.Random, scene: Mapping[str, Any] | None = None) -> str:
    """An MSP60K-style caption of ``desc`` (known attributes only) and of the rendered ``scene``.

    ``scene`` keys, all optional: ``quality`` (words such as "blurry"), ``lighting`` ("dim"),
    ``background`` (a short phrase), ``occluded`` and ``others`` (bools). Deterministic for a
    given ``rng`` state.
    """
    scene = scene or {}
    v = desc.values()
    subject, possessive = PRONOUNS[v["gender"]]
    S = subject.capitalize()

    def fill(template: str, x: str = "") -> str:
        """Fill a singular template ("{S} is carrying {x}.") for this person, "they" included."""
        text = template.format(S=S, P=possessive, Pc=possessive.capitalize(), x=x)
        if subject == "they":
            for singular, plural in _THEY_VERBS.items():
                text = text.replace(f"{S} {singular} ", f"{S} {plural} ")
        return text

    parts: list[str] = [_person_sentence(v, rng, scene)]
    if " hair" not in parts[0]:
        hair = _hair_sentence(v, rng)
        if hair:
            parts.append(fill(hair))
    if v["body"] != UNKNOWN and (v["body"] != "normal" or rng.random() < 0.7):  # silence means average
        parts.append(fill(rng.choice(_BODY[v["body"]])))
    worn = [article(v["headwear"]) if v["headwear"] not in ("none", UNKNOWN) else ""]
    worn += [_upper(v, rng) or "", _lower(v, rng) or "", _shoes(v, rng) or ""]
    worn += [{"glasses": "glasses", "mask": "a face mask", "scarf": "a scarf", "gloves": "gloves"}[n]
             for n in ("glasses", "mask", "scarf", "gloves") if v[n] == "yes"]
    worn = [w for w in worn if w]
    if worn:
        parts.append(fill("{S} " + rng.choice(_WEAR_VERBS) + " {x}.", join_list(worn)))
    parts += _carried(v, rng, fill)
    parts += [fill(rng.choice(_NEGATIVES[name])) for name, absent in
              (("bags", ()), ("headwear", "none"), ("glasses", "no")) if v[name] == absent and rng.random() < 0.15]
    parts += _scene_sentences(scene, rng, possessive)
    if rng.random() < 0.8:
        parts.append(rng.choice(_BOILERPLATE))
    return rng.choice(_OPENINGS) + " ".join(parts)


def _carried(v: Mapping[str, Any], rng: random.Random, fill: Callable[..., str]) -> list[str]:
    out = []
    if isinstance(v["bags"], tuple) and v["bags"]:
        out.append(fill(rng.choice(_CARRY), join_list([rng.choice(_BAGS[b]) for b in v["bags"]])))
    if isinstance(v["held"], tuple) and v["held"]:
        out.append(fill(rng.choice(_HOLD), join_list([rng.choice(_HELD[h]) for h in v["held"]])))
    if isinstance(v["pose"], tuple) and v["pose"]:
        out.append(fill("{S} is " + join_list([_POSE[p] for p in v["pose"]]) + "."))
    return out


def _scene_sentences(scene: Mapping[str, Any], rng: random.Random, possessive: str) -> list[str]:
    out = []
    quality = [q for q in scene.get("quality") or [] if isinstance(q, str)]
    if quality and rng.random() < 0.5:
        out.append(f"The image is {join_list(quality)}, making details difficult to discern.")
    if scene.get("lighting"):
        out.append(rng.choice(("The lighting is {l}.", "The overall lighting is {l}.")).format(l=scene["lighting"]))
    if scene.get("background"):
        out.append(rng.choice(("The background is {b}.", "The background appears to be {b}.",
                               "In the background, there is {b}.")).format(b=scene["background"]))
    if scene.get("occluded"):
        out.append(f"Part of {possessive} body is hidden by an obstacle or the edge of the frame.")
    if scene.get("others"):
        out.append(rng.choice(("Part of another person is visible at the edge of the frame.",
                               "Other people are partially visible nearby.")))
    return out
