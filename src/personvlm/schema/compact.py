"""The ``compact`` caption style: a comma-separated list of phrases in a fixed slot order.

Example: ``male adult, short black hair, red long-sleeved jacket, blue jeans, black casual
shoes, backpack, walking, front view``.

It is a small regular grammar, so (a) it round-trips losslessly with the structure and (b) the
decoder can be constrained to it token by token (``compact_slots`` lists every phrase).

Omission rules, chosen so the common case stays short:
- single-valued attributes (gender, colours, types, motion...) are omitted when ``unknown``;
- yes/no accessories, headwear and the sets (bags, held, pose) are omitted when absent
  (no / none / empty) and say ``unknown <thing>`` when unknown.
"""

from __future__ import annotations

from itertools import product
from typing import Any

from personvlm.schema.attributes import BY_NAME, COLORS, HAIR_COLORS, UNKNOWN
from personvlm.schema.description import PersonDescription

SLEEVE_WORDS = {"short": "short-sleeved", "long": "long-sleeved", "sleeveless": "sleeveless"}
SHOE_WORDS = {"leather": "leather shoes", "casual": "casual shoes", "boots": "boots",
              "sandals": "sandals", "other": "other shoes"}
BINARY_ACCESSORIES = ("glasses", "mask", "scarf", "gloves")
UNKNOWN_SET_WORDS = {"bags": "unknown bag", "held": "unknown held item", "pose": "unknown pose"}
UPPER_PLACEHOLDER = "top"
LOWER_PLACEHOLDER = "bottoms"


def _join(*words: str) -> str:
    return " ".join(w for w in words if w and w != UNKNOWN)


def _person(v: dict[str, Any]) -> list[str]:
    p = _join(v["gender"], v["age"])
    return [p] if p else []


def _body(v: dict[str, Any]) -> list[str]:
    return [] if v["body"] == UNKNOWN else [f"{v['body']} build"]


def _hair(v: dict[str, Any]) -> list[str]:
    length, color = v["hair_length"], v["hair_color"]
    if length == UNKNOWN and color == UNKNOWN:
        return []
    if length == "bald" and color == UNKNOWN:
        return ["bald"]
    return [_join(length, color, "hair")]


def _headwear(v: dict[str, Any]) -> list[str]:
    h = v["headwear"]
    return [] if h == "none" else ["unknown headwear" if h == UNKNOWN else h]


def _accessories(v: dict[str, Any]) -> list[str]:
    out = []
    for name in BINARY_ACCESSORIES:
        if v[name] == "yes":
            out.append(name)
        elif v[name] == UNKNOWN:
            out.append(f"unknown {name}")
    return out


def _upper(v: dict[str, Any]) -> list[str]:
    color, sleeve, kind = v["upper_color"], v["upper_sleeve"], v["upper_type"]
    if color == sleeve == kind == UNKNOWN:
        # A lower "dress" phrase alone would read back as an upper dress: hold the upper slot.
        return [UPPER_PLACEHOLDER] if v["lower_type"] == "dress" else []
    return [_join(color, SLEEVE_WORDS.get(sleeve, UNKNOWN), kind if kind != UNKNOWN else UPPER_PLACEHOLDER)]


def _lower(v: dict[str, Any]) -> list[str]:
    color, kind = v["lower_color"], v["lower_type"]
    if color == kind == UNKNOWN:
        return []
    return [_join(color, kind if kind != UNKNOWN else LOWER_PLACEHOLDER)]


def _shoes(v: dict[str, Any]) -> list[str]:
    color, kind = v["shoes_color"], v["shoes_type"]
    if color == kind == UNKNOWN:
        return []
    return [_join(color, SHOE_WORDS.get(kind, "shoes"))]


def _set(name: str, prefix: str = "") -> Any:
    def render(v: dict[str, Any]) -> list[str]:
        items = v[name]
        if items == UNKNOWN:
            return [UNKNOWN_SET_WORDS[name]]
        return [f"{prefix}{item}" for item in items]
    return render


def _motion(v: dict[str, Any]) -> list[str]:
    return [] if v["motion"] == UNKNOWN else [v["motion"]]


def _orientation(v: dict[str, Any]) -> list[str]:
    return [] if v["orientation"] == UNKNOWN else [f"{v['orientation']} view"]


_RENDERERS = (_person, _body, _hair, _headwear, _accessories, _upper, _lower, _shoes,
              _set("bags"), _set("held", "holding "), _set("pose"), _motion, _orientation)


