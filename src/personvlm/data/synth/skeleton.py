"""Where the joints are: body proportions by age and build, and limb placement per motion,
orientation and pose.

Kept apart from the drawing so the geometry (2-link inverse kinematics, stride, stoop) can be
read on its own; ``person.py`` only fills shapes between these points. Coordinates are canvas
pixels, y down. ``facing`` is +1/-1 for a side view (the direction the nose points), 0 for
front and back views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Pt = tuple[float, float]


@dataclass
class Skeleton:
    """Joint positions and the widths the drawing needs.

    Paired joints are ``[far/image-left, near/image-right]``: in a side view index 0 is the
    limb behind the body (drawn first), 1 the one in front.
    """

    view: str
    facing: int
    u: float  # standing height in pixels
    head: Pt
    head_h: float
    head_w: float
    neck: Pt
    pelvis: Pt
    shoulder: list[Pt]
    elbow: list[Pt]
    wrist: list[Pt]
    hip: list[Pt]
    knee: list[Pt]
    ankle: list[Pt]
    shoulder_half: float  # half shoulder width (front/back) or half chest depth (side)
    waist_half: float
    hip_half: float
    arm_w: float
    leg_w: float
    lean: float  # forward lean of the torso in radians (side views)
    turn: float = 0.0  # sine of the body's turn away from the view axis (|turn| <= 0.87)
    seat_y: float | None = None  # sitting / riding: height of the seat
    hand_item: list[str | None] = field(default_factory=lambda: [None, None])
    arms_behind: bool = False  # hands behind the back

    def leg_x_at(self, y: float) -> list[float]:
        """x of each leg's centre line at height ``y`` (for coats and skirts that cover them)."""
        xs = []
        for hip, knee, ankle in zip(self.hip, self.knee, self.ankle, strict=True):
            a, b = (hip, knee) if y <= knee[1] else (knee, ankle)
            t = 0.0 if b[1] == a[1] else min(1.0, max(0.0, (y - a[1]) / (b[1] - a[1])))
            xs.append(a[0] + (b[0] - a[0]) * t)
        return xs


def ik(root: Pt, target: Pt, l1: float, l2: float, bend: float) -> tuple[Pt, Pt]:
    """Two-link inverse kinematics: (middle joint, end point) reaching toward ``target``.

    ``bend`` (+1/-1) chooses on which side of the root-target line the middle joint goes
    (knees bend forward, elbows backward). Targets out of reach are approached in a line.
    """
    dx, dy = target[0] - root[0], target[1] - root[1]
    dist = math.hypot(dx, dy) or 1e-6
    reach = min(dist, (l1 + l2) * 0.999)
    end = (root[0] + dx / dist * reach, root[1] + dy / dist * reach)
    cos_a = (l1 * l1 + reach * reach - l2 * l2) / (2 * l1 * reach)
    a = math.acos(max(-1.0, min(1.0, cos_a)))
    base = math.atan2(dy, dx)
    ang = base - bend * a
    return (root[0] + l1 * math.cos(ang), root[1] + l1 * math.sin(ang)), end


# Fractions of the standing height, from the top of the head: (head, shoulder, waist, hip).
# Children are about five heads tall, adults seven and a half.
_PROPORTIONS = {
    "child": (0.20, 0.25, 0.47, 0.56),
    "adult": (0.135, 0.185, 0.40, 0.50),
    "elderly": (0.14, 0.19, 0.405, 0.505),
}
_ANKLE = 0.955
TORSO_DEPTH = 0.55  # chest depth over shoulder width: what a turned torso still shows


@dataclass
class _Frame:
    """Quantities the leg and arm placement share while one skeleton is built."""

    u: float
    ground: float
    motion: str
    side: bool
    fwd: int  # facing in a side view, 0 otherwise
    phase: float  # gait phase, signed: which leg is ahead
    leg_len: float
    ankle_h: float
    spread: float  # half the distance between the hip joints (front/back views)


