"""Drawing one person onto a transparent layer: body, garments, head, hair and headwear,
with what they carry (``carried.py``) and ride or sit on (``vehicles.py``) in between.

Everything is PIL polygons, lines and ellipses between the joints of ``skeleton.py``, in
back-to-front order for the view (a backpack is behind the torso from the front and on top of
it from behind). Shading and the camera effects come later (``scene.py``), applied to the
whole crop at once, which keeps this module free of per-pixel work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from personvlm.data.synth.carried import BACKPACK_COLORS, draw_held, draw_worn_bags
from personvlm.data.synth.colors import RGB, denim_shade, hair_shade, mix, scale, shade, skin_tone
from personvlm.data.synth.draws import pick
from personvlm.data.synth.painter import Painter, Pt, lerp
from personvlm.data.synth.sampling import HAND_BAGS
from personvlm.data.synth.skeleton import Skeleton, build
from personvlm.data.synth.vehicles import draw_behind_rider, draw_in_front_of_rider
from personvlm.schema import HAIR_COLORS

# Hem heights, as fractions of the standing height from the top of the head: a coat ends between
# mid-thigh and just below the knee (the real crops' men wear mid-thigh coats; coats of 0.78 alone
# drew every coated man in a knee-length A-line, the shape of a dress), a padded coat at the hip or
# upper thigh, a gown near the ankle.
COATS = {"coat": (0.58, 0.78), "cotton-padded coat": (0.55, 0.68), "graduation gown": (0.9, 0.95)}
# Share of women's coats that are tailored: in at the waist, flared at the hem (the real crops' woman
# wears one). Men's coats always hang straight: drawn fitted, real men in coats were read as women.
FITTED_COAT = 0.5
FLARE = 1.3  # a tailored coat's hem, as a multiple of the hips' width

# Half the width of the neck's base, as a share of the head's width: where the torso's top edge
# starts and where collars sit.
NECK_HALF = 0.38


# Where the hair ends over the forehead, in half head heights below the head's centre (the eyes sit
# at about 0). Every short cut used to come down to the eyes, a bowl, so a rendered bare head never
# showed a forehead under dark hair, while real bare heads do: the model read real men's front and
# side views as caps (p(headwear=none) ~0.3 on real bare heads against 0.95 on rendered ones), since
# a rendered cap is a dark dome with skin below it. Most hairlines now sit where a face's upper third
# starts (a quarter of the head's height below the crown, -0.5; the eyes at half), leaving the
# forehead bare; a fringe, as often a man's as a woman's, still reaches the brows.
FRINGE_LINE = 0.08
FRINGE_SHARE = 0.25
HAIRLINE_RANGE = (-0.55, -0.3)


# A knit beanie's geometry, in half head heights from the head's centre (top, lower edge) and in
# skull widths (width). Real ones are pulled down over the ears and stand above the skull: the real
# crops' white knit hat, a white dome over dark hair, was read as short white hair (p(headwear=none)
# 0.90) while every rendered beanie was a shallow chord high on the crown (top -1.3, edge about
# -0.5). The edge now reaches the brows (-0.2), and the old shallow beanie stays in the ranges.
BEANIE_TOP = (-1.55, -1.3)
BEANIE_EDGE = (-0.55, -0.2)
BEANIE_WIDTH = (1.06, 1.22)
POMPOM_SHARE = 0.25


@dataclass(frozen=True)
class HairStyle:
    """How the hair sits, decided once per person so every view draws the same hairdo.

    ``volume`` is the hair's width over the skull's (1.0: a close cut) and ``reach`` how far the
    mass falls below the head's centre, in half head heights (about 1: the jaw, 1.6: the collar).
    ``falls``: long hair hangs below the head (down the back, behind a profile's neck).
    ``hairline``: where the hair ends over the forehead (see ``FRINGE_LINE``).
    Real women's hair at crop size is mostly a mass wider than the skull that frames the face and
    covers the neck (the real crops' woman: a shoulder-length blonde mop); drawn as a cap on the
    skull, the renders taught the model nothing about it, and masking a real woman's head left her
    p(female) where it was (``personvlm data real-probe``).
    """

    bob: bool = False
    volume: float = 1.0
    reach: float = 0.0
    falls: bool = False
    hairline: float = FRINGE_LINE


def hair_style(values: dict[str, Any], rng: np.random.Generator) -> HairStyle:
    """Many women's "short" hair is a chin-length bob, fuller than a man's cut; most long hair,
    anyone's, stands out around the head (the rest is tied back or sleek) and all of it falls below
    the head. A helmet holds the hair: no mass, no fall."""
    length = values["hair_length"]
    if length == "bald" or values["headwear"] == "helmet":
        return HairStyle()
    line = FRINGE_LINE if rng.random() < FRINGE_SHARE else float(rng.uniform(*HAIRLINE_RANGE))
    if length == "short" and values["gender"] == "female" and rng.random() < 0.6:
        return HairStyle(bob=True, volume=rng.uniform(1.05, 1.65), reach=rng.uniform(0.8, 1.2), hairline=line)
    falls = length == "long"
    if falls and rng.random() < 0.7:
        return HairStyle(volume=rng.uniform(1.1, 1.65), reach=rng.uniform(1.2, 1.7), falls=True, hairline=line)
    return HairStyle(falls=falls, hairline=line)


@dataclass
class Drawn:
    """What the drawing made visible, for the label (face shown, hands shown, feet drawn)."""

    face_visible: bool
    hands_visible: bool
    feet_y: float  # bottom of the shoes, for deciding when a crop cut them off
    bbox: tuple[float, float, float, float]


POCKET_TOPS = ("coat", "cotton-padded coat", "jacket", "hoodie", "suit")
# Share of each top worn closed to the chin (a raised collar, a turtleneck): the neck is hidden,
# for men and women alike. Real winter crops show it everywhere; a renderer that always showed a
# man's neck taught the model that a hidden neck means long hair, i.e. a woman (a raised collar
# doubled the shipped model's p(female) on rendered men, 0.20 -> 0.47).
RAISED_COLLAR = {"coat": 0.6, "cotton-padded coat": 0.7, "jacket": 0.45, "sweater": 0.25}


def hand_jobs(values: dict[str, Any], rng: np.random.Generator) -> list[str | None]:
    """Decide what each hand does from pose, held items and bags (index 1 = near/right hand).

    A free hand of someone in a coat is often in a pocket (as in winter street footage).
    """
    motion, pose, held, bags = values["motion"], values["pose"], values["held"], values["bags"]
    if motion.startswith("riding") and motion != "riding skateboard":
        return ["handlebar", "handlebar"]
    if "arms crossed" in pose:
        return ["crossed", "crossed"]
    if "hands behind back" in pose:
        return ["behind", "behind"]
    jobs: list[str] = []
    if "calling" in pose:
        jobs.append("phone_ear")
    if "smoking" in pose:
        jobs.append("mouth")
    for item in held:
        if item == "phone" and "calling" in pose:
            continue
        jobs.append({"umbrella": "umbrella", "cup": "cup", "phone": "phone"}[item])
    jobs += [f"bag:{b}" for b in bags if b in HAND_BAGS]
    hands: list[str | None] = [None, None]
    for i, job in enumerate(jobs[:2]):
        hands[1 - i] = job
    pockets = values["upper_type"] in POCKET_TOPS and motion in ("walking", "standing") and rng.random() < 0.3
    return [("pocket" if job is None and pockets else job) for job in hands]


def draw_person(painter: Painter, values: dict[str, Any], u: float, cx: float, ground: float,
                facing: int) -> Drawn:
    """Draw the person described by ``values`` (all known) standing on ``ground`` at ``cx``."""
    rng = painter.rng
    jobs = hand_jobs(values, rng)
    skel = build(values, rng, u, cx, ground, facing,
                 [("hold" if j and j.startswith("bag:") else j) for j in jobs])
    view = skel.view
    side = view == "side"
    skin = skin_tone(rng)
    hair = hair_shade(rng, values["hair_color"]) if values["hair_color"] in HAIR_COLORS else scale(skin, 0.8)
    style = hair_style(values, rng)
    upper_rgb = shade(rng, values["upper_color"])
    lower_rgb = shade(rng, values["lower_color"]) if values["lower_type"] != "dress" else upper_rgb
    if values["lower_type"] == "jeans" and values["lower_color"] == "blue":
        lower_rgb = denim_shade(rng)
    shoe_rgb = shade(rng, values["shoes_color"])
    glove_rgb = shade(rng, "black" if rng.random() < 0.6 else pick(rng, ["gray", "brown", "blue", "red"]))
    hand_rgb = glove_rgb if values["gloves"] == "yes" else skin
    quilt = u * rng.uniform(0.035, 0.055) if values["upper_type"] == "cotton-padded coat" else 0.0
    upper_cloth = painter.fabric(upper_rgb, values.get("_texture_upper", "plain"), quilt=quilt)
    lower_cloth = painter.fabric(lower_rgb, values.get("_texture_lower", "plain"), denim=values["lower_type"] == "jeans")
    if values["lower_type"] == "dress":
        lower_cloth = upper_cloth

    # Arms behind the torso: hands behind the back (unless seen from behind) and a profile's far arm.
    arms_back = (0, 1) if skel.arms_behind and view != "back" else (0,) if side else ()
    draw_behind_rider(painter, skel, values, ground)
    if view == "front":
        _draw_behind_front(painter, skel, values, hair, style, upper_rgb)
    for i in arms_back:
        _draw_arm(painter, skel, i, values, upper_cloth, upper_rgb, skin, hand_rgb)
    for i in (0, 1):
        _draw_leg(painter, skel, i, values, lower_cloth, skin, shoe_rgb)
    _draw_skirt(painter, skel, values, lower_cloth)
    _draw_torso(painter, skel, values, upper_cloth, upper_rgb, skin)
    if view == "back":
        _draw_back_items(painter, skel, values, hair, style)
    for i in (0, 1):
        if i not in arms_back:
            _draw_arm(painter, skel, i, values, upper_cloth, upper_rgb, skin, hand_rgb)
    _draw_head(painter, skel, values, skin, hair, style)
    draw_worn_bags(painter, skel, values)
    draw_held(painter, skel, values, jobs, hand_rgb)
    draw_in_front_of_rider(painter, skel, values, ground)

    hands_visible = not (skel.arms_behind and view == "front") and jobs != ["pocket", "pocket"]
    feet_y = max(a[1] for a in skel.ankle) + u * 0.035
    xs = [p[0] for p in (*skel.shoulder, *skel.wrist, *skel.ankle, *skel.knee)]
    bbox = (min(xs) - skel.arm_w, ground - u, max(xs) + skel.arm_w, max(feet_y, ground))
    return Drawn(face_visible=view != "back", hands_visible=hands_visible, feet_y=feet_y, bbox=bbox)


# --- body parts ---------------------------------------------------------------------------
def _draw_leg(p: Painter, s: Skeleton, i: int, v: dict[str, Any], cloth: Image.Image, skin: RGB, shoe: RGB) -> None:
    hip, knee, ankle = s.hip[i], s.knee[i], s.ankle[i]
    lw = s.leg_w
    kind = v["lower_type"]
    p.limb(hip, knee, lw, skin)
    p.limb(knee, ankle, lw * 0.8, skin)
    if kind in ("trousers", "jeans"):
        flare = 1.1 if kind == "jeans" else 1.0
        p.paint(cloth, [("limb", (hip, knee, lw * 1.05)), ("limb", (knee, lerp(knee, ankle, 0.95), lw * 0.9 * flare))])
    elif kind == "shorts":
        p.paint(cloth, [("limb", (hip, lerp(hip, knee, 0.75), lw * 1.15))])
    elif v["motion"] == "sitting" and kind in ("dress", "short skirt", "long skirt"):
        # Seated, a skirt lies along the thighs (and a long one falls over the shins).
        parts = [("limb", (hip, lerp(hip, knee, 1.05), lw * 1.3))]
        if kind == "long skirt":
            parts.append(("limb", (knee, lerp(knee, ankle, 0.8), lw * 1.2)))
        p.paint(cloth, parts)
    # shoes
    toe_dir = s.facing if s.view == "side" else 0
    fl = s.u * (0.065 if toe_dir else 0.03)
    fh = s.u * 0.028
    foot = (ankle[0] + toe_dir * fl * 0.55, ankle[1] + fh * 0.7)
    stype = v["shoes_type"]
    if stype == "boots":
        p.limb(lerp(knee, ankle, 0.55), ankle, lw * 0.9, shoe)
    if stype == "sandals":
        p.ellipse(foot, fl * 0.55 if toe_dir else lw * 0.42, fh * 0.55, skin)
        p.draw.line([(foot[0] - lw * 0.4, foot[1]), (foot[0] + lw * 0.4, foot[1])], fill=(*shoe, 255), width=1)
        p.draw.line([(ankle[0] - lw * 0.3, ankle[1] + 1), (ankle[0] + lw * 0.3, ankle[1] + 1)], fill=(*shoe, 255))
        return
    rx = fl * 0.6 if toe_dir else lw * 0.45
    p.ellipse(foot, rx, fh * 0.6, shoe)
    if stype == "casual":  # a light sole
        sole = (225, 225, 220) if sum(shoe) < 500 else (120, 120, 120)
        p.draw.line([(foot[0] - rx, foot[1] + fh * 0.45), (foot[0] + rx, foot[1] + fh * 0.45)], fill=(*sole, 255),
                    width=max(1, round(fh * 0.35)))
    elif stype == "leather":  # a shine on the toe
        p.ellipse((foot[0] + toe_dir * rx * 0.4, foot[1] - fh * 0.15), rx * 0.25, fh * 0.18, scale(shoe, 1.6))
    elif stype == "other":  # slippers: flat, with a contrasting band
        p.draw.line([(foot[0] - rx, foot[1] - fh * 0.2), (foot[0] + rx, foot[1] - fh * 0.2)],
                    fill=(*mix(shoe, (255, 255, 255), 0.5), 255), width=max(1, round(fh * 0.4)))


def _draw_skirt(p: Painter, s: Skeleton, v: dict[str, Any], cloth: Image.Image) -> None:
    kind = v["lower_type"]
    if kind not in ("short skirt", "long skirt"):
        return
    top = s.pelvis[1] - s.u * 0.04
    hem_y = lerp(s.hip[0], s.knee[0], 0.7)[1] if kind == "short skirt" else lerp(s.knee[0], s.ankle[0], 0.8)[1]
    xs = s.leg_x_at(hem_y)
    half = s.hip_half * (1.0 if s.view != "side" else 1.1)
    left = min(*xs, s.pelvis[0] - half) - s.leg_w * 0.7
    right = max(*xs, s.pelvis[0] + half) + s.leg_w * 0.7
    p.paint(cloth, [("poly", [(s.pelvis[0] - half, top), (s.pelvis[0] + half, top), (right, hem_y), (left, hem_y)])])


def _torso_outline(s: Skeleton, hem_y: float, puff: float, hangs: bool, flare: float = 1.0) -> list[Pt]:
    """Torso polygon from the shoulders to ``hem_y`` (covering the legs for long coats).

    A ``hangs`` garment (a coat) falls straight from the chest: it hides the waist and the hips of
    either sex. Drawn fitted, a coated man had a woman's waist and a flared hem. A hem below the
    hips is at least ``flare`` times their width (a tailored coat's skirt).
    """
    sh_c = lerp(s.shoulder[0], s.shoulder[1], 0.5)
    pel = s.pelvis
    waist = lerp(sh_c, pel, 0.62)
    sw, ww, hw = s.shoulder_half * puff, s.waist_half * puff, s.hip_half * puff
    if hangs:
        ww = max(ww, (sw + hw) / 2)
        hw = max(hw, ww)
    if s.view == "side":
        f = s.facing
        back = [(sh_c[0] - f * sw, sh_c[1] - s.u * 0.005), (waist[0] - f * ww, waist[1]), (pel[0] - f * hw, pel[1])]
        front = [(sh_c[0] + f * sw * 1.1, sh_c[1] + s.u * 0.02), (waist[0] + f * ww * (1.2 if puff > 1.2 else 1.0),
                                                                  waist[1]), (pel[0] + f * hw, pel[1])]
    else:
        # Shoulders slope from the base of the neck down to their tips, as real ones do; a square
        # top edge made real men's sloping shoulders look narrow, i.e. female.
        neck_half, top, tip = s.head_w * NECK_HALF, sh_c[1] - s.u * 0.012, sh_c[1] + s.u * 0.03
        back = [(sh_c[0] - neck_half, top), (sh_c[0] - sw, tip), (waist[0] - ww, waist[1]), (pel[0] - hw, pel[1])]
        front = [(sh_c[0] + neck_half, top), (sh_c[0] + sw, tip), (waist[0] + ww, waist[1]), (pel[0] + hw, pel[1])]
    if hem_y > pel[1] + 1:
        xs = s.leg_x_at(hem_y)
        lo, hi = min(xs) - s.leg_w * 0.75, max(xs) + s.leg_w * 0.75
        if s.view == "side":
            back.append((hi if s.facing < 0 else lo, hem_y))
            front.append((lo if s.facing < 0 else hi, hem_y))
        else:
            back.append((min(lo, pel[0] - hw * flare), hem_y))
            front.append((max(hi, pel[0] + hw * flare), hem_y))
    return [*back, *reversed(front)]


def _draw_torso(p: Painter, s: Skeleton, v: dict[str, Any], cloth: Image.Image, base: RGB, skin: RGB) -> None:
    kind = v["upper_type"]
    ground = s.ankle[0][1] + s.u * 0.045
    height_top = ground - s.u
    if kind in COATS:
        hem_y = height_top + s.u * p.rng.uniform(*COATS[kind])
    elif kind == "dress":
        hem_y = height_top + s.u * (0.74 if p.rng.random() < 0.6 else 0.88)
    elif kind in ("t-shirt", "vest", "shirt", "sweater", "hoodie", "jacket", "suit", "uniform", "chef uniform"):
        hem_y = s.pelvis[1] + s.u * (0.015 if kind != "suit" else 0.04)
    else:
        hem_y = s.pelvis[1]
    if v["motion"] in ("sitting", "riding bicycle") and hem_y > s.pelvis[1]:
        hem_y = s.pelvis[1] + (hem_y - s.pelvis[1]) * 0.3
    puff = 1.18 if kind == "cotton-padded coat" else 1.06 if kind in ("coat", "graduation gown") else 1.0
    tailored = kind == "coat" and v["gender"] == "female" and p.rng.random() < FITTED_COAT
    outline = _torso_outline(s, hem_y, puff, hangs=kind in COATS and not tailored, flare=FLARE if tailored else 1.0)
    # neck
    p.limb(s.neck, lerp(s.neck, s.head, 0.4), s.head_w * 0.5, skin)
    p.paint(cloth, [("poly", outline)])
    d = p.draw
    sh_c = lerp(s.shoulder[0], s.shoulder[1], 0.5)
    dark = scale(base, 0.6) if sum(base) > 120 else mix(base, (255, 255, 255), 0.25)
    lw = max(1, round(s.u * 0.008))
    front_view = s.view == "front"
    x_mid = sh_c[0] + (s.facing * s.shoulder_half * 0.6 if s.view == "side" else 0)
    if kind == "cotton-padded coat":  # a high padded collar
        p.ellipse((sh_c[0], sh_c[1] - s.u * 0.005), s.head_w * 0.55, s.u * 0.022, scale(base, 0.9))
    if p.rng.random() < RAISED_COLLAR.get(kind, 0.0):  # up to the jaw; the head is drawn over it
        p.paint(cloth, [("limb", (sh_c, lerp(s.neck, s.head, 0.6), s.head_w * p.rng.uniform(0.8, 1.0)))])
    if front_view and kind in ("jacket", "coat", "cotton-padded coat", "hoodie", "uniform"):
        d.line([(x_mid, sh_c[1] + s.u * 0.02), (x_mid, hem_y)], fill=(*dark, 255), width=lw)  # zip / opening
    if front_view and kind in ("suit", "coat"):
        inner = (235, 235, 235) if kind == "suit" else scale(base, 0.75)
        vy = sh_c[1] + s.u * (0.13 if kind == "suit" else 0.08)
        p.poly([(x_mid - s.shoulder_half * 0.35, sh_c[1] + 1), (x_mid + s.shoulder_half * 0.35, sh_c[1] + 1),
                (x_mid, vy)], inner)
        if kind == "suit":
            tie = shade(p.rng, pick(p.rng, ["red", "blue", "black", "gray"]))
            d.line([(x_mid, sh_c[1] + 2), (x_mid, vy)], fill=(*tie, 255), width=max(1, round(s.u * 0.012)))
            for side_sign in (-1, 1):  # lapels
                d.line([(x_mid + side_sign * s.shoulder_half * 0.4, sh_c[1] + 1), (x_mid, vy + s.u * 0.02)],
                       fill=(*scale(base, 0.55), 255), width=lw)
    neck_half = s.head_w * NECK_HALF  # collars sit where the torso's top edge meets the neck
    if kind == "shirt":  # a pointed light collar in every view, a placket and buttons from the front
        col = mix(base, (255, 255, 255), 0.6)
        if s.view == "back":
            p.poly([(sh_c[0] - neck_half * 1.2, sh_c[1] - s.u * 0.012), (sh_c[0] + neck_half * 1.2, sh_c[1] - s.u * 0.012),
                    (sh_c[0] + neck_half, sh_c[1] + s.u * 0.014), (sh_c[0] - neck_half, sh_c[1] + s.u * 0.014)], col)
        else:
            p.poly([(x_mid - s.shoulder_half * 0.35, sh_c[1] - s.u * 0.005), (x_mid, sh_c[1] + s.u * 0.04),
                    (x_mid + s.shoulder_half * 0.35, sh_c[1] - s.u * 0.005)], col)
        if front_view:
            d.line([(x_mid, sh_c[1] + s.u * 0.04), (x_mid, hem_y)], fill=(*col, 255), width=lw + 1)
            for t in (0.3, 0.5, 0.7):
                p.ellipse((x_mid, sh_c[1] + (hem_y - sh_c[1]) * t), 0.9, 0.9, col)
        if p.rng.random() < 0.5:  # tucked in, with a belt
            _band(p, s, outline, s.pelvis[1] - s.u * 0.01, s.u * 0.014, (35, 30, 28))
    if kind == "t-shirt" and front_view:
        p.ellipse((x_mid, sh_c[1] + 1), s.head_w * 0.28, s.u * 0.012, skin)
    if kind == "sweater":  # a crew neck and a wide ribbed hem band, as wide as the body, in every view
        rib = trim(base)
        _band(p, s, outline, hem_y - s.u * 0.015, s.u * 0.03, rib)
        if s.view != "side":
            p.ellipse((sh_c[0], sh_c[1] - s.u * 0.004), neck_half * 1.15, s.u * 0.014, rib)
    if kind == "hoodie":  # the hood lies on the back and shoulders; pocket and drawstrings in front
        hood = trim(base, 0.5)
        if s.view == "back":
            p.ellipse((sh_c[0], sh_c[1] + s.u * 0.035), s.head_w * 0.8, s.u * 0.055, hood)
            d.arc([sh_c[0] - s.head_w * 0.55, sh_c[1] - s.u * 0.01, sh_c[0] + s.head_w * 0.55, sh_c[1] + s.u * 0.07],
                  0, 180, fill=(*scale(hood, 0.7), 255), width=lw)
        elif s.view == "side":
            p.ellipse((s.neck[0] - s.facing * s.head_w * 0.45, sh_c[1] + s.u * 0.01), s.head_w * 0.42, s.u * 0.05, hood)
        else:
            p.ellipse((x_mid, hem_y - s.u * 0.065), s.shoulder_half * 0.6, s.u * 0.035, hood)
            for dx in (-1, 1):
                d.line([(x_mid + dx * s.head_w * 0.18, sh_c[1] + 1),
                        (x_mid + dx * s.head_w * 0.22, sh_c[1] + s.u * 0.08)], fill=(235, 235, 235, 255), width=lw + 1)
    if kind == "jacket":  # a waistband at the hem, a collar, often worn open over a lighter layer
        band = trim(base)
        _band(p, s, outline, hem_y - s.u * 0.012, s.u * 0.026, band)
        if s.view == "back":
            p.poly([(sh_c[0] - neck_half * 1.3, sh_c[1] - s.u * 0.012), (sh_c[0] + neck_half * 1.3, sh_c[1] - s.u * 0.012),
                    (sh_c[0] + neck_half * 1.1, sh_c[1] + s.u * 0.016), (sh_c[0] - neck_half * 1.1, sh_c[1] + s.u * 0.016)],
                   band)
        elif front_view and p.rng.random() < 0.5:
            inner = shade(p.rng, pick(p.rng, ["white", "gray", "black", "blue"]))
            w = s.shoulder_half * 0.14
            p.poly([(x_mid - w * 1.6, sh_c[1] + 1), (x_mid + w * 1.6, sh_c[1] + 1),
                    (x_mid + w, hem_y - s.u * 0.02), (x_mid - w, hem_y - s.u * 0.02)], inner)
        if s.view != "back":
            for sgn in (-1, 1):  # collar points
                p.poly([(x_mid + sgn * neck_half, sh_c[1] - s.u * 0.01), (x_mid + sgn * neck_half * 2.0, sh_c[1]),
                        (x_mid + sgn * neck_half * 0.4, sh_c[1] + s.u * 0.045)], band)
    if kind == "chef uniform" and front_view:
        for dx in (-0.35, 0.35):
            for t in (0.2, 0.4, 0.6):
                p.ellipse((x_mid + dx * s.shoulder_half, sh_c[1] + (hem_y - sh_c[1]) * t), 0.9, 0.9, (60, 60, 60))
    if kind == "uniform":
        for sh in s.shoulder:  # epaulettes and a belt
            p.ellipse(sh, s.shoulder_half * 0.22, s.u * 0.01, scale(base, 0.55))
        _band(p, s, outline, s.pelvis[1] - s.u * 0.03, s.u * 0.02, (30, 30, 30))
        if front_view:  # a buckle and a chest badge
            p.ellipse((sh_c[0], s.pelvis[1] - s.u * 0.03), s.u * 0.012, s.u * 0.009, (200, 180, 90))
            p.ellipse((sh_c[0] + s.shoulder_half * 0.4, sh_c[1] + s.u * 0.05), 1.2, 1.2, (220, 190, 60))
    if kind == "graduation gown" and front_view:
        p.poly([(x_mid - s.shoulder_half * 0.4, sh_c[1] + 1), (x_mid + s.shoulder_half * 0.4, sh_c[1] + 1),
                (x_mid, sh_c[1] + s.u * 0.08)], shade(p.rng, pick(p.rng, ["red", "blue", "yellow", "white"])))


def trim(base: RGB, strength: float = 1.0) -> RGB:
    """A trim colour that stands out from ``base`` (a rib, a waistband, a hood's shadow): darker on
    light cloth, lighter on dark cloth. Trims of 0.7x the base vanished once a crop was scaled
    down to surveillance size, and with them the only cues to the garment's type."""
    if sum(base) > 240:
        return scale(base, 1 - 0.45 * strength)
    return mix(base, (255, 255, 255), 0.4 * strength)


def _band(p: Painter, s: Skeleton, outline: list[Pt], y: float, height: float, color: RGB) -> None:
    """A horizontal band across the torso at ``y`` (a belt, a ribbed hem, a waistband), clipped to
    the body's width there so it reads as part of the garment in any view."""
    xs = [x for x, _ in outline]
    half = s.hip_half if s.view != "side" else s.shoulder_half
    left = max(min(xs), s.pelvis[0] - half * 1.15)
    right = min(max(xs), s.pelvis[0] + half * 1.15)
    p.draw.rectangle([left, y - height / 2, right, y + height / 2], fill=(*color, 255))


def _draw_arm(p: Painter, s: Skeleton, i: int, v: dict[str, Any], cloth: Image.Image, base: RGB, skin: RGB,
              hand: RGB) -> None:
    sh, el, wr = s.shoulder[i], s.elbow[i], s.wrist[i]
    aw = s.arm_w
    kind, sleeve = v["upper_type"], v["upper_sleeve"]
    puff = 1.3 if kind == "cotton-padded coat" else 1.5 if kind == "graduation gown" else 1.1
    p.limb(sh, el, aw, skin)
    p.limb(el, wr, aw * 0.85, skin)
    if sleeve == "long":
        p.paint(cloth, [("limb", (sh, el, aw * puff)), ("limb", (el, lerp(el, wr, 0.9), aw * puff * 0.9))])
        if kind == "sweater":  # ribbed cuffs
            p.limb(lerp(el, wr, 0.78), lerp(el, wr, 0.92), aw * puff * 0.95, trim(base))
    elif sleeve == "short":
        p.paint(cloth, [("limb", (sh, lerp(sh, el, 0.55), aw * 1.25))])
    if kind == "uniform" and sleeve != "sleeveless":  # a badge on the upper sleeve
        p.ellipse(lerp(sh, el, 0.3), aw * 0.55, aw * 0.6, pick(p.rng, [(220, 190, 60), (200, 40, 40), (235, 235, 235)]))
    if not (s.arms_behind and s.view == "front") and s.hand_item[i] != "pocket":
        p.ellipse(lerp(el, wr, 1.08), aw * 0.55, aw * 0.6, hand)


def _draw_hair_fall(p: Painter, s: Skeleton, hair: RGB, top: float, top_x: tuple[float, float],
                    bottom_x: tuple[float, float], reach: tuple[float, float]) -> None:
    """Long hair as one quadrilateral in every view (front: behind the body; back: on it; profile:
    behind the neck), so the views differ only in their numbers: the top edge ``top`` head heights
    below the head's centre with its corners ``top_x`` head widths from it, the bottom corners
    ``bottom_x`` (in the order that closes the outline) a random ``reach`` of head heights below."""
    hx, hy = s.head
    length = s.head_h * p.rng.uniform(*reach)
    y = hy + s.head_h * top
    p.poly([(hx + s.head_w * top_x[0], y), (hx + s.head_w * top_x[1], y),
            (hx + s.head_w * bottom_x[0], hy + length), (hx + s.head_w * bottom_x[1], hy + length)], hair)


def _draw_behind_front(p: Painter, s: Skeleton, v: dict[str, Any], hair: RGB, style: HairStyle, upper: RGB) -> None:
    """Things behind a front-facing body: long hair down the back, a hood, a backpack's sides."""
    hx, hy = s.head
    if style.falls:
        _draw_hair_fall(p, s, hair, -0.1, (-0.55, 0.55), (0.7, -0.7), (1.3, 2.0))
    if v["upper_type"] == "hoodie":
        p.ellipse((hx, hy + s.head_h * 0.35), s.head_w * 0.72, s.head_h * 0.55, scale(upper, 0.8))
    if "backpack" in v["bags"]:
        sh_c = lerp(s.shoulder[0], s.shoulder[1], 0.5)
        bag = p.item_color("backpack", BACKPACK_COLORS)
        w = s.shoulder_half * 1.05
        p.poly([(sh_c[0] - w, sh_c[1] + s.u * 0.03), (sh_c[0] + w, sh_c[1] + s.u * 0.03),
                (sh_c[0] + w, sh_c[1] + s.u * 0.2), (sh_c[0] - w, sh_c[1] + s.u * 0.2)], bag)


def _draw_back_items(p: Painter, s: Skeleton, v: dict[str, Any], hair: RGB, style: HairStyle) -> None:
    """On top of the torso seen from behind: long hair, a backpack (the hood is the torso's)."""
    sh_c = lerp(s.shoulder[0], s.shoulder[1], 0.5)
    if style.falls:
        _draw_hair_fall(p, s, hair, 0.0, (-0.55, 0.55), (0.65, -0.65), (1.3, 2.1))
    if "backpack" in v["bags"]:
        bag = p.item_color("backpack", BACKPACK_COLORS)
        w = s.shoulder_half * 0.8
        top = sh_c[1] + s.u * 0.02
        p.draw.rounded_rectangle([sh_c[0] - w, top, sh_c[0] + w, top + s.u * 0.22], radius=s.u * 0.03,
                                 fill=(*bag, 255))
        p.draw.rounded_rectangle([sh_c[0] - w * 0.7, top + s.u * 0.11, sh_c[0] + w * 0.7, top + s.u * 0.2],
                                 radius=s.u * 0.02, fill=(*scale(bag, 0.75), 255))


def _draw_head(p: Painter, s: Skeleton, v: dict[str, Any], skin: RGB, hair: RGB, style: HairStyle) -> None:
    hx, hy = s.head
    rx, ry = s.head_w / 2, s.head_h / 2
    f = s.facing
    hl = v["hair_length"]
    if s.view == "side" and style.falls:  # falls behind the neck
        _draw_hair_fall(p, s, hair, -0.2, (-f * 0.525, f * 0.05), (-f * 0.1, -f * 0.625), (1.2, 1.9))
    if style.volume > 1.0:
        _draw_hair_mass(p, s, hair, style)
    p.ellipse((hx, hy), rx, ry, skin)
    d = p.draw
    eye = (25, 20, 20, 255)
    if s.view == "side":  # nose bump and a profile
        p.ellipse((hx + f * rx * 0.95, hy + ry * 0.1), rx * 0.2, ry * 0.15, skin)
    if style.bob:
        for sgn in ((-f,) if s.view == "side" else (-1, 1)):
            p.ellipse((hx + sgn * rx * 0.85, hy + ry * 0.15), rx * 0.42, ry * 0.8, hair)
    if hl != "bald":
        if s.view == "back":
            p.ellipse((hx, hy - ry * 0.05), rx * 1.03 * (1.1 if style.bob else 1.0), ry * (1.1 if style.bob else 0.98), hair)
        elif s.view == "side":
            p.poly([(hx - f * rx * 1.05, hy + ry * 0.55), (hx - f * rx * 1.05, hy - ry * 0.3),
                    (hx - f * rx * 0.2, hy - ry * 1.05), (hx + f * rx * 0.85, hy - ry * 0.6),
                    (hx + f * rx * 0.2, hy - ry * 0.3), (hx - f * rx * 0.1, hy + ry * 0.2)], hair)
            # a profile's hair comes 0.07 lower than the front view's (the temple), as before hairlines
            _dome(p, hx - f * rx * 0.1, hy, rx * 0.95, ry, -1.05, style.hairline + 0.07, hair)
        else:
            _dome(p, hx, hy, rx * 1.04, ry, -1.08, style.hairline, hair)
            for sgn in (-1, 1):
                p.ellipse((hx + sgn * rx * 0.88, hy - ry * 0.05), rx * 0.2, ry * 0.45, hair)
    if s.view != "back":
        ey = hy - ry * 0.02
        shift = s.turn * rx * 0.35 if s.view == "front" else 0.0
        hx += shift  # face features follow the turn of the head; the skull stays put
        xs = [hx + f * rx * 0.55] if s.view == "side" else [hx - rx * 0.38, hx + rx * 0.38]
        for ex in xs:
            d.ellipse([ex - 0.8, ey - 0.7, ex + 0.8, ey + 0.7], fill=eye)
        if s.view == "front":
            d.line([(hx - rx * 0.25, hy + ry * 0.5), (hx + rx * 0.25, hy + ry * 0.5)],
                   fill=(*scale(skin, 0.6), 255), width=1)
        if v["mask"] == "yes":
            col = (235, 240, 245) if p.rng.random() < 0.5 else (160, 200, 230) if p.rng.random() < 0.6 else (30, 30, 35)
            if s.view == "side":
                p.poly([(hx, hy + ry * 0.1), (hx + f * rx * 1.1, hy + ry * 0.1), (hx + f * rx * 0.8, hy + ry * 0.8),
                        (hx, hy + ry * 0.8)], col)
            else:
                d.rounded_rectangle([hx - rx * 0.75, hy + ry * 0.12, hx + rx * 0.75, hy + ry * 0.85], radius=2,
                                    fill=(*col, 255))
        if v["glasses"] == "yes":
            # Frames two pixels wide (one-pixel ones vanished in the downscale to crop size, and the
            # model never learned glasses); a third of them sunglasses, dark lenses filled in.
            gc = (15, 15, 15, 255)
            lens = gc if p.rng.random() < 0.35 else None
            for ex in xs:
                d.ellipse([ex - rx * 0.3, ey - ry * 0.2, ex + rx * 0.3, ey + ry * 0.2], outline=gc, fill=lens, width=2)
            if s.view == "front":
                d.line([(xs[0] + rx * 0.3, ey), (xs[1] - rx * 0.3, ey)], fill=gc, width=2)
            else:
                d.line([(xs[0] - f * rx * 0.3, ey), (hx - f * rx * 0.35, ey)], fill=gc, width=2)
    _draw_headwear(p, s, v)
    if v["scarf"] == "yes":
        col = shade(p.rng, pick(p.rng, ["red", "gray", "beige", "blue", "black", "white", "green"]))
        p.limb((hx - rx * 0.9, hy + ry * 1.3), (hx + rx * 0.9, hy + ry * 1.3), s.head_h * 0.32, col)
        if s.view == "front":
            p.limb((hx + rx * 0.4, hy + ry * 1.3), (hx + rx * 0.5, hy + ry * 2.6), s.head_h * 0.2, scale(col, 0.9))


def _dome(p: Painter, cx: float, hy: float, rx: float, ry: float, top: float, bottom: float, hair: RGB) -> None:
    """The hair over the skull as an ellipse from ``top`` to ``bottom`` (half head heights from the
    head's centre ``hy``): its lower edge is the hairline over the forehead."""
    p.ellipse((cx, hy + ry * (top + bottom) / 2), rx, ry * (bottom - top) / 2, hair)


def _draw_hair_mass(p: Painter, s: Skeleton, hair: RGB, style: HairStyle) -> None:
    """The hair standing out around the skull, behind the face: from the crown to ``style.reach``,
    ``style.volume`` times the skull's width (centred behind the face in a profile). Waves in
    lighter and darker shades of the same hair make the outline ragged and the mass no flat disc,
    as real hair looks at crop size; the fuller the hair, the more curls, over the crown too. A full
    mass drawn smooth looked like a hat: the model read a real woman's curly blonde mop as a hat
    or a helmet."""
    hx, hy = s.head
    rx, ry = s.head_w / 2 * style.volume, s.head_h / 2
    top, bottom = hy - ry * 1.08, hy + ry * style.reach
    cx, cy, half = hx - s.facing * rx * 0.25, (top + bottom) / 2, (bottom - top) / 2
    p.ellipse((cx, cy), rx, half, hair)
    lowest = -1.0 if style.volume > 1.3 else -0.3  # full hair all round; else the sides and the bottom
    for _ in range(7 + round((style.volume - 1.0) * 20)):
        angle = p.rng.uniform(lowest, 1.0) * math.pi
        r = s.head_w * p.rng.uniform(0.12, 0.22)
        at = p.rng.uniform(0.6, 0.95)  # the rim and just inside it
        p.ellipse((cx + math.cos(angle) * rx * at, cy + math.sin(angle) * half * at), r,
                  r * p.rng.uniform(1.0, 1.6), scale(hair, p.rng.uniform(0.7, 1.4)))


def _draw_headwear(p: Painter, s: Skeleton, v: dict[str, Any]) -> None:
    kind = v["headwear"]
    if kind == "none":
        return
    hx, hy = s.head
    rx, ry = s.head_w / 2, s.head_h / 2
    f = s.facing
    rng = p.rng
    col = shade(rng, pick(rng, ["black", "white", "gray", "red", "blue", "beige", "brown", "yellow"]))
    if v["upper_type"] == "chef uniform" and kind == "hat":
        col = (238, 238, 238)
        p.poly([(hx - rx, hy - ry * 0.5), (hx + rx, hy - ry * 0.5), (hx + rx * 1.2, hy - ry * 1.9),
                (hx - rx * 1.2, hy - ry * 1.9)], col)
        return
    if v["upper_type"] == "graduation gown" and kind == "hat":  # mortarboard
        p.ellipse((hx, hy - ry * 0.6), rx * 1.02, ry * 0.45, (20, 20, 20))
        p.poly([(hx - rx * 1.5, hy - ry * 1.0), (hx, hy - ry * 1.3), (hx + rx * 1.5, hy - ry * 1.0),
                (hx, hy - ry * 0.75)], (25, 25, 25))
        return
    if kind == "helmet":
        col = shade(rng, pick(rng, ["white", "red", "yellow", "blue", "black", "orange"]))
        p.draw.chord([hx - rx * 1.25, hy - ry * 1.3, hx + rx * 1.25, hy + ry * 0.9], 180, 360, fill=(*col, 255))
        p.ellipse((hx - rx * 0.35, hy - ry * 0.85), rx * 0.35, ry * 0.12, mix(col, (255, 255, 255), 0.6))
        p.draw.line([(hx - rx * 0.9, hy - ry * 0.2), (hx, hy + ry * 0.95), (hx + rx * 0.9, hy - ry * 0.2)],
                    fill=(30, 30, 30, 255), width=1)
        return
    if kind == "cap":
        p.draw.chord([hx - rx * 1.06, hy - ry * 1.15, hx + rx * 1.06, hy + ry * 0.3], 180, 360, fill=(*col, 255))
        visor = scale(col, 0.8)
        if s.view == "side":
            p.poly([(hx, hy - ry * 0.45), (hx + f * rx * 1.6, hy - ry * 0.35), (hx + f * rx * 0.2, hy - ry * 0.25)],
                   visor)
        elif s.view == "front":
            p.ellipse((hx, hy - ry * 0.42), rx * 0.9, ry * 0.14, visor)
        return
    if rng.random() < 0.5:
        _draw_beanie(p, s, col)
    else:  # brimmed hat
        p.ellipse((hx, hy - ry * 0.55), rx * 1.7, ry * 0.22, scale(col, 0.85))
        p.draw.rounded_rectangle([hx - rx * 0.9, hy - ry * 1.45, hx + rx * 0.9, hy - ry * 0.55], radius=2,
                                 fill=(*col, 255))


def _draw_beanie(p: Painter, s: Skeleton, col: RGB) -> None:
    """A knit beanie: a dome over the skull, ``BEANIE_TOP`` above it and down to ``BEANIE_EDGE``,
    wider than the skull by ``BEANIE_WIDTH``, with its folded brim a darker band along the edge and,
    on ``POMPOM_SHARE`` of them, a pompom on the crown."""
    hx, hy = s.head
    rx, ry = s.head_w / 2, s.head_h / 2
    top, edge = hy + ry * p.rng.uniform(*BEANIE_TOP), hy + ry * p.rng.uniform(*BEANIE_EDGE)
    half = rx * p.rng.uniform(*BEANIE_WIDTH)
    p.draw.chord([hx - half, top, hx + half, 2 * edge - top], 180, 360, fill=(*col, 255))
    band = ry * p.rng.uniform(0.22, 0.4)
    p.draw.rectangle([hx - half, edge - band, hx + half, edge], fill=(*scale(col, 0.8), 255))
    if p.rng.random() < POMPOM_SHARE:
        p.ellipse((hx, top), rx * 0.3, ry * 0.25, col)


def facing_for(view: str, rng: np.random.Generator) -> int:
    """+1/-1 for a side view (which way the nose points), 0 for front and back views."""
    return (1 if rng.random() < 0.5 else -1) if view == "side" else 0
