"""PersonDescription: the one structured output type, its JSON form and the MSP60K one_hot mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from personvlm.schema.attributes import ATTRIBUTES, BY_NAME, NAMES, UNKNOWN, attribute

Value = str | tuple[str, ...]


@dataclass(frozen=True)
class AttributeValue:
    """A value (a string, or a sorted tuple for multi-label attributes) and the model's confidence in it."""

    value: Value
    confidence: float = 1.0


def normalise(name: str, value: Any) -> Value:
    """Check ``value`` is legal for attribute ``name`` and return its canonical form.

    Multi-label values become a tuple in schema order, so equal sets compare equal.
    Raises ValueError naming the attribute and the legal values.
    """
    spec = attribute(name)
    if value == UNKNOWN:
        return UNKNOWN
    if spec.multi:
        if isinstance(value, str):
            raise ValueError(f"{name}: expected a list of {spec.values} or 'unknown', got {value!r}")
        items = set(value)
        bad = items - set(spec.values)
        if bad:
            raise ValueError(f"{name}: illegal value(s) {sorted(bad)}; legal: {spec.values}")
        return tuple(v for v in spec.values if v in items)
    if value not in spec.values:
        raise ValueError(f"{name}: illegal value {value!r}; legal: {spec.all_values}")
    return value


@dataclass(frozen=True)
class PersonDescription:
    """Every schema attribute with a value and confidence, plus the caption the model wrote.

    Attributes not given are ``unknown``; equality of two descriptions' *values* is
    ``a.values() == b.values()`` (confidences and captions are deliberately left out).
    """

    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    caption: str = ""
    style: str = ""

    def __post_init__(self) -> None:
        full: dict[str, AttributeValue] = {}
        for name in self.attributes:
            attribute(name)  # raises for unknown names
        for name in NAMES:
            av = self.attributes.get(name, AttributeValue(UNKNOWN, 0.0))
            if not isinstance(av, AttributeValue):
                av = AttributeValue(av)
            full[name] = AttributeValue(normalise(name, av.value), float(av.confidence))
        object.__setattr__(self, "attributes", full)

    @classmethod
    def from_values(cls, values: Mapping[str, Any], confidence: float = 1.0, **kw: Any) -> PersonDescription:
        """Build from plain ``{name: value}``; every given value gets ``confidence``."""
        return cls({k: AttributeValue(v, confidence) for k, v in values.items()}, **kw)

    def value(self, name: str) -> Value:
        return self.attributes[name].value

    def values(self) -> dict[str, Value]:
        return {k: av.value for k, av in self.attributes.items()}

    def known(self) -> dict[str, Value]:
        """Only the attributes whose value is not ``unknown``."""
        return {k: v for k, v in self.values().items() if v != UNKNOWN}

    def replace(self, caption: str | None = None, style: str | None = None, **values: Any) -> PersonDescription:
        attrs = dict(self.attributes)
        for k, v in values.items():
            attrs[k] = v if isinstance(v, AttributeValue) else AttributeValue(v, 1.0)
        return PersonDescription(
            attrs,
            self.caption if caption is None else caption,
            self.style if style is None else style,
        )

    # --- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "attributes": {
                k: {"value": list(av.value) if isinstance(av.value, tuple) else av.value,
                    "confidence": av.confidence}
                for k, av in self.attributes.items()
            },
            "caption": self.caption,
            "style": self.style,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PersonDescription:
        attrs = data.get("attributes")
        if not isinstance(attrs, Mapping):
            raise ValueError("PersonDescription JSON needs an 'attributes' object")
        parsed = {}
        for k, v in attrs.items():
            if isinstance(v, Mapping):
                parsed[k] = AttributeValue(v.get("value", UNKNOWN), float(v.get("confidence", 1.0)))
            else:
                parsed[k] = AttributeValue(v)
        return cls(parsed, str(data.get("caption", "")), str(data.get("style", "")))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> PersonDescription:
        return cls.from_dict(json.loads(text))


# --- MSP60K one_hot ------------------------------------------------------------------------
ONE_HOT_NAMES: tuple[str, ...] = (
    "Female", "Male", "Child", "Adult", "Elderly", "Fat", "Normal", "Thin",
    "Bald", "Long hair", "Black hair", "Hat", "Glasses", "Mask", "Helmet", "Scarf", "Gloves",
    "Front", "Back", "Side", "Short sleeves", "Long sleeves",
    "Shirt", "Jacket", "Suit", "Vest", "Cotton-padded coat", "Coat", "Graduation gown", "Chef uniform",
    "Trousers", "Shorts", "Jeans", "Long skirt", "Short skirt", "Dress",
    "Leather shoes", "Casual shoes", "Boots", "Sandals", "Other shoes",
    "Backpack", "Shoulder bag", "Handbag", "Plastic bag", "Paper bag", "Suitcase", "Other bag",
    "Calling", "Smoking", "Hands behind back", "Arms crossed",
    "Walking", "Running", "Standing", "Riding bicycle", "Riding scooter", "Riding skateboard",
)
ONE_HOT_LEN = len(ONE_HOT_NAMES)  # 58

