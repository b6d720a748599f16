"""Benchmark suites of synthetic rooms aimed at the failure modes, each sample with the masks its metrics need.

``rooms`` are today's scenes (``scenes.render_scene``). ``edges`` fills rooms with thin structures (chair and
stool legs, rods, railings, open shelves, frames) and marks the occlusion edges; ``clutter`` puts 25-45 pieces
at several depths in front of one another and scores how cluttered each view is; ``glass`` (``glass.py``) has
glass panes, tables, bottles and balls and mirrors, rendered with Mitsuba 3. A sample is drawn from the seed of
(suite, split, index): the same on every machine, and no suite shares a seed with another or with ``rooms``.
"""
from __future__ import annotations

import numpy as np

from ...errors import DepthforgeError
from .furniture import CLUTTER, THIN
from .scenes import (SEED_TAG, SPLITS, camera_intrinsics, check_renderer, check_size, draw, random_scene,
                     render_scene, scene_rng)
from .sensor import kinect_holes

SUITES = ("rooms", "edges", "clutter", "glass")
_SUITE_TAG = {"edges": 1, "clutter": 2, "glass": 3}  # part of the seed; never reuse a number

# Two neighbouring pixels on different shapes lie across an occlusion edge when their depths differ by more
# than this fraction of the nearer one (a depth ratio above 1.05), both as rendered and extrapolated to the
# pixel border from each side (so a box standing on the floor is no edge at its foot, however coarse the image).
EDGE_JUMP = 0.05
VISIBLE = 1e-3  # a piece counts as visible when it covers this fraction of the image


def suite_rng(suite: str, index: int, split: str = "train") -> np.random.Generator:
    """The generator of sample ``index`` of ``split`` in ``suite`` (``rooms``: ``scene_rng``)."""
    check_suite(suite)
    if suite == "rooms":
        return scene_rng(index, split)
    scene_rng(index, split)  # checks split and index
    return np.random.default_rng(np.random.SeedSequence([SEED_TAG, SPLITS[split], int(index), _SUITE_TAG[suite]]))


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise DepthforgeError(f"synth: unknown suite {suite!r} (known: {', '.join(SUITES)})")
    return suite


def _edges_along_rows(z: np.ndarray, ids: np.ndarray, jump: float) -> np.ndarray:
    """``occlusion_edges`` between horizontal neighbours (j, j+1)."""
    za, zb, ia, ib = z[:, :-1], z[:, 1:], ids[:, :-1], ids[:, 1:]
    za_out = np.concatenate([z[:, :1], z[:, :-2]], 1)  # the pixel before j (j itself at the border)
    ia_out = np.concatenate([ids[:, :1], ids[:, :-2]], 1)
    zb_out = np.concatenate([z[:, 2:], z[:, -1:]], 1)  # the pixel after j+1
    ib_out = np.concatenate([ids[:, 2:], ids[:, -1:]], 1)
    ea = np.where(ia_out == ia, za + 0.5 * (za - za_out), za)  # each side's surface at the shared border
    eb = np.where(ib_out == ib, zb + 0.5 * (zb - zb_out), zb)
    near = np.minimum(za, zb)
    cut = (ia != ib) & (ia >= 0) & (ib >= 0) & (np.abs(za - zb) > jump * near) & (np.abs(ea - eb) > jump * near)
    out = np.zeros(z.shape, bool)
    out[:, :-1] |= cut & (za < zb)
    out[:, 1:] |= cut & (zb < za)
    return out


def occlusion_edges(depth: np.ndarray, ids: np.ndarray, jump: float = EDGE_JUMP) -> np.ndarray:
    """Occlusion edges of a rendered view: (H,W) bool, True on the occluding side of every border between
    4-neighbours that hit different shapes (``ids`` (H,W), -1 = nothing) where depth (H,W, metres, exact)
    jumps (see ``EDGE_JUMP``). Contacts (a leg on the floor, a book on a table) and creases are not edges."""
    z = np.asarray(depth, np.float64)
    ids = np.asarray(ids)
    return _edges_along_rows(z, ids, jump) | _edges_along_rows(z.T, ids.T, jump).T


def clutter_scores(ids: np.ndarray, objects: list, edges: np.ndarray) -> dict:
    """How cluttered a view is: {"clutter": number of visible pieces (room excluded), "overlaps": number of
    pairs of pieces where one hides part of the other across an occlusion edge}, as floats."""
    piece = np.where(ids >= 0, np.asarray(objects, np.int64)[np.maximum(ids, 0)], -1)
    counts = np.bincount(piece[piece > 0].ravel(), minlength=1)
    visible = int((counts[1:] >= VISIBLE * ids.size).sum())
    pairs = set()
    for axis in (0, 1):
        a, b = np.swapaxes(piece, 0, axis), np.swapaxes(edges, 0, axis)
        for front, back, on_edge in ((a[:-1], a[1:], b[:-1]), (a[1:], a[:-1], b[1:])):
            sel = on_edge & (front > 0) & (back > 0) & (front != back)
            pairs.update(zip(front[sel].tolist(), back[sel].tolist()))
    return {"clutter": float(visible), "overlaps": float(len(pairs))}


def render_suite(suite: str, index: int, split: str = "train", size=(240, 320), holes: bool = False,
                 renderer: str = "raycast", spp: int = 32) -> dict:
    """Sample ``index`` of ``split`` in ``suite``: ``render_scene``'s {"image", "depth", "intrinsics"} plus
    - edges, clutter: "edges" (H,W) bool (``occlusion_edges`` of the exact geometry, also with ``holes``);
      clutter also "clutter" and "overlaps" (``clutter_scores``);
    - glass: "glass" (H,W) bool, "depth_through" (H,W) float32 and its twin without glass (see
      ``glass.render_glass``), always path traced.
    ``renderer``: the image's renderer for the other suites ("raycast" or "mitsuba", see ``scenes.draw``);
    ``spp``: Mitsuba's samples per pixel."""
    check_suite(suite)
    check_renderer(renderer)
    if suite == "rooms":
        return render_scene(index, split, size, holes, renderer, spp)
    size = check_size(size)
    rng = suite_rng(suite, index, split)
    if suite == "glass":
        if holes:
            raise DepthforgeError("synth: the glass suite has no 'holes' (its Kinect-like depth is depth_through)")
        from .glass import render_glass  # Mitsuba loads only for this suite

        return render_glass(rng, camera_intrinsics(size, "mitsuba"), size, spp=spp)
    k = camera_intrinsics(size, renderer)
    if suite == "edges":
        scene = random_scene(rng, k, size, mix=THIN, count=(8, 20))
    else:
        scene = random_scene(rng, k, size, mix=CLUTTER, count=(25, 45))
    out = draw(scene, rng, renderer, spp)
    edges = occlusion_edges(out["depth"], out["shape"])
    depth = kinect_holes(out["depth"], out["normal"], k, rng) if holes else out["depth"]
    sample = {"image": out["image"], "depth": depth, "intrinsics": k, "edges": edges}
    if suite == "clutter":
        sample.update(clutter_scores(out["shape"], scene.objects, edges))
    return sample
