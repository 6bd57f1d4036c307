"""Attribute schema, the structured description, and the two caption styles.

``to_text(desc, style)`` renders a caption; ``parse(text)`` reads one back (compact captions
exactly, natural captions and real MSP60K captions with the sentence parser).
"""

from __future__ import annotations

from personvlm.schema.attributes import ATTRIBUTES, BY_NAME, COLORS, HAIR_COLORS, NAMES, UNKNOWN, Attribute
from personvlm.schema.compact import parse_compact, to_compact
from personvlm.schema.description import (
    ONE_HOT_LEN,
    ONE_HOT_NAMES,
    AttributeValue,
    PersonDescription,
    from_one_hot,
    to_one_hot,
)

STYLES: tuple[str, ...] = ("compact", "natural")


def to_text(desc: PersonDescription, style: str = "compact") -> str:
    """Render ``desc`` as a caption in ``style`` (``compact`` or ``natural``)."""
    if style == "compact":
        return to_compact(desc)
    if style == "natural":
        from personvlm.schema.natural import to_natural

        return to_natural(desc)
    raise ValueError(f"unknown caption style {style!r}; expected one of {STYLES}")


def parse(text: str) -> PersonDescription:
    """Read any caption (compact, natural, or a real MSP60K caption) into a description."""
    compact = parse_compact(text)
    if compact is not None:
        return compact
    from personvlm.schema.natural import parse_natural

    return parse_natural(text)


__all__ = [
    "ATTRIBUTES", "Attribute", "AttributeValue", "BY_NAME", "COLORS", "HAIR_COLORS", "NAMES", "ONE_HOT_LEN",
    "ONE_HOT_NAMES", "PersonDescription", "STYLES", "UNKNOWN", "from_one_hot", "parse", "parse_compact",
    "to_compact", "to_one_hot", "to_text",
]
