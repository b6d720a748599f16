"""The ``glass`` suite: rooms with glass panes, glass tables, glass bottles and balls, and mirrors, rendered with
Mitsuba 3 (``pathtrace``: path tracing, so glass refracts and reflects), with exact depth from the same primitives.

The image comes from Mitsuba; depth, the glass mask and the depth
seen through glass come from this package's ray caster on the very primitives handed to Mitsuba, at the pixel
centres (a test checks Mitsuba's own ray intersections against them). Ground truth follows two conventions:
``depth`` is the first surface, glass included (ClearGrasp, Sajjan et al. 2020); ``depth_through`` is what an
active sensor such as a Kinect reads: straight through glass (panes bend the ray by millimetres; solid bottles
and balls would bend it more, which this ignores) and, at a mirror, the distance along the reflected ray (the
mirror image behind the glass). ``glass`` marks the pixels whose first hit is glass or a mirror.

Paired twin: every scene is rendered a second time with the same renderer, camera, lights and sampler seed but
without its glass and mirrors (``twin_image``, ``twin_depth``): a model's error inside the glass mask minus its
error there on the twin is what the glass costs, with the path tracer's look (its noise, its light) cancelled —
the rooms the models train on are ray cast, and off the glass the rendered scenes alone raised AbsRel ~1.6×.
Both images are denoised (``pathtrace.render_image``) so that Monte Carlo noise does not dominate either.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .furniture import rot_xz
from .pathtrace import render_image, square_pixels
from .raycast import first_hits, primary_hits
from .scenes import random_scene
from .shapes import Box, Cylinder, Sphere
from .textures import Texture, random_texture

MIX = {"table": 0.15, "chair": 0.1, "cabinet": 0.15, "crate": 0.15, "round": 0.1, "ball": 0.1, "picture": 0.1,
       "sofa": 0.1, "lamp": 0.05}  # ordinary furniture around the glass
GLASS_KINDS = {"pane": 0.25, "table": 0.15, "bottle": 0.25, "ball": 0.1, "mirror": 0.25}
MAX_BOUNCES = 4  # mirror-to-mirror reflections followed for depth_through


def _glass_pieces(rng, lay, room: tuple, materials: dict) -> list:
    """3-6 glass or mirror pieces; ``materials`` gets id(shape) -> "glass" / "mirror" for each of them."""
    u = rng.uniform
    pieces = []
    kinds = list(GLASS_KINDS)
    p = np.array(list(GLASS_KINDS.values()))
    glass_tex = Texture("plain", (0.9, 0.95, 0.95))  # the ray caster's look of glass (Mitsuba ignores it)
    for kind in rng.choice(kinds, size=rng.integers(3, 7), p=p / p.sum()):
        yaw = u(0, math.pi)
        piece, mat = [], "glass"
        if kind == "pane":  # a standing sheet: a partition, a window leaning on nothing
            wd, ht, th = u(0.6, 1.5), u(0.8, 2.0), u(0.008, 0.012)
            at = lay.spot(wd / 2)
            if at is not None:
                piece = [Box((at[0], ht / 2, at[1]), (wd / 2, ht / 2, th / 2), yaw, glass_tex)]
        elif kind == "table":  # a glass top on four metal legs
            wd, dp, ht, th = u(0.6, 1.4), u(0.5, 0.9), u(0.45, 0.78), u(0.01, 0.02)
            at = lay.spot(math.hypot(wd, dp) / 2)
            if at is not None:
                x, z = at
                legs = random_texture(rng, "neutral", ("plain",))
                piece = [Box((x, ht - th / 2, z), (wd / 2, th / 2, dp / 2), yaw, glass_tex)]
                for sx in (-1, 1):
                    for sz in (-1, 1):
                        ox, oz = rot_xz(yaw, sx * (wd / 2 - 0.05), sz * (dp / 2 - 0.05))
                        piece.append(Cylinder((x + ox, 0.0, z + oz), ht - th, 0.015, legs))
                lay.add_top(ht, (x, z), wd / 2, dp / 2, yaw)
        elif kind in ("bottle", "ball"):  # solid glass on a top if there is one, else on the floor
            r = u(0.03, 0.07) if kind == "bottle" else u(0.05, 0.15)
            at = lay.top_spot(r)
            if at is None:
                spot = lay.spot(r)
                at = None if spot is None else (spot[0], 0.0, spot[1])
            if at is not None:
                x, y, z = at
                piece = [Cylinder((x, y, z), u(0.12, 0.35), r, glass_tex) if kind == "bottle"
                         else Sphere((x, y + r, z), r, glass_tex)]
        else:  # a mirror on a wall
            mat = "mirror"
            wd, ht = u(0.4, 1.2), u(0.5, 1.6)
            at = lay.wall_spot(wd, 0.01, hangs=True)
            if at is not None:
                x, z, wyaw, _ = at
                y = min(u(0.3, 1.0) + ht / 2, room[1] - 0.05 - ht / 2)
                piece = [Box((x, y, z), (wd / 2, ht / 2, 0.005), wyaw, glass_tex)]
        if piece:
            materials[id(piece[0])] = mat
            pieces.append(piece)
    return pieces


def glass_scene(rng: np.random.Generator, k: np.ndarray, size: tuple[int, int]):
    """A random room with furniture and glass -> (Scene, materials: per shape "diffuse", "glass" or "mirror")."""
    by_id: dict = {}
    scene = random_scene(rng, k, size, mix=MIX, count=(2, 7),
                         extras=lambda r, lay, room: _glass_pieces(r, lay, room, by_id))
    return scene, [by_id.get(id(s), "diffuse") for s in scene.shapes]


def glass_geometry(scene, materials: list) -> dict:
    """Exact ground truth at the pixel centres: {"depth" (H,W) float32 first surface, glass included;
    "depth_through" (H,W) float32 straight through glass and along mirror reflections (0 where a ray is still
    bouncing after MAX_BOUNCES); "glass" (H,W) bool first hit is glass or a mirror; "shape" (H,W) int16}."""
    cam = scene.camera
    d, t, ids = primary_hits(scene.shapes, cam)
    glass = {i for i, m in enumerate(materials) if m == "glass"}
    mirror = np.array([m == "mirror" for m in materials] + [False])  # index -1: nothing
    special = np.array([m != "diffuse" for m in materials] + [False])
    mask = special[ids]
    through = t.copy()
    sel = np.flatnonzero(mask.ravel())
    o = np.broadcast_to(np.asarray(cam.position, np.float32)[:, None], (3, sel.size)).copy()
    dirs = d.reshape(3, -1)[:, sel].copy()
    path = np.zeros(sel.size, np.float32)
    flat = through.reshape(-1)
    flat[sel] = 0
    live = np.arange(sel.size)
    for _ in range(MAX_BOUNCES + 1):
        tt, hit = first_hits(scene.shapes, o[:, live], dirs[:, live], skip=glass)
        ends = ~mirror[hit]
        flat[sel[live[ends]]] = np.where(np.isfinite(tt[ends]), path[live[ends]] + tt[ends], 0)
        bounce = live[~ends]
        if not bounce.size:
            break
        tb, hb = tt[~ends], hit[~ends]
        p = o[:, bounce] + tb * dirs[:, bounce]
        for j in np.unique(hb):
            m = hb == j
            n = scene.shapes[j].normal_at(p[:, m])
            dm = dirs[:, bounce[m]]
            dirs[:, bounce[m]] = dm - 2 * (dm * n).sum(0) * n  # same length: t keeps counting depth units
        o[:, bounce] = p
        path[bounce] += tb
        live = bounce
    depth = np.where(np.isfinite(t), t, 0).astype(np.float32)
    return {"depth": depth, "depth_through": through.astype(np.float32), "glass": mask, "shape": ids}


def render_glass(rng: np.random.Generator, k: np.ndarray, size: tuple[int, int], spp: int = 32,
                 denoise: bool = True) -> dict:
    """One glass-suite sample: {"image" (H,W,3) float32 in [0,1], "depth", "depth_through" (H,W) float32 metres,
    "glass" (H,W) bool, "intrinsics" (3,3) float32 (square pixels: fy = fx), and its twin without glass and
    mirrors: "twin_image", "twin_depth"}. ``spp``: Mitsuba samples per pixel; ``denoise``: see the module."""
    k = square_pixels(k)
    scene, materials = glass_scene(rng, k, size)
    seed = int(rng.integers(2 ** 31))
    keep = [i for i, m in enumerate(materials) if m == "diffuse"]
    twin = replace(scene, shapes=[scene.shapes[i] for i in keep],
                   objects=[scene.objects[i] for i in keep] if scene.objects else [])
    plain = ["diffuse"] * len(keep)
    gt = glass_geometry(scene, materials)
    return {"image": render_image(scene, materials, spp, seed, denoise), "depth": gt["depth"],
            "depth_through": gt["depth_through"], "glass": gt["glass"], "intrinsics": k,
            "twin_image": render_image(twin, plain, spp, seed, denoise),
            "twin_depth": glass_geometry(twin, plain)["depth"]}