def build(values: dict, rng: np.random.Generator, u: float, cx: float, ground: float, facing: int,
          hands: list[str | None]) -> Skeleton:
    """Place every joint for the person described by ``values`` standing on ``ground`` at ``cx``.

    ``hands`` says what each hand does (``"phone_ear"``, ``"mouth"``, ``"phone"``, ``"cup"``,
    ``"umbrella"``, ``"crossed"``, ``"behind"``, ``"handlebar"``, ``"pocket"``, ``"hold"`` or
    None); the arms are posed to reach there.
    """
    view = values["orientation"]
    age = values["age"] if values["age"] in _PROPORTIONS else "adult"
    f_head, f_sh, f_waist, f_hip = _PROPORTIONS[age]
    build_k = {"fat": 1.3, "thin": 0.82}.get(values["body"], 1.0) * rng.uniform(0.94, 1.06)
    motion = values["motion"]
    side = view == "side"
    fwd = facing if side else 0
    top = ground - u

    head_h = u * f_head
    head_w = head_h * (0.78 if age != "child" else 0.86)
    shoulder_half, waist_half, hip_half = _widths(values, u, build_k, side)
    # Few people face the camera squarely: a turn narrows the body and moves the face to one side
    # while the view is still "front" / "back" (or "side"). Front and back views turn up to ~60
    # degrees, the three-quarter views of people walking past a camera, and the seen width is that
    # of a torso TORSO_DEPTH as deep as wide. A turned body is as narrow as a woman's, so men must be
    # seen turned as often as women: with turns of at most ~37 degrees, the model read the narrow
    # three-quarter views of real men as women (front-view men drawn at 0.65 of their width went
    # from p(female) 0.13 to 0.42).
    turn = rng.uniform(-0.6, 0.6) if side else rng.uniform(-0.87, 0.87)
    if side:
        shoulder_half *= 1 + abs(turn) * 0.5
    else:
        narrow = math.sqrt(1 - turn * turn * (1 - TORSO_DEPTH ** 2))
        shoulder_half, waist_half, hip_half = shoulder_half * narrow, waist_half * narrow, hip_half * narrow

    lean = {"running": 0.2, "riding bicycle": 0.35}.get(motion, 0.0) if side else 0.0
    if age == "elderly" and side:
        lean += 0.15  # a slight stoop

    leg_len = (_ANKLE - f_hip) * u  # hip joint to ankle: straight when standing
    thigh, shin = leg_len * 0.52, leg_len * 0.48
    # Gait phase: most frames of a walk show the legs well apart, few the moment they pass.
    phase = rng.uniform(0.35, 1.0) * (1 if rng.random() < 0.5 else -1)
    frame = _Frame(u, ground, motion, side, fwd, phase, leg_len, (1 - _ANKLE) * u,
                   hip_half * 0.5 if not side else 0.0)
    hip_x, hip_y, seat_y, feet = _legs(frame, rng, cx, top + f_hip * u, thigh, shin)

    hips = [(hip_x - fwd, hip_y), (hip_x + fwd, hip_y)] if side else [
        (hip_x - frame.spread, hip_y), (hip_x + frame.spread, hip_y)]
    knees, ankles = [], []
    for hp, ft in zip(hips, feet, strict=True):
        if side:
            k, a = ik(hp, ft, thigh, shin, fwd)  # knees bend toward the facing direction
        else:
            # Seen from the front a bent knee only shortens the leg: keep it on the hip-ankle
            # line (a seated person's thigh points at the camera, so the knee is near the hip).
            _, a = ik(hp, ft, thigh, shin, 1)
            t = 0.2 if motion == "sitting" else 0.5
            k = (hp[0] + (a[0] - hp[0]) * t, hp[1] + (a[1] - hp[1]) * t)
        knees.append(k)
        ankles.append(a)

    # --- torso and head -----------------------------------------------------------------------
    torso_len = (f_hip - f_sh) * u
    pelvis = (hip_x, hip_y - (hip_y - (top + f_waist * u)) * 0.2)
    sh_y = hip_y - torso_len * math.cos(lean)
    sh_x = hip_x + fwd * torso_len * math.sin(lean)
    neck = (sh_x + fwd * head_h * 0.1, sh_y - head_h * 0.12)
    head = (neck[0] + fwd * head_h * (0.12 + lean * 0.4), sh_y - head_h * 0.62)
    if age == "elderly" and not side:
        head = (head[0], head[1] + head_h * 0.08)
    if side:
        shoulders = [(sh_x - fwd * 1.5, sh_y + 1), (sh_x + fwd * 1.5, sh_y + 1)]
    else:
        shoulders = [(sh_x - shoulder_half * 0.82, sh_y + head_h * 0.12),
                     (sh_x + shoulder_half * 0.82, sh_y + head_h * 0.12)]

    # --- arms -----------------------------------------------------------------------------
    upper, fore = u * 0.17, u * 0.16
    elbows, wrists = [], []
    for i, (sh, job) in enumerate(zip(shoulders, hands, strict=True)):
        out = -1 if i == 0 else 1  # image-left arm hangs to the left in front/back views
        target = _hand_target(frame, job, i, sh, (sh_x, hip_y), head, head_w, head_h, shoulder_half, upper, fore)
        # Elbows bend backward; hands clasped behind the back bend them the other way.
        bend = (fwd if job == "behind" else -fwd) if side else out
        e, w = ik(sh, target, upper, fore, bend)
        elbows.append(e)
        wrists.append(w)

    return Skeleton(
        view=view, facing=facing, u=u, head=head, head_h=head_h, head_w=head_w, neck=neck, pelvis=pelvis,
        shoulder=shoulders, elbow=elbows, wrist=wrists, hip=hips, knee=knees, ankle=ankles,
        shoulder_half=shoulder_half, waist_half=waist_half, hip_half=hip_half, arm_w=u * 0.05 * build_k,
        leg_w=u * 0.068 * build_k, lean=lean, turn=turn, seat_y=seat_y, hand_item=list(hands),
        arms_behind="behind" in hands,
    )


