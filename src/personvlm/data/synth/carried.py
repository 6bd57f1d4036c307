"""Things a person wears on the body or carries: backpack straps and bodies, shoulder bags,
waist packs, phones, cups, cigarettes, umbrellas and hand-held bags (handbag, plastic bag,
paper bag, suitcase). Each is drawn where the skeleton put the hand or the torso.

Sizes follow real proportions of a standing height ``u`` (a shoulder bag or handbag is about 30 cm,
a sixth of a person): drawn at half that, bags were a few pixels at surveillance resolution and the
heads never learnt to see them (bags stayed at the majority answer, "none").
"""

from __future__ import annotations

from typing import Any

from personvlm.data.synth.colors import RGB, mix, scale, shade
from personvlm.data.synth.draws import pick
from personvlm.data.synth.painter import Painter, Pt, lerp, sorted_box
from personvlm.data.synth.skeleton import Skeleton

BACKPACK_COLORS = ["black", "black", "gray", "blue", "red", "green"]


def draw_worn_bags(p: Painter, s: Skeleton, v: dict[str, Any]) -> None:
    """Straps and bags worn on the body, drawn over the torso."""
    bags = v["bags"]
    sh0, sh1 = s.shoulder
    pel = s.pelvis
    lw = max(1, round(s.u * 0.014))
    if "backpack" in bags and s.view != "back":
        bag = p.item_color("backpack", BACKPACK_COLORS)
        if s.view == "front":
            for sh in (sh0, sh1):
                x = sh[0] + (s.shoulder_half * 0.35 if sh[0] < pel[0] else -s.shoulder_half * 0.35)
                p.draw.line([(x, sh[1] - 1), (x, sh[1] + s.u * 0.2)], fill=(*scale(bag, 0.9), 255), width=lw + 2)
        else:
            f = s.facing
            top = sh1[1] + s.u * 0.01
            p.draw.rounded_rectangle(sorted_box(sh1[0] - f * s.shoulder_half * 0.9, top,
                                                sh1[0] - f * s.shoulder_half * 2.6, top + s.u * 0.27),
                                     radius=s.u * 0.025, fill=(*bag, 255))
            p.draw.line([(sh1[0] + f * 1, top), (sh1[0] - f * s.shoulder_half * 0.5, top + s.u * 0.14)],
                        fill=(*scale(bag, 0.8), 255), width=lw)
    if "shoulder bag" in bags:
        col = shade(p.rng, pick(p.rng, ["black", "brown", "gray", "beige", "red"]))
        if s.view == "side":
            a, b = (sh1[0], sh1[1]), (pel[0] - s.facing * s.hip_half * 0.6, pel[1])
        else:
            a, b = (sh0[0] + 1, sh0[1]), (pel[0] + s.hip_half * 1.1, pel[1])
        p.draw.line([a, b], fill=(*scale(col, 0.8), 255), width=lw)
        p.draw.rounded_rectangle(sorted_box(b[0] - s.u * 0.075, b[1] - s.u * 0.03, b[0] + s.u * 0.075,
                                            b[1] + s.u * 0.11), radius=2, fill=(*col, 255))
    if "other bag" in bags:  # a waist pack
        col = shade(p.rng, pick(p.rng, ["black", "green", "blue", "gray"]))
        y = pel[1] - s.u * 0.04
        p.draw.line([(pel[0] - s.hip_half, y), (pel[0] + s.hip_half, y)], fill=(20, 20, 20, 255), width=lw)
        cxp = pel[0] + (s.facing * s.hip_half * 0.8 if s.view == "side" else 0)
        p.draw.rounded_rectangle([cxp - s.u * 0.05, y - s.u * 0.02, cxp + s.u * 0.05, y + s.u * 0.035], radius=3,
                                 fill=(*col, 255))


