"""Benchmark suites of synthetic rooms: masks against the renderer's geometry, determinism, the glass cache."""
from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
import torch

from depthforge.data import build_dataset
from depthforge.data.sample import intrinsics_matrix
from depthforge.data.synth import Box, Camera, Plane, Scene, SynthDataset, random_scene, render, synth_intrinsics
from depthforge.data.synth.furniture import CLUTTER, THIN
from depthforge.data.synth.suites import EDGE_JUMP, occlusion_edges, render_suite, suite_rng
from depthforge.errors import DepthforgeError

SIZE = (48, 64)
K = intrinsics_matrix(60.0, 60.0, 32.0, 24.0)


def _neighbours(a: np.ndarray):
    """(slice of pixels, slice of their neighbours) in a's four directions."""
    return [(np.s_[:, :-1], np.s_[:, 1:]), (np.s_[:, 1:], np.s_[:, :-1]),
            (np.s_[:-1], np.s_[1:]), (np.s_[1:], np.s_[:-1])]


def _jump_across(depth, ids):
    """Per pixel: some 4-neighbour hits another shape, further away by more than EDGE_JUMP of this depth."""
    out = np.zeros(depth.shape, bool)
    for here, there in _neighbours(depth):
        out[here] |= (ids[here] != ids[there]) & (depth[there] - depth[here] > EDGE_JUMP * depth[here])
    return out


def test_edges_of_a_box_before_a_wall_are_its_silhouette_and_a_contact_is_no_edge():
    cam = Camera((0.0, 0.0, 0.0), np.eye(3), K, SIZE)  # identity: world y points down the image
    wall = Plane((0.0, 0.0, 4.0), (0.0, 0.0, -1.0))
    floor = Plane((0.0, 0.5, 0.0), (0.0, -1.0, 0.0))  # 0.5 m below the camera
    box = Box((0.0, 0.2, 2.0), (0.4, 0.3, 0.3))  # stands on the floor: its bottom face is at y = 0.5
    out = render(Scene(cam, [wall, floor, box]))
    edges = occlusion_edges(out["depth"], out["shape"])
    ids = out["shape"]
    on_box = ids == 2
    beside_wall = np.zeros(SIZE, bool)
    for here, there in _neighbours(ids):
        beside_wall[here] |= on_box[here] & (ids[there] == 0)
    assert beside_wall.sum() > 40 and edges[beside_wall].all()  # the top and the upper sides
    foot = on_box & ~beside_wall
    foot[:-1] &= ids[1:] == 1  # the floor right below
    foot[:, 1:] &= ids[:, :-1] == 2  # box on both sides: not the silhouette's corner
    foot[:, :-1] &= ids[:, 1:] == 2
    assert foot.sum() > 10 and not edges[foot].any()  # standing on the floor: depth is continuous there
    assert not edges[ids != 2].any()  # only the nearer side is marked; the crease floor/wall is no edge


@pytest.mark.parametrize("suite", ["edges", "clutter"])
def test_edge_masks_lie_on_depth_jumps_of_the_geometry(suite):
    s = render_suite(suite, 2, "test", SIZE)
    edges = s["edges"]
    assert edges.dtype == bool and edges.shape == SIZE and edges.sum() > 20
    # Rebuild the ids from the same seed, then check every edge pixel against them.
    rng = suite_rng(suite, 2, "test")
    mix, count = (THIN, (8, 20)) if suite == "edges" else (CLUTTER, (25, 45))
    out = render(random_scene(rng, synth_intrinsics(SIZE), SIZE, mix=mix, count=count))
    np.testing.assert_array_equal(out["depth"], s["depth"])
    assert (_jump_across(out["depth"], out["shape"]) | ~edges).all()  # each edge pixel: a nearer side of a jump
    assert (edges | ~_jump_across(out["depth"], out["shape"])).mean() > 0.995  # and nearly every such pixel
    if suite == "clutter":
        assert s["clutter"] >= 5 and s["overlaps"] >= 3


def test_clutter_has_more_pieces_than_rooms_and_edges_more_thin_edges():
    clutter = [render_suite("clutter", i, "val", SIZE)["clutter"] for i in range(4)]
    rooms_edges = []
    for i in range(4):
        out = render(random_scene(suite_rng("rooms", i, "val"), synth_intrinsics(SIZE), SIZE))
        rooms_edges.append(occlusion_edges(out["depth"], out["shape"]).mean())
    edges = [render_suite("edges", i, "val", SIZE)["edges"].mean() for i in range(4)]
    assert np.mean(clutter) > 8
    assert np.mean(edges) > np.mean(rooms_edges)


