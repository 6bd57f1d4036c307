"""What a person sits on or rides: a bench or chair, a bicycle, a scooter, a skateboard.

Drawn in two passes around the rider: the parts behind the body first (frame, wheels in a
profile, the seat), then the parts in front of it (handlebars and the near wheel seen from
the front or from behind).
"""

from __future__ import annotations

from typing import Any

from personvlm.data.synth.colors import scale, shade
from personvlm.data.synth.draws import pick
from personvlm.data.synth.painter import Painter, sorted_box
from personvlm.data.synth.skeleton import Skeleton


def draw_behind_rider(p: Painter, s: Skeleton, v: dict[str, Any], ground: float) -> None:
    """Seat and the parts of a vehicle that are behind the rider."""
    motion = v["motion"]
    u, f = s.u, s.facing
    if motion == "sitting" and s.seat_y is not None:
        col = shade(p.rng, pick(p.rng, ["brown", "gray", "black", "green"]))
        y = s.seat_y + u * 0.015
        if s.view == "side":
            x = s.hip[0][0]
            p.draw.rectangle(sorted_box(x - f * u * 0.12, y, x + f * u * 0.2, y + u * 0.03), fill=(*col, 255))
            p.draw.rectangle(sorted_box(x - f * u * 0.12, y - u * 0.28, x - f * u * 0.09, y), fill=(*col, 255))
            for dx in (-0.1, 0.18):
                p.draw.line([(x + f * dx * u, y), (x + f * dx * u, ground)], fill=(*scale(col, 0.6), 255), width=2)
        else:
            x = s.pelvis[0]
            p.draw.rectangle([x - u * 0.2, y - u * 0.26, x + u * 0.2, y + u * 0.03], fill=(*col, 255))
            for dx in (-0.18, 0.18):
                p.draw.line([(x + dx * u, y), (x + dx * u, ground)], fill=(*scale(col, 0.6), 255), width=2)
    elif motion == "riding bicycle":
        frame = shade(p.rng, pick(p.rng, ["black", "blue", "red", "white", "gray", "green"]))
        tyre = (25, 25, 25, 255)
        r = u * 0.16
        if s.view == "side":
            rear, front = (s.pelvis[0] - f * u * 0.2, ground - r), (s.pelvis[0] + f * u * 0.4, ground - r)
            for c in (rear, front):
                p.draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], outline=tyre, width=max(2, round(u * 0.018)))
            crank = (s.pelvis[0] + f * u * 0.08, ground - u * 0.15)
            seat = (s.pelvis[0], s.seat_y or s.pelvis[1])
            bar = (front[0] - f * u * 0.05, ground - u * 0.55)
            w = max(1, round(u * 0.015))
            for a, b in ((rear, crank), (crank, seat), (seat, rear), (seat, bar), (crank, bar), (bar, front)):
                p.draw.line([a, b], fill=(*frame, 255), width=w)
            p.draw.line([(bar[0] - f * u * 0.03, bar[1]), (bar[0] + f * u * 0.04, bar[1] - u * 0.02)],
                        fill=tyre, width=w)
        else:
            c = (s.pelvis[0], ground - r)
            p.draw.line([(c[0], c[1]), (c[0], s.pelvis[1])], fill=(*frame, 255), width=max(2, round(u * 0.02)))
    elif motion == "riding scooter" and s.view == "side":
        deck = ground - u * 0.04
        col = shade(p.rng, pick(p.rng, ["black", "gray", "white", "red", "blue"]))
        x0 = s.pelvis[0]
        p.draw.rectangle(sorted_box(x0 - f * u * 0.2, deck, x0 + f * u * 0.22, deck + u * 0.02), fill=(*col, 255))
        for dx in (-0.2, 0.24):
            p.ellipse((x0 + f * dx * u, ground - u * 0.018), u * 0.03, u * 0.03, (25, 25, 25))
        top = (x0 + f * u * 0.22, ground - u * 0.62)
        p.draw.line([(x0 + f * u * 0.24, deck), top], fill=(*scale(col, 0.8), 255), width=max(2, round(u * 0.014)))
        p.draw.line([(top[0] - f * u * 0.04, top[1]), (top[0] + f * u * 0.02, top[1])], fill=(20, 20, 20, 255), width=2)
    elif motion == "riding skateboard":
        col = shade(p.rng, pick(p.rng, ["brown", "black", "red", "blue", "yellow", "green"]))
        y = ground - u * 0.035
        if s.view == "side":
            x0 = s.pelvis[0]
            p.draw.rounded_rectangle(sorted_box(x0 - u * 0.2, y, x0 + u * 0.2, y + u * 0.018), radius=2,
                                     fill=(*col, 255))
            for dx in (-0.14, 0.14):
                p.ellipse((x0 + dx * u, ground - u * 0.01), u * 0.014, u * 0.014, (235, 235, 225))
        else:
            x0 = s.pelvis[0]
            p.draw.rounded_rectangle([x0 - u * 0.09, y - u * 0.005, x0 + u * 0.09, y + u * 0.03], radius=2,
                                     fill=(*col, 255))


def draw_in_front_of_rider(p: Painter, s: Skeleton, v: dict[str, Any], ground: float) -> None:
    """Parts of a vehicle in front of the rider (handlebars seen from the front or back)."""
    motion, u = v["motion"], s.u
    if s.view == "side" or motion not in ("riding bicycle", "riding scooter"):
        return
    y = (s.wrist[0][1] + s.wrist[1][1]) / 2
    x0, x1 = s.wrist[0][0], s.wrist[1][0]
    col = (30, 30, 30, 255)
    p.draw.line([(x0 - u * 0.02, y), (x1 + u * 0.02, y)], fill=col, width=max(2, round(u * 0.013)))
    if motion == "riding scooter":
        xc = (x0 + x1) / 2
        p.draw.line([(xc, y), (xc, ground - u * 0.02)], fill=col, width=max(2, round(u * 0.016)))
        p.ellipse((xc, ground - u * 0.025), u * 0.015, u * 0.03, (20, 20, 20))
    else:  # the nearer wheel of a bicycle covers the legs from the front and from behind
        xc = (x0 + x1) / 2
        r = u * 0.16
        p.draw.ellipse([xc - u * 0.02, ground - 2 * r, xc + u * 0.02, ground], fill=(25, 25, 25, 255))
        p.draw.line([(xc, y), (xc, ground - r)], fill=col, width=max(2, round(u * 0.015)))