def draw_held(p: Painter, s: Skeleton, v: dict[str, Any], jobs: list[str | None], hand: RGB) -> None:
    rng = p.rng
    u = s.u
    for i, job in enumerate(jobs):
        if job is None or job in ("handlebar", "crossed", "behind", "pocket"):
            continue
        w = lerp(s.elbow[i], s.wrist[i], 1.08)
        if job in ("phone_ear", "phone"):
            col = (25, 25, 30) if rng.random() < 0.7 else (200, 200, 205)
            p.draw.rectangle(sorted_box(w[0] - u * 0.01, w[1] - u * 0.028, w[0] + u * 0.01, w[1] + u * 0.005),
                             fill=(*col, 255))
        elif job == "mouth":
            p.draw.line([w, (w[0] + (s.facing or 1) * u * 0.03, w[1] - u * 0.005)], fill=(240, 240, 235, 255), width=1)
            p.ellipse((w[0] + (s.facing or 1) * u * 0.05, w[1] - u * 0.03), u * 0.015, u * 0.012, (200, 200, 205))
        elif job == "cup":
            col = shade(rng, pick(rng, ["white", "brown", "red", "green", "black"]))
            p.draw.rectangle([w[0] - u * 0.012, w[1] - u * 0.03, w[0] + u * 0.012, w[1] + u * 0.005], fill=(*col, 255))
            p.draw.line([(w[0] - u * 0.013, w[1] - u * 0.03), (w[0] + u * 0.013, w[1] - u * 0.03)],
                        fill=(240, 240, 240, 255), width=1)
        elif job == "umbrella":
            col = shade(rng, pick(rng, ["black", "black", "blue", "red", "purple", "green", "white"]))
            top = s.head[1] - s.head_h * 0.5 - u * 0.07  # the canopy's rim, clear of the head
            cxu = w[0]
            rad = u * 0.24
            p.draw.line([w, (cxu, top)], fill=(40, 40, 40, 255), width=1)
            p.draw.chord([cxu - rad, top - rad * 0.55, cxu + rad, top + rad * 0.55], 180, 360, fill=(*col, 255))
            for t in (-0.5, 0.0, 0.5):
                p.draw.line([(cxu, top - rad * 0.5), (cxu + t * rad, top)], fill=(*scale(col, 0.7), 255), width=1)
        elif job.startswith("bag:"):
            _draw_hand_bag(p, s, job[4:], w)
        p.ellipse(w, s.arm_w * 0.55, s.arm_w * 0.6, hand)


def _draw_hand_bag(p: Painter, s: Skeleton, kind: str, w: Pt) -> None:
    rng, u = p.rng, s.u
    if kind == "handbag":
        col = shade(rng, pick(rng, ["black", "brown", "red", "beige", "white"]))
        p.draw.arc([w[0] - u * 0.045, w[1] - u * 0.01, w[0] + u * 0.045, w[1] + u * 0.07], 180, 360,
                   fill=(*scale(col, 0.7), 255), width=max(1, round(u * 0.01)))
        p.poly([(w[0] - u * 0.06, w[1] + u * 0.03), (w[0] + u * 0.06, w[1] + u * 0.03),
                (w[0] + u * 0.075, w[1] + u * 0.12), (w[0] - u * 0.075, w[1] + u * 0.12)], col)
    elif kind == "plastic bag":
        col = mix((235, 235, 235), shade(rng, pick(rng, ["white", "blue", "red", "yellow", "black"])),
                  rng.uniform(0, 0.6))
        p.poly([(w[0] - u * 0.03, w[1]), (w[0] + u * 0.03, w[1]), (w[0] + u * 0.07, w[1] + u * 0.07),
                (w[0] + u * 0.06, w[1] + u * 0.17), (w[0] - u * 0.06, w[1] + u * 0.17),
                (w[0] - u * 0.07, w[1] + u * 0.07)], col)
        p.draw.line([(w[0] - u * 0.03, w[1] + u * 0.08), (w[0] + u * 0.015, w[1] + u * 0.14)],
                    fill=(*scale(col, 0.8), 255), width=1)
    elif kind == "paper bag":
        col = shade(rng, "brown" if rng.random() < 0.5 else "beige")
        p.draw.line([(w[0] - u * 0.02, w[1] + u * 0.03), w, (w[0] + u * 0.02, w[1] + u * 0.03)],
                    fill=(60, 50, 40, 255), width=1)
        p.draw.rectangle([w[0] - u * 0.065, w[1] + u * 0.03, w[0] + u * 0.065, w[1] + u * 0.18], fill=(*col, 255))
    elif kind == "suitcase":
        col = shade(rng, pick(rng, ["black", "gray", "blue", "red", "white", "pink"]))
        ground = max(a[1] for a in s.ankle) + u * 0.035
        out = s.facing * -1 if s.view == "side" else (1 if w[0] > s.pelvis[0] else -1)
        x0 = w[0] + out * u * 0.02
        p.draw.line([w, (x0, ground - u * 0.3)], fill=(70, 70, 70, 255), width=max(1, round(u * 0.008)))
        p.draw.rounded_rectangle(sorted_box(x0 - u * 0.07, ground - u * 0.3, x0 + u * 0.07, ground - u * 0.02),
                                 radius=2, fill=(*col, 255))
        for dx in (-0.05, 0.05):
            p.ellipse((x0 + dx * u, ground - u * 0.01), u * 0.012, u * 0.012, (20, 20, 20))
