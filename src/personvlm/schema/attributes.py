"""The attribute vocabulary: every label, caption, head and API field maps onto these names.

One table drives everything (heads, captions, one_hot mapping, search), so adding a value
here is the only change needed to teach the whole system a new word.
"""

from __future__ import annotations

from dataclasses import dataclass

UNKNOWN = "unknown"

COLORS: tuple[str, ...] = (
    "black", "white", "gray", "red", "orange", "yellow",
    "green", "blue", "purple", "pink", "brown", "beige",
)
HAIR_COLORS: tuple[str, ...] = ("black", "brown", "blonde", "gray", "white", "red")


@dataclass(frozen=True)
class Attribute:
    """One attribute: its legal values (``unknown`` is always legal on top of these).

    ``multi`` attributes hold a set of values (an empty set means "none of them"), e.g. bags.
    """

    name: str
    group: str
    values: tuple[str, ...]
    multi: bool = False

    @property
    def all_values(self) -> tuple[str, ...]:
        """Values including ``unknown``, in the order heads use as class indices."""
        return (*self.values, UNKNOWN) if not self.multi else self.values


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("gender", "person", ("male", "female")),
    Attribute("age", "person", ("child", "adult", "elderly")),
    Attribute("body", "person", ("fat", "normal", "thin")),
    Attribute("orientation", "person", ("front", "back", "side")),
    Attribute("hair_length", "head", ("short", "long", "bald")),
    Attribute("hair_color", "head", HAIR_COLORS),
    Attribute("headwear", "head", ("none", "hat", "cap", "helmet")),
    Attribute("glasses", "head", ("no", "yes")),
    Attribute("mask", "head", ("no", "yes")),
    Attribute("scarf", "head", ("no", "yes")),
    Attribute("gloves", "accessories", ("no", "yes")),
    Attribute(
        "upper_type", "upper",
        ("t-shirt", "shirt", "sweater", "hoodie", "jacket", "coat", "cotton-padded coat",
         "suit", "vest", "dress", "uniform", "graduation gown", "chef uniform"),
    ),
    Attribute("upper_sleeve", "upper", ("short", "long", "sleeveless")),
    Attribute("upper_color", "upper", COLORS),
    Attribute("lower_type", "lower", ("trousers", "jeans", "shorts", "long skirt", "short skirt", "dress")),
    Attribute("lower_color", "lower", COLORS),
    Attribute("shoes_type", "shoes", ("leather", "casual", "boots", "sandals", "other")),
    Attribute("shoes_color", "shoes", COLORS),
    Attribute(
        "bags", "carried",
        ("backpack", "shoulder bag", "handbag", "plastic bag", "paper bag", "suitcase", "other bag"),
        multi=True,
    ),
    Attribute("held", "carried", ("phone", "umbrella", "cup"), multi=True),
    Attribute("pose", "action", ("calling", "smoking", "hands behind back", "arms crossed"), multi=True),
    Attribute(
        "motion", "action",
        ("walking", "running", "standing", "sitting", "riding bicycle", "riding scooter", "riding skateboard"),
    ),
)

BY_NAME: dict[str, Attribute] = {a.name: a for a in ATTRIBUTES}
NAMES: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES)


def attribute(name: str) -> Attribute:
    """Look an attribute up by name with an error that lists the legal names."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown attribute {name!r}; known: {', '.join(NAMES)}") from None
