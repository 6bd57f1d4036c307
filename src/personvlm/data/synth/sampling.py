"""Sampling plausible attribute sets for the renderer.

Label frequencies default to MSP60K's (``marginals.json``, derived once from the one_hot
labels of ``val.jsonl`` with ``personvlm data synth-marginals``) so a model trained on the
synthetic set starts from the real priors. Two things are layered on top, in code, because
they are about *plausibility* and *learnability*, not frequencies:

- a probability floor (``floor`` in the JSON): MSP60K has 0.1% paper bags and 0.3% running;
  a classifier never learns values it sees a handful of times, so each value gets at least
  ``floor`` (renormalised);
- rules that keep the combinations believable: a dress is both upper and lower type, skirts
  and dresses go with women, helmets mostly with riding, a rider's hands are on the
  handlebars, a hand holds at most one thing, a child does not wear a suit or smoke.

What the pixels can show (glasses from behind, shoes when cut off) is decided later by the
renderer, which knows the view and the occlusion; this module returns the *worn* outfit.

A marginals file (``--marginals``) is JSON with: ``floor``; ``exclusive`` {attribute: {value:
p}} for gender, age, body, orientation, upper/lower/shoes type and colour, upper_sleeve,
motion (missing values get p = 0, then the floor); ``sets`` {bags|held|pose: {item: rate}};
``binary`` {glasses|mask|scarf|gloves: rate of "yes"}; ``hair_length_by_gender`` {male|female:
{short|long|bald: p}}; ``hair_color``, ``headwear`` and ``texture`` (plain, stripes, check,
print) as {value: p}. Copy the bundled file and edit it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personvlm.data.synth.draws import weighted
from personvlm.schema import BY_NAME, COLORS, HAIR_COLORS, ONE_HOT_NAMES, UNKNOWN
from personvlm.schema.description import ONE_HOT_LEN

DEFAULT_MARGINALS = Path(__file__).resolve().parent.parent / "marginals.json"

EXCLUSIVE = ("gender", "age", "body", "orientation", "upper_type", "upper_sleeve", "lower_type",
             "shoes_type", "motion")
SETS = ("bags", "held", "pose")
COLOR_ATTRS = ("upper_color", "lower_color", "shoes_color")
BINARY = ("glasses", "mask", "scarf", "gloves")
TEXTURES = ("plain", "stripes", "check", "print")
RIDING = ("riding bicycle", "riding scooter", "riding skateboard")
# Carried things that occupy one hand each; a rider or someone with folded arms has none free.
HAND_BAGS = ("handbag", "plastic bag", "paper bag", "suitcase")
HAND_HELD = ("umbrella", "cup", "phone")
WINTER_TOPS = ("coat", "cotton-padded coat")
LONG_SLEEVED_TOPS = ("sweater", "hoodie", "jacket", "coat", "cotton-padded coat", "suit", "graduation gown",
                     "chef uniform")


class MarginalsError(ValueError):
    """A marginals file that cannot be used; the message names the file and the bad entry."""


@dataclass(frozen=True)
class Marginals:
    """Per-value probabilities the sampler draws from (already floored and normalised).

    ``exclusive`` holds one distribution per single-valued attribute (colours included);
    ``sets`` an independent rate per member of bags/held/pose; ``hair`` the hair-length
    distribution per gender (long hair is 43% of women and 0.4% of men in MSP60K).
    """

    exclusive: Mapping[str, Mapping[str, float]]
    sets: Mapping[str, Mapping[str, float]]
    binary: Mapping[str, float]
    hair: Mapping[str, Mapping[str, float]]
    hair_color: Mapping[str, float]
    headwear: Mapping[str, float]
    texture: Mapping[str, float]
    source: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> Marginals:
        """Read and validate a marginals JSON file (default: the bundled MSP60K-derived one)."""
        path = Path(path) if path is not None else DEFAULT_MARGINALS
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MarginalsError(f"{path}: marginals file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MarginalsError(f"{path}: not a readable JSON file ({exc})") from None
        if not isinstance(raw, dict):
            raise MarginalsError(f"{path}: expected a JSON object at the top level")
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<dict>") -> Marginals:
        floor = raw.get("floor", 0.0)
        if not isinstance(floor, int | float) or not 0 <= floor < 0.5:
            raise MarginalsError(f"{source}: 'floor' must be a number in [0, 0.5), got {floor!r}")

        def dist(key: str, legal: Iterable[str], table: Any) -> dict[str, float]:
            legal = tuple(legal)
            if not isinstance(table, Mapping) or not table:
                raise MarginalsError(f"{source}: {key!r} must be an object of {{value: probability}}")
            bad = [v for v in table if v not in legal]
            if bad:
                raise MarginalsError(f"{source}: {key!r} has illegal value(s) {bad}; legal: {list(legal)}")
            probs = {}
            for v in legal:
                p = table.get(v, 0.0)
                if not isinstance(p, int | float) or p < 0:
                    raise MarginalsError(f"{source}: {key}.{v} must be a probability >= 0, got {p!r}")
                probs[v] = float(p)
            total = sum(probs.values())
            if total <= 0:
                raise MarginalsError(f"{source}: {key!r} has no positive probability")
            probs = {v: max(p / total, floor) for v, p in probs.items()}
            total = sum(probs.values())
            return {v: p / total for v, p in probs.items()}

        def rates(key: str, legal: Iterable[str], table: Any) -> dict[str, float]:
            if not isinstance(table, Mapping):
                raise MarginalsError(f"{source}: {key!r} must be an object of {{value: rate}}")
            out = {}
            for v in legal:
                p = table.get(v, 0.0)
                if not isinstance(p, int | float) or not 0 <= p <= 1:
                    raise MarginalsError(f"{source}: {key}.{v} must be a rate in [0, 1], got {p!r}")
                out[v] = max(float(p), floor)
            bad = [v for v in table if v not in out]
            if bad:
                raise MarginalsError(f"{source}: {key!r} has illegal value(s) {bad}; legal: {list(out)}")
            return out

        def section(key: str) -> Mapping[str, Any]:
            value = raw.get(key)
            if not isinstance(value, Mapping):
                raise MarginalsError(f"{source}: missing object {key!r}")
            return value

        excl = section("exclusive")
        exclusive = {name: dist(name, BY_NAME[name].values, excl.get(name)) for name in EXCLUSIVE}
        exclusive |= {name: dist(name, COLORS, excl.get(name)) for name in COLOR_ATTRS}
        sets = {name: rates(name, BY_NAME[name].values, section("sets").get(name, {})) for name in SETS}
        binary = rates("binary", BINARY, section("binary"))
        hair_tab = section("hair_length_by_gender")
        hair = {g: dist(f"hair_length_by_gender.{g}", BY_NAME["hair_length"].values, hair_tab.get(g))
                for g in BY_NAME["gender"].values}
        return cls(
            exclusive=exclusive,
            sets=sets,
            binary=binary,
            hair=hair,
            hair_color=dist("hair_color", HAIR_COLORS, raw.get("hair_color")),
            headwear=dist("headwear", BY_NAME["headwear"].values, raw.get("headwear")),
            texture=dist("texture", TEXTURES, raw.get("texture")),
            source=source,
        )


def _choice(rng: np.random.Generator, table: Mapping[str, float]) -> str:
    """One key drawn with its probability."""
    return weighted(rng, list(table), list(table.values()))


def sample_outfit(rng: np.random.Generator, marginals: Marginals,
                  forced: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Draw one plausible set of worn attributes (every value known) plus rendering choices.

    ``forced`` pins attribute values (e.g. ``{"upper_type": "suit"}``) and the rules adapt the
    rest around them; forced values are never changed by the rules. Returned extras (keys
    starting with ``_``) steer the drawing: garment textures.
    """
    forced = dict(forced or {})
    m = marginals

    def pick(name: str, table: Mapping[str, float] | None = None) -> Any:
        if name in forced:
            return forced[name]
        return _choice(rng, table if table is not None else m.exclusive[name])

    v: dict[str, Any] = {name: pick(name) for name in EXCLUSIVE + COLOR_ATTRS}
    for name in SETS:
        v[name] = forced.get(name, tuple(x for x, p in m.sets[name].items() if rng.random() < p))
    for name in BINARY:
        v[name] = forced.get(name, "yes" if rng.random() < m.binary[name] else "no")
    v["headwear"] = pick("headwear", m.headwear)

    def settle(name: str, value: Any) -> None:
        """Apply a rule's value unless the caller forced this attribute."""
        if name not in forced:
            v[name] = value

    # One-piece dress: upper and lower agree. MSP60K labels dresses on the lower body, so an
    # unforced upper "dress" only comes with a lower one (keeps dresses at MSP60K's share).
    if v["upper_type"] == "dress" and "upper_type" not in forced and v["lower_type"] != "dress":
        v["upper_type"] = "t-shirt"
    if "dress" in (v["upper_type"], v["lower_type"]):
        settle("upper_type", "dress")
        settle("lower_type", "dress")
        settle("lower_color", v["upper_color"])
    # Skirts and dresses are worn by women here; a sampled man gets trousers instead, so the
    # gender balance stays MSP60K's.
    if v["lower_type"] in ("long skirt", "short skirt", "dress"):
        if v["gender"] == "male" and "gender" not in forced and "lower_type" not in forced:
            if v["upper_type"] == "dress" and "upper_type" not in forced:
                v["upper_type"] = "t-shirt"
            if v["upper_type"] != "dress":
                v["lower_type"] = "trousers"
        if v["lower_type"] != "trousers":
            settle("gender", "female")
    # Children: no formal or professional garments, no smoking.
    if v["age"] == "child":
        if v["upper_type"] in ("suit", "graduation gown", "chef uniform", "uniform"):
            settle("upper_type", "t-shirt")
        settle("body", "thin" if v["body"] == "thin" else "normal")
        settle("pose", tuple(p for p in v["pose"] if p != "smoking"))
    # Sleeves follow the garment.
    if v["upper_type"] == "vest":
        settle("upper_sleeve", "sleeveless")
    elif v["upper_type"] in LONG_SLEEVED_TOPS:
        settle("upper_sleeve", "long")
    else:
        # Only t-shirts (tank tops) and dresses go sleeveless; most t-shirts are short-sleeved.
        odd_sleeveless = v["upper_sleeve"] == "sleeveless" and v["upper_type"] not in ("t-shirt", "dress")
        long_tee = v["upper_type"] == "t-shirt" and v["upper_sleeve"] == "long" and rng.random() < 0.75
        if odd_sleeveless or long_tee:
            settle("upper_sleeve", "short")
    if v["upper_type"] == "suit":
        settle("lower_type", "trousers")
        settle("lower_color", v["upper_color"])
        settle("shoes_type", "leather")
    if v["upper_type"] == "chef uniform" and rng.random() < 0.85:
        settle("upper_color", "white")
    if v["upper_type"] == "graduation gown" and rng.random() < 0.8:
        settle("upper_color", "black")
    # Winter coats do not go with shorts or sandals; scarves and gloves not with bare arms.
    if v["upper_type"] in WINTER_TOPS:
        if v["lower_type"] == "shorts":
            settle("lower_type", "trousers")
        if v["shoes_type"] == "sandals":
            settle("shoes_type", "boots")
    if v["upper_sleeve"] != "long":
        settle("scarf", "no")
        settle("gloves", "no")
    # Jeans are denim: mostly blue, sometimes black or gray, rarely anything else.
    if v["lower_type"] == "jeans" and "lower_color" not in forced:
        r = rng.random()
        v["lower_color"] = "blue" if r < 0.6 else "black" if r < 0.75 else "gray" if r < 0.85 else v["lower_color"]
    # Hair by gender; the elderly go gray or white; bald heads have no hair colour.
    v["hair_length"] = pick("hair_length", m.hair[v["gender"]])
    if v["hair_length"] == "bald" and v["gender"] == "female":
        settle("hair_length", "short")
    v["hair_color"] = pick("hair_color", m.hair_color)
    if v["age"] == "elderly" and rng.random() < 0.75:
        settle("hair_color", "gray" if rng.random() < 0.6 else "white")
    elif v["age"] != "elderly" and v["hair_color"] in ("gray", "white"):
        settle("hair_color", "black")
    if v["hair_length"] == "bald":
        settle("hair_color", UNKNOWN)
    # Helmets go with riding, and a third of riders wear one.
    riding = v["motion"] in RIDING
    if v["headwear"] == "helmet" and not riding:
        settle("headwear", "cap" if rng.random() < 0.5 else "none")
    if riding and "headwear" not in forced and rng.random() < 0.35:
        v["headwear"] = "helmet"
    # Hands: a rider holds the handlebars, a runner carries little, and no hand holds two things.
    _settle_hands(v, forced, riding, rng)
    # Coats and jackets are nearly always plain cloth; shirts and sweaters carry the patterns.
    plain_top = v["upper_type"] in ("suit", "chef uniform", "graduation gown", "uniform") or (
        v["upper_type"] in (*WINTER_TOPS, "jacket") and rng.random() < 0.85)
    v["_texture_upper"] = forced.get("_texture_upper", "plain" if plain_top else _choice(rng, m.texture))
    plain_legs = v["lower_type"] in ("jeans", "trousers") and rng.random() < 0.9
    v["_texture_lower"] = forced.get("_texture_lower", "plain" if plain_legs else _choice(rng, m.texture))
    return v