# Half shoulder width over the standing height, front view. Over stature, women's shoulders are
# about 5% narrower than men's in adult anthropometric surveys; the renderer's first 14% (0.108)
# taught the model that a broad figure is a man, and a real woman in a winter coat is as broad as
# the men beside her: squeezing the real crops to 0.8 of their width raised her mean p(female)
# from 0.51 to 0.66 (the men's from 0.31 / 0.39 to 0.34 / 0.43).
SHOULDER_HALF = {"male": 0.125, "female": 0.119}


def _widths(values: dict, u: float, build_k: float, side: bool) -> tuple[float, float, float]:
    """Half widths of shoulders, waist and hips (half depths in a side view), by sex and build."""
    male = values["gender"] == "male"
    if side:
        fat = 1.15 if values["body"] == "fat" else 1.0
        return u * 0.068 * build_k, u * (0.063 if male else 0.06) * build_k * fat, u * 0.066 * build_k
    child = 0.95 if values["age"] == "child" else 1.0
    return (u * SHOULDER_HALF[values["gender"]] * child * (1 + (build_k - 1) * 0.6),
            u * (0.085 if male else 0.075) * build_k, u * (0.09 if male else 0.1) * build_k)


# Share of side-view walking frames that catch a leg in its swing. A walking leg swings for ~40% of
# its cycle, so most frames of a walk have one foot off the ground, the trailing one with its heel
# up and its knee bent just after toe-off. Renders that kept both feet on the ground left a raised
# foot behind to running alone, and the model called real walkers runners (mean p(running) of the
# real crops' people 0.06-0.29, of rendered side-view walkers 0.001: `personvlm data real-probe` /
# `render-probe`).
WALK_SWING_SHARE = 0.6


def _walking_swing(f: _Frame, rng: np.random.Generator, hip_x: float, foot_y: float) -> list[Pt]:
    """Foot targets of a side-view walker with one leg in its swing: the stance foot flat near
    the hip, the swing foot behind it and off the ground, higher the further back it is (toe-off),
    up to 0.22 leg lengths: below most runners' kicks (0.2-0.45), which also come with a lean and
    pumping arms."""
    back = rng.uniform(0.05, 0.35)
    lift = rng.uniform(0.04, 0.1) + 0.35 * back
    stance = (hip_x + f.fwd * f.leg_len * rng.uniform(-0.05, 0.25), foot_y)
    swing = (hip_x - f.fwd * f.leg_len * back, foot_y - f.leg_len * lift)
    return [swing, stance] if f.phase > 0 else [stance, swing]


def _legs(f: _Frame, rng: np.random.Generator, cx: float, hip_y: float, thigh: float,
          shin: float) -> tuple[float, float, float | None, list[Pt]]:
    """Hip position, seat height (sitting/cycling) and the two foot targets for the motion."""
    u, ground, fwd, ankle_h, spread = f.u, f.ground, f.fwd, f.ankle_h, f.spread
    hip_x, seat_y = cx, None
    foot_y = ground - ankle_h
    if f.motion == "running" and f.side:
        # One foot strikes the ground ahead, the other kicks up behind.
        reach = f.leg_len * (0.25 + 0.2 * abs(f.phase))
        strike = (hip_x + fwd * reach, foot_y)
        kick = (hip_x - fwd * reach * 0.8, foot_y - f.leg_len * rng.uniform(0.2, 0.45))
        feet = [kick, strike] if f.phase > 0 else [strike, kick]
    elif f.motion == "walking" and f.side and rng.random() < WALK_SWING_SHARE:
        feet = _walking_swing(f, rng, hip_x, foot_y)
    elif f.motion in ("walking", "running"):
        if f.side:
            stride = f.leg_len * 0.36 * f.phase
            feet = [(hip_x - fwd * stride, foot_y - f.leg_len * 0.03 * max(0.0, f.phase)),
                    (hip_x + fwd * stride, foot_y - f.leg_len * 0.03 * max(0.0, -f.phase))]
        else:
            # Seen from the front a stride shows as one foot lower (nearer) than the other.
            lift = f.leg_len * (0.08 if f.motion == "walking" else 0.15) * f.phase
            feet = [(hip_x - spread * 1.2, foot_y - max(0.0, lift)), (hip_x + spread * 1.2, foot_y - max(0.0, -lift))]
    elif f.motion == "sitting":
        seat_y = hip_y = ground - shin - ankle_h * 0.6
        if f.side:
            hip_x = cx - fwd * thigh * 0.45
            feet = [(hip_x + fwd * thigh * 0.95, foot_y), (hip_x + fwd * thigh * 1.05, foot_y)]
        else:
            feet = [(hip_x - spread * 1.6, foot_y), (hip_x + spread * 1.6, foot_y)]
    elif f.motion == "riding bicycle":
        seat_y = hip_y = ground - u * 0.5
        ang, r = rng.uniform(0, 2 * math.pi), u * 0.08  # pedal angle and crank radius
        crank_y = ground - u * 0.15
        if f.side:
            hip_x = cx - fwd * u * 0.1
            crank_x = cx + fwd * u * 0.05
            feet = [(crank_x - math.cos(ang) * r, crank_y - math.sin(ang) * r),
                    (crank_x + math.cos(ang) * r, crank_y + math.sin(ang) * r)]
        else:
            feet = [(hip_x - spread * 1.3, crank_y + math.sin(ang) * r),
                    (hip_x + spread * 1.3, crank_y - math.sin(ang) * r)]
    elif f.motion in ("riding scooter", "riding skateboard"):
        deck_foot = ground - u * 0.04 - ankle_h
        hip_y -= u * 0.025  # standing on the deck, knees a little bent
        if f.side:
            gap = u * (0.07 if f.motion == "riding scooter" else 0.1)
            feet = [(hip_x - fwd * gap, deck_foot), (hip_x + fwd * gap, deck_foot)]
        else:
            feet = [(hip_x - spread * 1.5, deck_foot), (hip_x + spread * 1.1, deck_foot)]
    else:  # standing
        feet = [(hip_x - spread * 1.2, foot_y), (hip_x + spread * 1.2, foot_y)]
    return hip_x, hip_y, seat_y, feet


