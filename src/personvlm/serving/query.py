"""Turn an operator's search ("woman in a red coat with a suitcase", "man without hat") into
attribute filters over stored descriptions, with full text only for the words it does not know.

Why filters first: the store holds typed attributes, so "red jacket" can mean exactly
``upper_color=red AND upper_type=jacket`` instead of any caption containing "red" somewhere
(red shoes, red bag). Words the lexicon does not know ("logo", "striped") are kept as full-text
terms, so nothing the user typed is silently dropped.

The parser is a small lexicon plus one rule: a colour binds to the garment, hair or nothing that
follows it; "no"/"not"/"without" negates the next thing. Negated filters need the attribute to be
*known* and different: an event whose bags are ``unknown`` does not match "no backpack".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from personvlm.schema import BY_NAME, COLORS, HAIR_COLORS


@dataclass(frozen=True)
class Condition:
    """``attribute == value``; for multi-label attributes ``value`` is a member of the set, and
    ``None`` means "any member" (the set is not empty)."""

    attribute: str
    value: str | None

    def __post_init__(self) -> None:
        spec = BY_NAME[self.attribute]
        if self.value is None and not spec.multi:
            raise ValueError(f"{self.attribute}: 'any' conditions only exist for multi-label attributes")
        if self.value is not None and self.value not in spec.values:
            raise ValueError(f"{self.attribute}: {self.value!r} is not one of {spec.values}")


Alternative = tuple[Condition, ...]


@dataclass(frozen=True)
class Filter:
    """Matches when any alternative has all its conditions true. Negated: every attribute it
    mentions is known and no alternative matches."""

    alternatives: tuple[Alternative, ...]
    negate: bool = False
    phrase: str = field(default="", compare=False)  # the words it came from, for explain()

    @property
    def attributes(self) -> tuple[str, ...]:
        """The attributes the filter reads, in first-mention order (used for confidence ranking)."""
        seen: dict[str, None] = {}
        for alt in self.alternatives:
            for cond in alt:
                seen.setdefault(cond.attribute)
        return tuple(seen)


@dataclass(frozen=True)
class Query:
    """A parsed search: required ``filters``, optional full-text ``terms`` (ranked by how many
    match; with no filters at least one must match) and ``excluded`` words that must not appear."""

    text: str
    filters: tuple[Filter, ...] = ()
    terms: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_empty(self) -> bool:
        return not (self.filters or self.terms or self.excluded)

    def explain(self) -> dict[str, object]:
        """A JSON-able account of how the query was read (for ``--json`` and the HTTP API)."""
        return {
            "filters": [
                {
                    "phrase": f.phrase,
                    "negate": f.negate,
                    "any_of": [{c.attribute: c.value if c.value is not None else "any" for c in alt}
                               for alt in f.alternatives],
                }
                for f in self.filters
            ],
            "terms": list(self.terms),
            "excluded": list(self.excluded),
            "notes": list(self.notes),
        }


# --- lexicon -----------------------------------------------------------------------------------
def _c(attribute: str, value: str | None) -> Condition:
    return Condition(attribute, value)


# Fixed meanings: phrase -> conditions that must all hold.
_FIXED: dict[str, tuple[Condition, ...]] = {}


def _add(phrases: Iterable[str], *conds: Condition) -> None:
    for p in phrases:
        _FIXED[p] = conds


_add(("man", "men", "male", "males", "guy", "guys", "gentleman", "he"), _c("gender", "male"))
_add(("woman", "women", "female", "females", "lady", "ladies", "she"), _c("gender", "female"))
_add(("boy", "boys"), _c("gender", "male"), _c("age", "child"))
_add(("girl", "girls"), _c("gender", "female"), _c("age", "child"))
_add(("child", "children", "kid", "kids", "toddler"), _c("age", "child"))
_add(("adult", "adults", "grown-up"), _c("age", "adult"))
_add(("elderly", "old", "senior", "aged", "older"), _c("age", "elderly"))
_add(("fat", "overweight", "heavy", "chubby", "heavyset"), _c("body", "fat"))
_add(("thin", "slim", "skinny", "slender"), _c("body", "thin"))
_add(("bald",), _c("hair_length", "bald"))
_add(("long hair", "long-haired"), _c("hair_length", "long"))
_add(("short hair", "short-haired"), _c("hair_length", "short"))
_add(("hat", "hats"), _c("headwear", "hat"))
_add(("cap", "caps", "baseball cap"), _c("headwear", "cap"))
_add(("helmet", "helmets"), _c("headwear", "helmet"))
_add(("glasses", "sunglasses", "spectacles", "eyeglasses"), _c("glasses", "yes"))
_add(("mask", "face mask", "masks"), _c("mask", "yes"))
_add(("scarf", "scarves"), _c("scarf", "yes"))
_add(("gloves", "glove"), _c("gloves", "yes"))
_add(("short-sleeved", "short sleeves", "short sleeve", "short-sleeve"), _c("upper_sleeve", "short"))
_add(("long-sleeved", "long sleeves", "long sleeve", "long-sleeve"), _c("upper_sleeve", "long"))
_add(("sleeveless",), _c("upper_sleeve", "sleeveless"))
_add(("backpack", "backpacks", "rucksack", "knapsack"), _c("bags", "backpack"))
_add(("shoulder bag", "messenger bag", "satchel"), _c("bags", "shoulder bag"))
_add(("handbag", "handbags", "purse", "hand bag"), _c("bags", "handbag"))
_add(("plastic bag", "shopping bag"), _c("bags", "plastic bag"))
_add(("paper bag",), _c("bags", "paper bag"))
_add(("suitcase", "suitcases", "luggage", "trolley", "rolling suitcase"), _c("bags", "suitcase"))
_add(("bag", "bags"), _c("bags", None))
_add(("phone", "cellphone", "smartphone", "mobile phone", "mobile"), _c("held", "phone"))
_add(("umbrella", "umbrellas"), _c("held", "umbrella"))
_add(("cup", "coffee", "bottle", "drink", "mug"), _c("held", "cup"))
_add(("calling", "phone call", "on a call"), _c("pose", "calling"))
_add(("smoking", "cigarette", "smoker"), _c("pose", "smoking"))
_add(("hands behind back", "hands behind his back", "hands behind her back"), _c("pose", "hands behind back"))
_add(("arms crossed", "crossed arms", "folded arms", "arms folded"), _c("pose", "arms crossed"))
_add(("walking", "walks", "walk", "walker"), _c("motion", "walking"))
_add(("running", "runs", "run", "jogging", "runner", "jogger"), _c("motion", "running"))
_add(("standing", "stands", "stand"), _c("motion", "standing"))
_add(("sitting", "sits", "seated", "sit"), _c("motion", "sitting"))
_add(("bicycle", "bike", "cyclist", "cycling", "biking"), _c("motion", "riding bicycle"))
_add(("scooter",), _c("motion", "riding scooter"))
_add(("skateboard", "skateboarding", "skateboarder"), _c("motion", "riding skateboard"))
_add(("front view", "facing camera", "facing the camera", "from the front"), _c("orientation", "front"))
_add(("back view", "from behind", "from the back"), _c("orientation", "back"))
_add(("side view", "from the side", "profile"), _c("orientation", "side"))

# Garments: phrase -> (part, types it may be). A colour in front of one binds to its part.
_GARMENTS: dict[str, tuple[str, tuple[str, ...]]] = {}


def _garment(phrases: Iterable[str], part: str, *types: str) -> None:
    for p in phrases:
        _GARMENTS[p] = (part, types)


_garment(("t-shirt", "t-shirts", "tshirt", "t shirt", "tee"), "upper", "t-shirt")
_garment(("shirt", "shirts", "blouse"), "upper", "shirt")
_garment(("sweater", "jumper", "pullover", "cardigan"), "upper", "sweater")
_garment(("hoodie", "hoody", "sweatshirt"), "upper", "hoodie")
_garment(("jacket", "jackets", "windbreaker", "blazer"), "upper", "jacket")
_garment(("coat", "coats", "overcoat", "parka", "trench coat"), "upper", "coat", "cotton-padded coat")
_garment(("cotton-padded coat", "padded coat", "down jacket", "puffer jacket", "puffer"), "upper",
         "cotton-padded coat")
_garment(("suit", "suits"), "upper", "suit")
_garment(("vest", "tank top"), "upper", "vest")
_garment(("uniform",), "upper", "uniform")
_garment(("graduation gown", "gown"), "upper", "graduation gown")
_garment(("chef uniform",), "upper", "chef uniform")
_garment(("top", "tops", "upper body", "clothes", "clothing", "outfit"), "upper")
_garment(("trousers", "pants", "slacks", "chinos"), "lower", "trousers")
_garment(("jeans", "denim", "denims"), "lower", "jeans")
_garment(("shorts",), "lower", "shorts")
_garment(("skirt", "skirts"), "lower", "long skirt", "short skirt")
_garment(("long skirt",), "lower", "long skirt")
_garment(("short skirt", "miniskirt", "mini skirt"), "lower", "short skirt")
_garment(("bottoms", "lower body"), "lower")
_garment(("shoes", "footwear"), "shoes")
_garment(("leather shoes", "dress shoes"), "shoes", "leather")
_garment(("sneakers", "trainers", "casual shoes", "running shoes"), "shoes", "casual")
_garment(("boots",), "shoes", "boots")
_garment(("sandals", "slippers", "flip-flops"), "shoes", "sandals")
# A dress is stored as either part: the upper (one-piece) or the lower (MSP60K's Dress label).
_garment(("dress", "dresses", "gown dress"), "dress", "dress")

_COLOR_WORDS: dict[str, str] = {c: c for c in COLORS} | {
    "grey": "gray", "navy": "blue", "maroon": "red", "crimson": "red", "burgundy": "red",
    "tan": "beige", "khaki": "beige", "cream": "beige", "violet": "purple", "lilac": "purple",
    "golden": "yellow", "gold": "yellow", "silver": "gray", "olive": "green", "dark-blue": "blue",
}
_HAIR_COLOR_WORDS: dict[str, str] = {c: c for c in HAIR_COLORS} | {
    "blond": "blonde", "grey": "gray", "silver": "gray", "ginger": "red",
}
_HAIR = {"hair", "haired"}
_NEGATIONS = {"no", "not", "without", "non", "never", "isn", "aren", "doesn", "don", "nobody", "none"}
_MODIFIERS = {"dark", "light", "bright", "pale", "deep"}  # shades: the schema stores hue only
_STOPWORDS = {
    "a", "an", "the", "in", "on", "at", "of", "with", "and", "or", "who", "is", "are", "was", "t", "s",
    "wearing", "wears", "wear", "dressed", "carrying", "carries", "carry", "holding", "holds", "hold",
    "has", "have", "having", "his", "her", "their", "some", "any", "person", "people", "someone",
    "somebody", "individual", "pedestrian", "pedestrians", "that", "which", "to", "for", "by", "pair",
    "looking", "seen", "appears", "riding", "rides", "ride", "using", "while", "also", "very", "all",
    "show", "find", "me", "one", "ones", "colored", "coloured", "near", "next", "from", "into", "like",
}

_LONGEST = max(len(p.split()) for p in (*_FIXED, *_GARMENTS))
_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class _Item:
    kind: str  # fixed | garment | color | hair | neg | term | modifier
    text: str
    conds: tuple[Condition, ...] = ()  # fixed: what the phrase means
    part: str = ""  # garment: upper | lower | shoes | dress
    types: tuple[str, ...] = ()  # garment: the types it may be (empty = any)

    @property
    def is_sleeve(self) -> bool:
        return self.kind == "fixed" and self.conds[0].attribute == "upper_sleeve"


Emit = Callable[[tuple[Alternative, ...], str], None]


def _lex(text: str) -> list[_Item]:
    words = _TOKEN.findall(text.lower())
    items: list[_Item] = []
    i = 0
    while i < len(words):
        for n in range(min(_LONGEST, len(words) - i), 0, -1):
            phrase = " ".join(words[i:i + n])
            if phrase in _FIXED:
                items.append(_Item("fixed", phrase, conds=_FIXED[phrase]))
                break
            if phrase in _GARMENTS:
                part, types = _GARMENTS[phrase]
                items.append(_Item("garment", phrase, part=part, types=types))
                break
        else:
            w = words[i]
            if w in _NEGATIONS:
                items.append(_Item("neg", w))
            elif w in _HAIR:
                items.append(_Item("hair", w))
            elif w in _COLOR_WORDS or w in _HAIR_COLOR_WORDS:
                items.append(_Item("color", w))
            elif w in _MODIFIERS:
                items.append(_Item("modifier", w))
            elif w not in _STOPWORDS:
                items.append(_Item("term", w))
            n = 1
        i += n
    return items


def _garment_alternatives(part: str, types: tuple[str, ...], color: str | None) -> tuple[Alternative, ...]:
    parts = ("upper", "lower") if part == "dress" else (part,)
    alts: list[Alternative] = []
    for p in parts:
        colour_cond = (_c(f"{p}_color", color),) if color else ()
        if types:
            alts.extend((_c(f"{p}_type", t), *colour_cond) for t in types)
        elif colour_cond:
            alts.append(colour_cond)
    return tuple(alts)


def parse_query(text: str) -> Query:
    """Read a free-text search into filters and full-text terms (see the module docstring)."""
    items = _lex(text)
    filters: list[Filter] = []
    terms: list[str] = []
    excluded: list[str] = []
    notes: list[str] = []
    negate = False

    def emit(alternatives: tuple[Alternative, ...], phrase: str) -> None:
        nonlocal negate
        if alternatives:
            f = Filter(alternatives, negate, ("no " if negate else "") + phrase)
            if f not in filters:
                filters.append(f)
        negate = False

    i = 0
    while i < len(items):
        item = items[i]
        if item.kind == "neg":
            negate = True
        elif item.kind == "fixed":
            emit((item.conds,), item.text)
        elif item.kind == "garment":
            if not item.types:
                notes.append(f"{item.text!r} alone says nothing to filter on")
            emit(_garment_alternatives(item.part, item.types, None), item.text)
        elif item.kind == "color":
            i = _bind_colour(items, i, emit, notes)
        elif item.kind == "hair":
            notes.append("'hair' without a colour or length says nothing to filter on")
        elif item.kind == "term":
            if item.text.isdigit():
                notes.append(f"number {item.text!r} ignored")
            else:
                (excluded if negate else terms).append(item.text)
            negate = False
        i += 1
    return Query(text, tuple(filters), tuple(dict.fromkeys(terms)), tuple(dict.fromkeys(excluded)), tuple(notes))


def _bind_colour(items: list[_Item], i: int, emit: Emit, notes: list[str]) -> int:
    """Attach the colour at ``items[i]`` to the garment or hair after it (skipping shade words and
    sleeve phrases, which are emitted on their own); returns the index of the last item used."""
    word = items[i].text
    j = i + 1
    between: list[_Item] = []
    while j < len(items) and (items[j].kind == "modifier" or items[j].is_sleeve):
        if items[j].is_sleeve:
            between.append(items[j])
        j += 1
    target = items[j] if j < len(items) else None
    if target is not None and target.kind == "hair":
        hair = _HAIR_COLOR_WORDS.get(word)
        if hair is None:
            notes.append(f"{word!r} is not a hair colour")
        else:
            emit(((_c("hair_color", hair),),), f"{word} hair")
        return j
    colour = _COLOR_WORDS.get(word)
    if colour is None:  # a hair-only colour word ("blonde") used without "hair"
        emit(((_c("hair_color", _HAIR_COLOR_WORDS[word]),),), word)
        return i
    if target is not None and target.kind == "garment":
        emit(_garment_alternatives(target.part, target.types, colour), f"{word} {target.text}")
        for b in between:
            emit((b.conds,), b.text)
        return j
    # A bare colour: the main clothing (upper or lower) has it.
    emit(((_c("upper_color", colour),), (_c("lower_color", colour),)), word)
    return i