def _settle_hands(v: dict[str, Any], forced: Mapping[str, Any], riding: bool, rng: np.random.Generator) -> None:
    """Drop carried things the poses leave no hand for (forced values win over sampled ones)."""
    pose, held, bags = list(v["pose"]), list(v["held"]), list(v["bags"])
    if riding or v["motion"] == "running":
        if "pose" not in forced:
            pose = []
        if "held" not in forced:
            held = []
        if "bags" not in forced:
            bags = [b for b in bags if b not in HAND_BAGS]
    if v["motion"] == "sitting" and "bags" not in forced:
        bags = [b for b in bags if b != "suitcase"]
    if "arms crossed" in pose and "hands behind back" in pose:
        pose.remove("hands behind back" if "pose" not in forced or rng.random() < 0.5 else "arms crossed")
    if "calling" in pose and "phone" not in held:
        held.append("phone")
    busy_pose = {"arms crossed", "hands behind back"} & set(pose)
    if busy_pose:
        if "held" not in forced:
            held = []
        if "bags" not in forced:
            bags = [b for b in bags if b not in HAND_BAGS]
        if "pose" not in forced:
            pose = [p for p in pose if p not in ("calling", "smoking")]
    hands_needed = [p for p in pose if p in ("calling", "smoking")]
    hands_needed += [h for h in held if not (h == "phone" and "calling" in pose)]
    hands_needed += [b for b in bags if b in HAND_BAGS]
    while len(hands_needed) > 2:
        drop = hands_needed.pop()
        for items, key in ((bags, "bags"), (held, "held"), (pose, "pose")):
            if drop in items and key not in forced:
                items.remove(drop)
                break
    for key, items in (("pose", pose), ("held", held), ("bags", bags)):
        if key not in forced:
            v[key] = tuple(x for x in BY_NAME[key].values if x in items)
    # Front views need the face for smoking and folded arms to read; turn such people around.
    if {"smoking", "arms crossed"} & set(v["pose"]) and v["orientation"] == "back" and "orientation" not in forced:
        v["orientation"] = "front" if rng.random() < 0.6 else "side"


