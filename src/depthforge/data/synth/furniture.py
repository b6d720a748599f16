"""Furniture kinds as a table of builders, and the mix of kinds a room draws from.

A builder ``(rng, lay, room, yaw_any) -> list of shapes`` places one object of its kind with the room's
``RoomLayout`` (an empty list when it found no room); ``yaw_any`` is a turn drawn for it beforehand (a quarter turn
mostly, any angle sometimes) that builders of free-standing things may use. Builders draw from ``rng`` in a fixed
order: changing one changes every scene after it (bump ``SEED_TAG`` then).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .layout import RoomLayout, rot_xz
from .shapes import Box, Cylinder, Sphere
from .textures import random_texture, wood_texture

BUILDERS: dict[str, Callable[..., list]] = {}


def kind(name: str):
    """Decorator adding a builder under ``name``."""

    def wrap(fn):
        BUILDERS[name] = fn
        return fn

    return wrap


@kind("cabinet")
def cabinet(rng, lay, room: tuple, yaw_any: float) -> list:
    """A cabinet against a wall (also wardrobes, shelves, fridges); short ones are supports."""
    u = rng.uniform
    wd, dp, ht = u(0.4, 1.6), u(0.3, 0.65), u(0.5, min(2.2, room[1] - 0.3))
    at = lay.wall_spot(wd, dp)
    if at is None:
        return []
    x, z, yaw, _ = at
    tex = wood_texture(rng, (0, 1, 0)) if rng.random() < 0.5 else random_texture(rng, "neutral", ("plain", "noise"))
    if ht < 1.4:
        lay.add_top(ht, (x, z), wd / 2, dp / 2, yaw)
    return [Box((x, ht / 2, z), (wd / 2, ht / 2, dp / 2), yaw, tex)]


@kind("sofa")
def sofa(rng, lay, room: tuple, yaw_any: float) -> list:
    """A sofa or bed against a wall: a seat block and a back."""
    u = rng.uniform
    wd, dp, ht = u(1.4, 2.2), u(0.8, 2.0), u(0.3, 0.5)
    at = lay.wall_spot(wd, dp)
    if at is None:
        return []
    x, z, yaw, (nx, nz) = at
    tex = random_texture(rng, "any", ("plain", "noise", "stripes"), p=(0.4, 0.4, 0.2), scale=(0.02, 0.15))
    back_t, back_h = u(0.12, 0.25), u(0.3, 0.6)
    bx, bz = x - nx * (dp / 2 - back_t / 2), z - nz * (dp / 2 - back_t / 2)
    return [Box((x, ht / 2, z), (wd / 2, ht / 2, dp / 2), yaw, tex),
            Box((bx, (ht + back_h) / 2, bz), (wd / 2, (ht + back_h) / 2, back_t / 2), yaw, tex)]


@kind("table")
def table(rng, lay, room: tuple, yaw_any: float) -> list:
    """A table top on four round or square legs; a support."""
    u = rng.uniform
    wd, dp, ht, th = u(0.7, 1.8), u(0.5, 1.0), u(0.68, 0.78), u(0.025, 0.06)
    at = lay.spot(math.hypot(wd, dp) / 2)
    if at is None:
        return []
    x, z = at
    top = wood_texture(rng) if rng.random() < 0.6 else random_texture(rng, "any", ("plain", "checker", "noise"))
    leg_tex = random_texture(rng, "neutral", ("plain",))
    lay.add_top(ht, (x, z), wd / 2, dp / 2, yaw_any)
    prims = [Box((x, ht - th / 2, z), (wd / 2, th / 2, dp / 2), yaw_any, top)]
    r, inset = u(0.015, 0.035), u(0.04, 0.1)
    round_legs = rng.random() < 0.5
    for sx in (-1, 1):
        for sz in (-1, 1):
            ox, oz = rot_xz(yaw_any, sx * (wd / 2 - inset), sz * (dp / 2 - inset))
            lh = ht - th
            prims.append(Cylinder((x + ox, 0.0, z + oz), lh, r, leg_tex) if round_legs else
                         Box((x + ox, lh / 2, z + oz), (r, lh / 2, r), yaw_any, leg_tex))
    return prims


@kind("chair")
def chair(rng, lay, room: tuple, yaw_any: float) -> list:
    """A chair: seat, four round legs and a back, turned any way."""
    u = rng.uniform
    s, ht = u(0.38, 0.5), u(0.42, 0.48)
    at = lay.spot(s * 0.75)
    if at is None:
        return []
    x, z = at
    yaw = u(0, 2 * math.pi)
    tex = wood_texture(rng) if rng.random() < 0.5 else random_texture(rng, "any", ("plain", "noise"))
    prims = [Box((x, ht - 0.025, z), (s / 2, 0.025, s / 2), yaw, tex)]
    r = u(0.012, 0.025)
    for sx in (-1, 1):
        for sz in (-1, 1):
            ox, oz = rot_xz(yaw, sx * (s / 2 - 0.03), sz * (s / 2 - 0.03))
            prims.append(Cylinder((x + ox, 0.0, z + oz), ht - 0.05, r, tex))
    bh = u(0.35, 0.5)
    ox, oz = rot_xz(yaw, 0.0, -(s / 2 - 0.02))
    prims.append(Box((x + ox, ht + bh / 2, z + oz), (s / 2, bh / 2, 0.02), yaw, tex))
    return prims


@kind("crate")
def crate(rng, lay, room: tuple, yaw_any: float) -> list:
    """A box, sometimes with a smaller one stacked on it; a support when low."""
    u = rng.uniform
    wd, dp, ht = u(0.3, 0.8), u(0.3, 0.8), u(0.2, 0.8)
    at = lay.spot(math.hypot(wd, dp) / 2)
    if at is None:
        return []
    x, z = at
    prims = [Box((x, ht / 2, z), (wd / 2, ht / 2, dp / 2), yaw_any, random_texture(rng))]
    if rng.random() < 0.4:
        w2, d2, h2 = wd * u(0.5, 0.95), dp * u(0.5, 0.95), u(0.15, 0.5)
        prims.append(Box((x, ht + h2 / 2, z), (w2 / 2, h2 / 2, d2 / 2), yaw_any + u(-0.3, 0.3), random_texture(rng)))
        ht += h2
        wd, dp = w2, d2
    if ht < 1.3:
        lay.add_top(ht, (x, z), wd / 2, dp / 2, prims[-1].yaw)
    return prims


@kind("ball")
def ball(rng, lay, room: tuple, yaw_any: float) -> list:
    """A ball on the floor."""
    u = rng.uniform
    r = u(0.1, 0.35)
    at = lay.spot(r)
    return [] if at is None else [Sphere((at[0], r, at[1]), r, random_texture(rng))]


@kind("round")
def upright(rng, lay, room: tuple, yaw_any: float) -> list:
    """An upright cylinder: a stool, bin or side table, sometimes a floor-to-ceiling pillar."""
    u = rng.uniform
    pillar = rng.random() < 0.15
    r = u(0.1, 0.3) if pillar else u(0.12, 0.5)
    ht = room[1] if pillar else u(0.3, 0.9)
    at = lay.spot(r)
    if at is None:
        return []
    tex = random_texture(rng, "wall" if pillar else "any")
    return [Cylinder((at[0], 0.0, at[1]), ht, r, tex)]


@kind("lamp")
def lamp(rng, lay, room: tuple, yaw_any: float) -> list:
    """A floor lamp: a base, a thin pole and a round or cylindrical shade."""
    u = rng.uniform
    shade_r, pole_h = u(0.12, 0.25), u(1.1, 1.7)
    at = lay.spot(shade_r)
    if at is None:
        return []
    x, z = at
    metal = random_texture(rng, "neutral", ("plain",))
    shade = random_texture(rng, "wall", ("plain", "noise"))
    prims = [Cylinder((x, 0.0, z), u(0.015, 0.04), u(0.1, 0.18), metal),
             Cylinder((x, 0.0, z), pole_h, u(0.01, 0.022), metal)]
    if rng.random() < 0.5:
        prims.append(Sphere((x, pole_h + shade_r * 0.8, z), shade_r * 0.8, shade))
    else:
        prims.append(Cylinder((x, pole_h - 0.05, z), u(0.18, 0.3), shade_r, shade))
    return prims


@kind("picture")
def picture(rng, lay, room: tuple, yaw_any: float) -> list:
    """A picture or window on a wall, or a door standing on the floor."""
    u = rng.uniform
    door = rng.random() < 0.25
    wd = u(0.75, 0.95) if door else u(0.3, 1.5)
    ht = u(1.95, min(2.2, room[1] - 0.1)) if door else u(0.3, 1.0)
    dp = u(0.02, 0.05)
    at = lay.wall_spot(wd, dp, hangs=True)
    if at is None:
        return []
    x, z, yaw, _ = at
    y = ht / 2 if door else u(0.9, room[1] - 0.15 - ht) + ht / 2
    tex = wood_texture(rng, (0, 1, 0)) if door else random_texture(rng, "any", scale=(0.02, 0.2))
    return [Box((x, y, z), (wd / 2, ht / 2, dp / 2), yaw, tex)]


@kind("rug")
def rug(rng, lay, room: tuple, yaw_any: float) -> list:
    """A flat rug on the floor in view."""
    u = rng.uniform
    wd, dp = u(1.0, 3.0), u(0.8, 2.0)
    x, z = lay._in_view()
    if not (wd / 2 < x < room[0] - wd / 2 and dp / 2 < z < room[2] - dp / 2):
        return []
    return [Box((x, 0.005, z), (wd / 2, 0.005, dp / 2), yaw_any, random_texture(rng, scale=(0.03, 0.3)))]


@kind("item")
def item(rng, lay, room: tuple, yaw_any: float) -> list:
    """A small book, vase or ball on a support top."""
    u = rng.uniform
    shape = rng.choice(["book", "vase", "ball"])
    r = u(0.04, 0.18)
    at = lay.top_spot(r)
    if at is None:
        return []
    x, y, z = at
    if shape == "ball":
        return [Sphere((x, y + r, z), r, random_texture(rng))]
    if shape == "vase":
        return [Cylinder((x, y, z), u(0.08, 0.4), r * 0.7, random_texture(rng))]
    ht = u(0.03, 0.3)
    yaw = u(0, math.pi)
    if rng.random() < 0.5:
        lay.add_top(y + ht, (x, z), r * 0.7, r * 0.7, yaw)
    return [Box((x, y + ht / 2, z), (r * 0.7, ht / 2, r * 0.7), yaw, random_texture(rng, scale=(0.02, 0.1)))]



# Thin structures (the ``edges`` suite): boards, bars and rods a few centimetres across.

@kind("shelf")
def shelf(rng, lay, room: tuple, yaw_any: float) -> list:
    """Open shelving against a wall: two side boards and 3-6 thin shelves, no back (the wall shows through)."""
    u = rng.uniform
    wd, dp, ht, th = u(0.6, 1.4), u(0.25, 0.4), u(1.0, min(2.2, room[1] - 0.3)), u(0.015, 0.03)
    at = lay.wall_spot(wd, dp)
    if at is None:
        return []
    x, z, yaw, _ = at
    tex = wood_texture(rng, (1, 0, 0)) if rng.random() < 0.6 else random_texture(rng, "neutral", ("plain",))
    prims = []
    for side in (-1, 1):
        ox, oz = rot_xz(yaw, side * (wd / 2 - th / 2), 0.0)
        prims.append(Box((x + ox, ht / 2, z + oz), (th / 2, ht / 2, dp / 2), yaw, tex))
    n = int(rng.integers(3, 7))
    for y in np.linspace(u(0.05, 0.2), ht - th / 2, n):
        prims.append(Box((x, float(y), z), (wd / 2 - th, th / 2, dp / 2), yaw, tex))
        lay.add_top(float(y) + th / 2, (x, z), wd / 2 - th, dp / 2, yaw)
    return prims


@kind("frame")
def frame(rng, lay, room: tuple, yaw_any: float) -> list:
    """A free-standing frame: two posts, a top bar and sometimes a middle bar (a doorway, a clothes rack)."""
    u = rng.uniform
    wd, ht, bar = u(0.6, 1.6), u(1.2, min(2.2, room[1] - 0.1)), u(0.015, 0.05)
    at = lay.spot(wd / 2)
    if at is None:
        return []
    x, z = at
    tex = random_texture(rng, "neutral", ("plain",)) if rng.random() < 0.5 else wood_texture(rng, (0, 1, 0))
    prims = []
    for side in (-1, 1):
        ox, oz = rot_xz(yaw_any, side * (wd / 2 - bar), 0.0)
        prims.append(Box((x + ox, ht / 2, z + oz), (bar, ht / 2, bar), yaw_any, tex))
    for y in [ht - bar] + ([u(0.3, ht - 0.3)] if rng.random() < 0.5 else []):
        prims.append(Box((x, y, z), (wd / 2 - 2 * bar, bar, bar), yaw_any, tex))
    return prims


@kind("pole")
def pole(rng, lay, room: tuple, yaw_any: float) -> list:
    """A floor-to-ceiling rod 1-4 cm thick."""
    r = rng.uniform(0.01, 0.04)
    at = lay.spot(max(r, 0.1))
    return [] if at is None else [Cylinder((at[0], 0.0, at[1]), room[1], r, random_texture(rng, "neutral", ("plain",)))]


@kind("railing")
def railing(rng, lay, room: tuple, yaw_any: float) -> list:
    """A short railing: a row of thin balusters under a hand rail."""
    u = rng.uniform
    wd, ht, r = u(0.8, 2.0), u(0.8, 1.1), u(0.008, 0.02)
    at = lay.spot(wd / 2)
    if at is None:
        return []
    x, z = at
    tex = random_texture(rng, "neutral", ("plain",))
    prims = [Box((x, ht - 0.02, z), (wd / 2, 0.02, 0.03), yaw_any, tex)]
    for lx in np.arange(-wd / 2 + 0.05, wd / 2 - 0.04, u(0.1, 0.2)):
        ox, oz = rot_xz(yaw_any, float(lx), 0.0)
        prims.append(Cylinder((x + ox, 0.0, z + oz), ht - 0.04, r, tex))
    return prims


@kind("stool")
def stool(rng, lay, room: tuple, yaw_any: float) -> list:
    """A round seat on three or four thin legs; a support."""
    u = rng.uniform
    r, ht = u(0.15, 0.22), u(0.45, 0.8)
    at = lay.spot(r)
    if at is None:
        return []
    x, z = at
    tex = wood_texture(rng) if rng.random() < 0.5 else random_texture(rng, "any", ("plain",))
    legs = int(rng.integers(3, 5))
    prims = [Cylinder((x, ht - 0.03, z), 0.03, r, tex)]
    lr = u(0.01, 0.02)
    for a in np.arange(legs) * 2 * math.pi / legs + yaw_any:
        prims.append(Cylinder((x + 0.8 * r * math.cos(a), 0.0, z + 0.8 * r * math.sin(a)), ht - 0.03, lr, tex))
    lay.add_top(ht, (x, z), r * 0.7, r * 0.7, 0.0)
    return prims

# The mix of today's rooms: relative frequency of each kind (order matters: it is the order of the draw).
FURNITURE = {"cabinet": 0.14, "table": 0.12, "chair": 0.07, "sofa": 0.07, "crate": 0.11, "ball": 0.07,
             "round": 0.1, "lamp": 0.06, "picture": 0.08, "rug": 0.04, "item": 0.14}
# The ``edges`` suite: mostly legs, rods, boards and frames in front of other things.
THIN = {"chair": 0.18, "table": 0.12, "stool": 0.1, "lamp": 0.1, "shelf": 0.14, "frame": 0.12, "pole": 0.1,
        "railing": 0.08, "item": 0.06}
# The ``clutter`` suite: many pieces of every size, at several depths, hiding one another.
CLUTTER = {"crate": 0.2, "ball": 0.1, "round": 0.1, "chair": 0.1, "table": 0.1, "stool": 0.05, "lamp": 0.05,
           "cabinet": 0.05, "item": 0.25}


def build(kind: str, rng: np.random.Generator, lay: RoomLayout, room: tuple) -> list:
    """The primitives of one object of ``kind`` placed in the room (empty if it found no room)."""
    u = rng.uniform
    yaw_any = u(0, math.pi) if rng.random() < 0.3 else float(rng.integers(4)) * math.pi / 2
    if kind not in BUILDERS:
        raise ValueError(f"synth: unknown furniture kind {kind!r}")
    return BUILDERS[kind](rng, lay, room, yaw_any)