def test_suites_are_deterministic_and_do_not_share_seeds():
    a, b = render_suite("edges", 1, "train", SIZE, holes=True), render_suite("edges", 1, "train", SIZE, holes=True)
    for key in ("image", "depth", "edges"):
        np.testing.assert_array_equal(a[key], b[key])
    assert (a["depth"] == 0).any()  # holes in depth; edges still from the exact geometry
    other = [render_suite("edges", 1, "val", SIZE)["depth"], render_suite("clutter", 1, "train", SIZE)["depth"],
             render_suite("rooms", 1, "train", SIZE)["depth"]]
    assert not any(np.array_equal(exact, render_suite("edges", 1, "train", SIZE)["depth"]) for exact in other)
    with pytest.raises(DepthforgeError, match="unknown suite"):
        render_suite("mirrors", 0)


def test_build_dataset_suite_samples_carry_their_masks():
    ds = build_dataset({"name": "synth", "suite": "clutter", "n": 2, "size": list(SIZE)}, split="test")
    assert isinstance(ds, SynthDataset) and len(ds) == 2
    s = ds[1]
    assert s["name"] == "synth-clutter-test-00001"
    assert s["edges"].shape == (1, *SIZE) and s["edges"].dtype.is_floating_point is False
    assert s["edges"].any() and isinstance(s["clutter"], float)
    default = build_dataset({"name": "synth", "n": 2, "size": list(SIZE)}, split="test")[0]
    assert set(default) == {"image", "depth", "valid", "name", "intrinsics"}  # today's rooms: unchanged


# ------------------------------------------------------------------------------------------------- glass

# Marked "mitsuba": they render with Mitsuba 3 (select or skip them with -m).
needs_mitsuba = pytest.mark.skipif(importlib.util.find_spec("mitsuba") is None, reason="pip install mitsuba")
GLASS_SIZE = (36, 48)


@pytest.mark.mitsuba
@needs_mitsuba
def test_glass_geometry_matches_mitsubas_own_intersections():
    from depthforge.data.synth import glass as g

    from depthforge.data.synth import pathtrace

    mi = pathtrace._mitsuba()
    k = synth_intrinsics(GLASS_SIZE)
    k[1, 1] = k[0, 0]
    scene, materials = g.glass_scene(suite_rng("glass", 3, "test"), k, GLASS_SIZE)
    gt = g.glass_geometry(scene, materials)
    assert 0 < gt["glass"].mean() < 1
    ms = pathtrace.mitsuba_scene(scene, materials, spp=1)
    sensor = ms.sensors()[0]
    h, w = GLASS_SIZE
    fwd = np.asarray(scene.camera.rotation)[:, 2]
    for v in range(h):
        for u in range(w):
            ray, _ = sensor.sample_ray(0.0, 0.5, mi.Point2f((u + 0.5) / w, (v + 0.5) / h), mi.Point2f(0.5, 0.5))
            si = ms.ray_intersect(ray)
            z = float(np.dot(np.array(si.p) - np.asarray(scene.camera.position), fwd))
            assert z == pytest.approx(float(gt["depth"][v, u]), rel=1e-4)
            kind = str(si.shape.bsdf()).split("[")[0]
            assert kind.startswith(("SmoothDielectric", "SmoothConductor")) == gt["glass"][v, u], (v, u, kind)


@pytest.mark.mitsuba
@needs_mitsuba
def test_depth_through_differs_only_behind_glass_and_lies_beyond_it():
    from depthforge.data.synth import glass as g

    k = synth_intrinsics(GLASS_SIZE)
    for i in range(6):
        scene, materials = g.glass_scene(suite_rng("glass", i, "val"), k, GLASS_SIZE)
        gt = g.glass_geometry(scene, materials)
        glass, depth, through = gt["glass"], gt["depth"], gt["depth_through"]
        np.testing.assert_array_equal(through[~glass], depth[~glass])
        assert (through[glass] > depth[glass]).all()
        assert (depth > 0).all()
        # Where the first hit is a mirror, the distance continues along the reflected ray, past the mirror.
        is_mirror = np.array([m == "mirror" for m in materials])[gt["shape"]]
        if is_mirror.any():
            assert (through[is_mirror] > depth[is_mirror] + 0.01).all()