def one_hots_from_jsonl(path: str | Path) -> list[list[int]]:
    """The one_hot labels of an MSP60K-format JSONL, read as text only (the images of a
    caption-only file such as ``val.jsonl`` do not exist, and are not needed for counting).

    Raises MarginalsError listing every bad line as ``file:line: what``.
    """
    path = Path(path)
    rows: list[list[int]] = []
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MarginalsError(f"{path}: cannot read ({exc})") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            one_hot = json.loads(line).get("one_hot")
        except (json.JSONDecodeError, AttributeError):
            problems.append(f"{path}:{lineno}: not a JSON object")
            continue
        if not (isinstance(one_hot, list) and len(one_hot) == ONE_HOT_LEN and all(v in (0, 1) for v in one_hot)):
            problems.append(f"{path}:{lineno}: expected 'one_hot' as a list of {ONE_HOT_LEN} zeros and ones")
            continue
        rows.append(one_hot)
    if problems:
        raise MarginalsError(f"{path}: {len(problems)} bad line(s):\n" + "\n".join(problems))
    if not rows:
        raise MarginalsError(f"{path}: no rows with one_hot labels")
    return rows


# Our value -> MSP60K label name, per attribute the renderer samples from MSP60K frequencies.
_MSP_LABELS: dict[str, dict[str, str]] = {
    "gender": {"male": "Male", "female": "Female"},
    "age": {"child": "Child", "adult": "Adult", "elderly": "Elderly"},
    "body": {"fat": "Fat", "normal": "Normal", "thin": "Thin"},
    "orientation": {"front": "Front", "back": "Back", "side": "Side"},
    "upper_sleeve": {"short": "Short sleeves", "long": "Long sleeves"},
    "upper_type": {"shirt": "Shirt", "jacket": "Jacket", "suit": "Suit", "vest": "Vest",
                   "cotton-padded coat": "Cotton-padded coat", "coat": "Coat", "graduation gown": "Graduation gown",
                   "chef uniform": "Chef uniform"},
    "lower_type": {"trousers": "Trousers", "shorts": "Shorts", "jeans": "Jeans", "long skirt": "Long skirt",
                   "short skirt": "Short skirt", "dress": "Dress"},
    "shoes_type": {"leather": "Leather shoes", "casual": "Casual shoes", "boots": "Boots", "sandals": "Sandals",
                   "other": "Other shoes"},
    "motion": {"walking": "Walking", "running": "Running", "standing": "Standing", "riding bicycle": "Riding bicycle",
               "riding scooter": "Riding scooter", "riding skateboard": "Riding skateboard"},
    "bags": {b: b.capitalize() for b in BY_NAME["bags"].values},
    "pose": {p: p.capitalize() for p in BY_NAME["pose"].values},
    "binary": {"glasses": "Glasses", "mask": "Mask", "scarf": "Scarf", "gloves": "Gloves"},
}