def to_compact(desc: PersonDescription) -> str:
    """Render the compact caption; ``parse_compact`` reads it back to the same values."""
    v = desc.values()
    return ", ".join(p for render in _RENDERERS for p in render(v))


# --- the grammar, enumerated -----------------------------------------------------------------
def _opt(values: tuple[str, ...]) -> list[str]:
    return [UNKNOWN, *values]


def compact_slots() -> list[tuple[str, dict[str, dict[str, Any]], bool]]:
    """Every legal phrase, grouped into ordered slots: ``[(slot, {phrase: values}, repeatable)]``.

    A compact caption is, in slot order, at most one phrase from each slot (several distinct
    ones, in listed order, for repeatable slots), joined by ", ". Constrained decoding and the
    parser both use this table, so they cannot disagree about the grammar.
    """
    a = BY_NAME
    slots: list[tuple[str, dict[str, dict[str, Any]], bool]] = []

    def slot(name: str, combos: list[dict[str, Any]], render: Any, repeatable: bool = False) -> None:
        table: dict[str, dict[str, Any]] = {}
        for combo in combos:
            phrases = render({**_BLANK, **combo})
            if len(phrases) == 1:
                table.setdefault(phrases[0], combo)
        slots.append((name, table, repeatable))

    slot("person", [{"gender": g, "age": ag} for g, ag in product(_opt(a["gender"].values), _opt(a["age"].values))],
         _person)
    slot("body", [{"body": b} for b in a["body"].values], _body)
    slot("hair", [{"hair_length": ln, "hair_color": c}
                  for ln, c in product(_opt(a["hair_length"].values), _opt(HAIR_COLORS))], _hair)
    slot("headwear", [{"headwear": h} for h in (*a["headwear"].values, UNKNOWN)], _headwear)
    for acc in BINARY_ACCESSORIES:
        slot(acc, [{acc: "yes"}, {acc: UNKNOWN}], _accessories)
    slot("upper", [{"upper_color": c, "upper_sleeve": s, "upper_type": t}
                   for c, s, t in product(_opt(COLORS), _opt(a["upper_sleeve"].values), _opt(a["upper_type"].values))],
         _upper)
    slots[-1][1][UPPER_PLACEHOLDER] = {"upper_color": UNKNOWN, "upper_sleeve": UNKNOWN, "upper_type": UNKNOWN}
    slot("lower", [{"lower_color": c, "lower_type": t}
                   for c, t in product(_opt(COLORS), _opt(a["lower_type"].values))], _lower)
    slot("shoes", [{"shoes_color": c, "shoes_type": t}
                   for c, t in product(_opt(COLORS), _opt(a["shoes_type"].values))], _shoes)
    for name, prefix in (("bags", ""), ("held", "holding "), ("pose", "")):
        table = {f"{prefix}{v}": {name: (v,)} for v in a[name].values}
        table[UNKNOWN_SET_WORDS[name]] = {name: UNKNOWN}
        slots.append((name, table, True))
    slot("motion", [{"motion": m} for m in a["motion"].values], _motion)
    slot("orientation", [{"orientation": o} for o in a["orientation"].values], _orientation)
    return slots


# Values of a description with nothing known and nothing carried: the base of every slot render.
_BLANK: dict[str, Any] = {name: UNKNOWN for name in BY_NAME} | {
    "headwear": "none", "glasses": "no", "mask": "no", "scarf": "no", "gloves": "no",
    "bags": (), "held": (), "pose": (),
}
_SLOTS = compact_slots()


def parse_compact(text: str) -> PersonDescription | None:
    """Parse a compact caption; ``None`` when ``text`` is not in the compact grammar."""
    phrases = [p.strip() for p in text.strip().rstrip(".").split(",")]
    if phrases == [""]:
        phrases = []
    values: dict[str, Any] = dict(_BLANK)
    slot_idx = 0
    for phrase in phrases:
        while slot_idx < len(_SLOTS) and phrase not in _SLOTS[slot_idx][1]:
            slot_idx += 1
        if slot_idx == len(_SLOTS):
            return None
        name, table, repeatable = _SLOTS[slot_idx]
        for key, val in table[phrase].items():
            if repeatable and val != UNKNOWN and values[key] != UNKNOWN:
                if val[0] in values[key]:
                    return None
                values[key] = (*values[key], *val)
            else:
                values[key] = val
        if not repeatable or values.get(name) == UNKNOWN:
            slot_idx += 1
    return PersonDescription.from_values(values)