@pytest.mark.mitsuba
@needs_mitsuba
def test_glass_suite_renders_once_then_reads_the_cache(tmp_path):
    spec = {"name": "synth", "suite": "glass", "n": 2, "size": list(GLASS_SIZE), "spp": 4,
            "cache_dir": str(tmp_path), "progress": False}
    start = time.perf_counter()
    ds = build_dataset(spec, split="test")
    first = time.perf_counter() - start
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["00000.npz", "00001.npz"]  # and no temporary files left behind
    s = ds[0]
    assert s["name"] == "synth-glass-test-00000"
    assert s["glass"].shape == (1, *GLASS_SIZE) and s["glass"].dtype == torch.bool
    assert s["depth_through"].shape == (1, *GLASS_SIZE)
    assert s["glass"].any() and s["valid"].all()
    g = s["glass"][0]
    assert (s["depth_through"][0][g] > s["depth"][0][g]).all()
    assert s["depth_through"][0][~g].equal(s["depth"][0][~g])
    assert 0.02 < float(s["image"].mean()) < 0.98 and float(s["image"].std()) > 0.02

    import depthforge.data.synth.suites as suites

    def no_render(*a, **k):
        raise AssertionError("rendered again")

    mp = pytest.MonkeyPatch()
    mp.setattr("depthforge.data.synth.dataset.render_suite", no_render)
    mp.setattr(suites, "render_suite", no_render)
    try:
        again = build_dataset(spec, split="test")
        b = again[0]
    finally:
        mp.undo()
    for key in ("image", "depth", "depth_through", "glass", "intrinsics"):
        assert b[key].equal(s[key])
    assert first < 60


@pytest.mark.mitsuba
@needs_mitsuba
def test_glass_suite_is_deterministic():
    a = render_suite("glass", 1, "train", (24, 32), spp=2)
    b = render_suite("glass", 1, "train", (24, 32), spp=2)
    for key in ("image", "depth", "depth_through", "glass", "intrinsics"):
        np.testing.assert_array_equal(a[key], b[key])
    with pytest.raises(DepthforgeError, match="holes"):
        render_suite("glass", 0, "train", (24, 32), holes=True)


@pytest.mark.mitsuba
@needs_mitsuba
def test_the_glass_twin_differs_only_by_its_glass():
    """Each glass scene comes with its twin rendered without glass and mirrors by the same renderer, camera, light
    and samples: the twin's depth is the depth seen straight through the glass, and off the glass a model that
    reads the image (here depth from brightness) errs on both alike — the renderer's look cancels in the pair —
    while inside the glass it does not."""
    from depthforge.evaluation.evaluate import paired_glass
    from depthforge.evaluation.failure import masked_metrics
    from depthforge.evaluation.metrics import get_protocol

    proto = get_protocol("none")
    rest, twin_rest, gaps = [], [], []
    for i in range(3):
        s = render_suite("glass", i, "test", GLASS_SIZE, spp=8)
        glass, depth = s["glass"], s["depth"]
        assert glass.any() and s["twin_image"].shape == s["image"].shape
        mirror = glass & (np.abs(s["twin_depth"] - s["depth_through"]) > 1e-4)
        np.testing.assert_allclose(s["twin_depth"][~mirror], s["depth_through"][~mirror], rtol=1e-5)

        def model(image):
            return 1 + 4 * image.mean(-1)  # brighter = farther: any model that reads the picture

        row = masked_metrics(model(s["image"]), depth, None, glass, proto)
        paired = paired_glass(row, model(s["twin_image"]), s["twin_depth"], glass, proto, "metric", "none")
        rest.append(row["rest/abs_rel"])
        twin_rest.append(paired["twin_rest/abs_rel"])
        gaps.append(abs(paired["glass_gap/abs_rel"]))
    assert np.mean(rest) == pytest.approx(np.mean(twin_rest), rel=0.05)
    assert np.mean(gaps) > 0.05 * np.mean(rest)  # the glass itself does change what the model sees


@pytest.mark.mitsuba
@needs_mitsuba
def test_rooms_can_be_path_traced_in_the_glass_suites_look(tmp_path):
    """`data.renderer: mitsuba` renders any suite's images with the glass suite's path tracer (train on what the
    glass suite tests), cached on disk; the geometry is the ray caster's, the same scene as with `raycast`."""
    from depthforge.data.synth.raycast import render
    from depthforge.data.synth.scenes import camera_intrinsics, random_scene, scene_rng

    spec = {"name": "synth", "n": 1, "size": [24, 32], "renderer": "mitsuba", "spp": 2, "cache_dir": str(tmp_path),
            "progress": False}
    s = build_dataset(spec, split="train")[0]
    assert [p.parent.name for p in tmp_path.rglob("*.npz")] == ["rooms-mitsuba-v2-train-24x32-spp2"]
    k = camera_intrinsics((24, 32), "mitsuba")
    ray = render(random_scene(scene_rng(0, "train"), k, (24, 32)))
    np.testing.assert_array_equal(s["depth"][0].numpy(), ray["depth"])
    path_traced = s["image"].permute(1, 2, 0).numpy()
    assert np.abs(path_traced - ray["image"]).mean() > 0.02  # another renderer's look, not the ray caster's
    with pytest.raises(DepthforgeError, match="unknown renderer 'blender'"):
        build_dataset({**spec, "renderer": "blender"}, split="train")