def _hand_target(f: _Frame, job: str | None, i: int, sh: Pt, torso: Pt, head: Pt, head_w: float, head_h: float,
                 shoulder_half: float, upper: float, fore: float) -> Pt:
    """Where hand ``i`` (0 = image-left / far) goes for its job; ``torso`` is (centre x, hip y)."""
    u, side, fwd = f.u, f.side, f.fwd
    sh_x, hip_y = torso
    out = -1 if i == 0 else 1
    if job == "phone_ear":
        return head[0] + (out * head_w * 0.45 if not side else -fwd * head_w * 0.1), head[1] + head_h * 0.1
    if job == "mouth":
        return head[0] + (out * head_w * 0.15 if not side else fwd * head_w * 0.55), head[1] + head_h * 0.3
    if job in ("cup", "phone"):
        return (sh_x - out * shoulder_half * 0.15) if not side else sh[0] + fwd * upper * 0.9, sh[1] + upper * 0.95
    if job == "umbrella":
        return sh[0] + (fwd * upper * 0.8 if side else -out * shoulder_half * 0.2), sh[1] + upper * 0.5
    if job == "crossed":
        return sh_x - out * shoulder_half * 0.7 if not side else sh[0] + fwd * upper * 0.7, sh[1] + upper * 0.75
    if job == "behind":
        # Hands meet at the small of the back, above the hem, hidden by the torso from the front.
        return (sh_x + out * shoulder_half * 0.15 if not side else sh[0] - fwd * upper * 0.55,
                sh[1] + upper * (1.05 if not side else 1.25))
    if job == "handlebar":
        if not side:
            return sh[0] + out * shoulder_half * 0.2, sh[1] + upper
        bicycle = f.motion == "riding bicycle"
        return sh[0] + fwd * u * (0.4 if bicycle else 0.22), f.ground - u * (0.6 if bicycle else 0.62)
    if job == "pocket":  # hand in a coat pocket at the hip, not visible
        return sh[0] - out * shoulder_half * 0.12 if not side else sh[0] + fwd * u * 0.03, hip_y + u * 0.01
    if job == "hold":  # a bag in the hand: the arm hangs straight
        return sh[0] + out * shoulder_half * 0.25 if not side else sh[0] + fwd * upper * 0.05, sh[1] + upper + fore
    swing = 0.0
    if f.motion in ("walking", "running"):
        swing = (0.45 if f.motion == "walking" else 0.8) * f.phase * (1 if i == 0 else -1)
    if side and f.motion == "running":  # elbows bent, hands pumping
        return sh[0] + fwd * math.sin(swing) * upper + fwd * fore * 0.6, sh[1] + upper * 0.9
    if side:
        return sh[0] + fwd * math.sin(swing) * (upper + fore), sh[1] + math.cos(swing) * (upper + fore)
    # Arms hang close to the body; a swing forward or back only shortens them.
    return sh[0] + out * u * 0.012, sh[1] + (upper + fore) * (0.995 - 0.08 * abs(swing))