# (one_hot index, attribute, our value that sets it). Several of our values may map to one
# MSP60K label ("Short sleeves" covers sleeveless vests; "Dress" is set by a dress worn as the
# top or the bottom; jeans are also "Trousers", as in 78% of val.jsonl rows whose caption says
# jeans, so Jeans is read before Trousers); the first row per index is used when reading one_hot.
# "Shirt" (index 22) is not in this table: see _UPPER_RULES.
_EXCLUSIVE_MAP: tuple[tuple[int, str, str], ...] = (
    (0, "gender", "female"), (1, "gender", "male"),
    (2, "age", "child"), (3, "age", "adult"), (4, "age", "elderly"),
    (5, "body", "fat"), (6, "body", "normal"), (7, "body", "thin"),
    (8, "hair_length", "bald"), (9, "hair_length", "long"),
    (10, "hair_color", "black"),
    (11, "headwear", "hat"), (11, "headwear", "cap"), (14, "headwear", "helmet"),
    (12, "glasses", "yes"), (13, "mask", "yes"), (15, "scarf", "yes"), (16, "gloves", "yes"),
    (17, "orientation", "front"), (18, "orientation", "back"), (19, "orientation", "side"),
    (20, "upper_sleeve", "short"), (20, "upper_sleeve", "sleeveless"), (21, "upper_sleeve", "long"),
    (23, "upper_type", "jacket"), (24, "upper_type", "suit"), (25, "upper_type", "vest"),
    (26, "upper_type", "cotton-padded coat"), (27, "upper_type", "coat"),
    (28, "upper_type", "graduation gown"), (29, "upper_type", "chef uniform"),
    (32, "lower_type", "jeans"), (30, "lower_type", "trousers"), (30, "lower_type", "jeans"),
    (31, "lower_type", "shorts"),
    (33, "lower_type", "long skirt"), (34, "lower_type", "short skirt"), (35, "lower_type", "dress"),
    (35, "upper_type", "dress"),
    (36, "shoes_type", "leather"), (37, "shoes_type", "casual"), (38, "shoes_type", "boots"),
    (39, "shoes_type", "sandals"), (40, "shoes_type", "other"),
    (52, "motion", "walking"), (53, "motion", "running"), (54, "motion", "standing"),
    (55, "motion", "riding bicycle"), (56, "motion", "riding scooter"), (57, "motion", "riding skateboard"),
)
_SET_MAP: tuple[tuple[int, str, str], ...] = tuple(
    [(41 + i, "bags", v) for i, v in enumerate(BY_NAME["bags"].values)]
    + [(48 + i, "pose", v) for i, v in enumerate(BY_NAME["pose"].values)]
)
# MSP60K's "Shirt" is its generic top, labelled *instead of* a sleeve length: in val.jsonl 477
# of 520 Shirt rows have neither sleeve label, and captions say "shirt", "sweater", "jacket" or
# "coat" without a sleeve length for them, while "short-sleeved shirt" rows are labelled Short
# sleeves (19 of 409 also Shirt). So a shirt-like or outer top of unknown sleeve length sets it,
# and so does a long-sleeved shirt (about half of "long-sleeved shirt" rows are labelled Shirt).
# MSP60K's "Vest" (Chinese 背心) is any sleeveless top, so a sleeveless shirt or t-shirt sets it too.
# (one_hot index, upper types, sleeve lengths): the label is set when both match.
_UPPER_RULES: tuple[tuple[int, frozenset[str], frozenset[str]], ...] = (
    (22, frozenset({"shirt", "sweater", "hoodie", "jacket", "coat", "suit"}), frozenset({UNKNOWN})),
    (22, frozenset({"shirt"}), frozenset({"long"})),
    (25, frozenset({"shirt", "t-shirt"}), frozenset({"sleeveless"})),
)
_SHIRT_INDEX = 22
# What an all-zero group means in MSP60K's labels.
_ABSENT_DEFAULTS: dict[str, str] = {
    "hair_length": "short", "headwear": "none", "glasses": "no", "mask": "no", "scarf": "no", "gloves": "no",
}


def to_one_hot(desc: PersonDescription) -> list[int]:
    """MSP60K's 58 binary labels for a description (unknown values set no bit)."""
    out = [0] * ONE_HOT_LEN
    vals = desc.values()
    for idx, name, value in _EXCLUSIVE_MAP:
        if vals[name] == value:
            out[idx] = 1
    for idx, name, value in _SET_MAP:
        v = vals[name]
        if isinstance(v, tuple) and value in v:
            out[idx] = 1
    for idx, kinds, sleeves in _UPPER_RULES:
        if vals["upper_type"] in kinds and vals["upper_sleeve"] in sleeves:
            out[idx] = 1
    return out


def from_one_hot(one_hot: list[int] | tuple[int, ...]) -> PersonDescription:
    """Read MSP60K labels into a description; attributes MSP60K does not label stay ``unknown``.

    Where MSP60K marks two values of one of our exclusive attributes (e.g. Trousers and Dress),
    the first in one_hot order wins.
    """
    if len(one_hot) != ONE_HOT_LEN:
        raise ValueError(f"one_hot must have {ONE_HOT_LEN} entries, got {len(one_hot)}")
    if any(v not in (0, 1) for v in one_hot):
        raise ValueError("one_hot entries must be 0 or 1")
    values: dict[str, Any] = dict(_ABSENT_DEFAULTS)
    seen: set[int] = set()
    decided: set[str] = set()
    for idx, name, value in _EXCLUSIVE_MAP:
        if idx in seen:
            continue
        seen.add(idx)
        if one_hot[idx] and name not in decided:
            values[name] = value
            decided.add(name)
    if one_hot[_SHIRT_INDEX] and "upper_type" not in decided:
        values["upper_type"] = "shirt"
    for name in ("bags", "pose"):
        values[name] = tuple(v for idx, n, v in _SET_MAP if n == name and one_hot[idx])
    return PersonDescription.from_values(values)


__all__ = [
    "ATTRIBUTES", "AttributeValue", "PersonDescription", "ONE_HOT_NAMES", "ONE_HOT_LEN",
    "to_one_hot", "from_one_hot", "normalise",
]