def marginals_from_msp60k(one_hots: Iterable[list[int]], floor: float = 0.03) -> dict[str, Any]:
    """Derive the marginals JSON from MSP60K one_hot rows, counting the labels directly.

    An exclusive attribute's shares are over the rows that label it (MSP60K leaves e.g. shoes
    unlabelled when they are not seen). MSP60K's coarse labels are split into our finer values
    with fixed shares (its "Shirt" covers shirts, t-shirts, sweaters and hoodies; "Hat" covers
    hats and caps); MSP60K has no "sitting", so it gets half the share of rows without a motion
    label. Colours, textures, held items and hair colours other than black are not labelled in
    MSP60K: those are chosen defaults, dominated by black/gray/blue/white like street clothing.
    """
    table = np.array([r for r in one_hots if len(r) == ONE_HOT_LEN], dtype=np.int64)
    if not len(table):
        raise ValueError("no one_hot rows to derive marginals from")
    n = len(table)

    def col(label: str) -> np.ndarray:
        return table[:, ONE_HOT_NAMES.index(label)]

    def shares(name: str, rows: np.ndarray | None = None) -> dict[str, float]:
        counts = {v: int(col(label)[rows].sum() if rows is not None else col(label).sum())
                  for v, label in _MSP_LABELS[name].items()}
        total = sum(counts.values()) or 1
        return {v: round(c / total, 4) for v, c in counts.items()}

    def rates(name: str) -> dict[str, float]:
        return {v: round(float(col(label).mean()), 4) for v, label in _MSP_LABELS[name].items()}

    exclusive: dict[str, dict[str, float]] = {
        name: shares(name) for name in ("gender", "age", "body", "orientation", "lower_type", "shoes_type")}
    motion_labelled = sum(col(label) for label in _MSP_LABELS["motion"].values()) > 0
    exclusive["motion"] = shares("motion") | {"sitting": round(float(1 - motion_labelled.mean()) / 2, 4)}
    upper = shares("upper_type")
    shirt = upper.pop("shirt")
    upper |= {"shirt": round(shirt * 0.3, 4), "t-shirt": round(shirt * 0.4, 4), "sweater": round(shirt * 0.15, 4),
              "hoodie": round(shirt * 0.15, 4), "uniform": 0.01}
    exclusive["upper_type"] = {v: upper.get(v, 0.0) for v in BY_NAME["upper_type"].values}
    exclusive["upper_sleeve"] = shares("upper_sleeve") | {"sleeveless": 0.0}
    exclusive["upper_color"] = {"black": 0.22, "white": 0.13, "gray": 0.11, "red": 0.06, "orange": 0.03,
                                "yellow": 0.04, "green": 0.05, "blue": 0.14, "purple": 0.03, "pink": 0.05,
                                "brown": 0.07, "beige": 0.07}
    exclusive["lower_color"] = {"black": 0.33, "white": 0.06, "gray": 0.12, "red": 0.03, "orange": 0.03,
                                "yellow": 0.03, "green": 0.04, "blue": 0.18, "purple": 0.03, "pink": 0.03,
                                "brown": 0.07, "beige": 0.05}
    exclusive["shoes_color"] = {"black": 0.35, "white": 0.2, "gray": 0.1, "red": 0.03, "orange": 0.03,
                                "yellow": 0.03, "green": 0.03, "blue": 0.06, "purple": 0.03, "pink": 0.03,
                                "brown": 0.08, "beige": 0.03}
    sets = {name: rates(name) for name in ("bags", "pose")}
    sets["held"] = {"phone": 0.05, "umbrella": 0.04, "cup": 0.03}
    binary = rates("binary")
    # MSP60K marks only "Long hair" and "Bald": the rest of each gender is short-haired.
    hair = {}
    for gender, label in _MSP_LABELS["gender"].items():
        rows = col(label) == 1
        long, bald = float(col("Long hair")[rows].mean()), float(col("Bald")[rows].mean())
        hair[gender] = {"short": round(1 - long - bald, 4), "long": round(long, 4), "bald": round(bald, 4)}
    black = float(col("Black hair").mean())
    rest = 1 - black
    hair_color = {"black": round(black, 4), "brown": round(rest * 0.45, 4), "blonde": round(rest * 0.25, 4),
                  "gray": round(rest * 0.12, 4), "white": round(rest * 0.06, 4), "red": round(rest * 0.12, 4)}
    hat, helmet = float(col("Hat").mean()), float(col("Helmet").mean())
    headwear = {"none": round(1 - hat - helmet, 4), "hat": round(hat / 2, 4), "cap": round(hat / 2, 4),
                "helmet": round(helmet, 4)}
    return {
        "source": f"MSP60K one_hot of {n} rows (personvlm data synth-marginals); colours, "
                  "textures, held items and non-black hair colours are chosen defaults",
        "floor": floor,
        "exclusive": exclusive,
        "sets": sets,
        "binary": binary,
        "hair_length_by_gender": hair,
        "hair_color": hair_color,
        "headwear": headwear,
        "texture": {"plain": 0.6, "stripes": 0.15, "check": 0.1, "print": 0.15},
    }
