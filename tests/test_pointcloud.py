"""Back-projection of depth maps to points, and the PLY writer/reader."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from depthforge import DepthforgeError
from depthforge.data.io import read_depth, read_image
from depthforge.viz.pointcloud import backproject, estimate_intrinsics, read_ply, save_ply, write_ply

K = np.array([[100.0, 0, 3.5], [0, 120.0, 2.5], [0, 0, 1]], np.float32)


def test_plane_at_known_depth_gives_the_right_coordinates():
    depth = np.full((6, 8), 2.0, np.float32)
    points, colors = backproject(depth, K)
    assert points.shape == (48, 3) and points.dtype == np.float32 and colors.shape == (48, 3)
    np.testing.assert_allclose(points[:, 2], 2.0)
    # row-major order: pixel (u=7, v=5) is the last point; (u=0, v=0) the first
    np.testing.assert_allclose(points[-1], [(7 - 3.5) * 2 / 100, (5 - 2.5) * 2 / 120, 2.0], rtol=1e-6)
    np.testing.assert_allclose(points[0], [-3.5 * 2 / 100, -2.5 * 2 / 120, 2.0], rtol=1e-6)
    # a fronto-parallel plane stays a plane: its width at depth z is z * W / fx
    assert math.isclose(points[:, 0].max() - points[:, 0].min(), 2.0 * 7 / 100, rel_tol=1e-6)


def test_matches_kornia_depth_to_3d():
    kornia = pytest.importorskip("kornia")
    depth = np.random.default_rng(0).uniform(0.5, 9, (5, 7)).astype(np.float32)
    points, _ = backproject(depth, K)
    ref = kornia.geometry.depth.depth_to_3d_v2(torch.from_numpy(depth)[None], torch.from_numpy(K)[None])  # (1,H,W,3)
    np.testing.assert_allclose(points, ref.reshape(-1, 3).numpy(), rtol=1e-5, atol=1e-6)


def test_invalid_and_far_points_are_dropped_and_colours_follow_pixels():
    depth = np.array([[1.0, 0.0, np.nan], [np.inf, 5.0, -1.0]], np.float32)
    image = np.arange(18, dtype=np.uint8).reshape(2, 3, 3) * 10
    points, colors = backproject(depth, K, image)
    np.testing.assert_allclose(points[:, 2], [1.0, 5.0])
    np.testing.assert_array_equal(colors, [image[0, 0], image[1, 1]])
    points, colors = backproject(depth, K, image.astype(np.float32) / 255, max_depth=4.0)
    assert len(points) == 1 and colors.tolist() == [image[0, 0].tolist()]
    # no image: coloured by depth (near bright)
    _, colors = backproject(np.array([[1.0, 3.0]], np.float32), K)
    assert colors[0].astype(int).sum() > colors[1].astype(int).sum()


def test_missing_intrinsics_are_estimated_from_a_field_of_view_and_reported(caplog):
    depth = np.full((4, 10), 3.0, np.float32)
    with caplog.at_level(logging.WARNING, logger="depthforge.pointcloud"):
        points, _ = backproject(depth, fov_deg=90)
    assert "no camera intrinsics" in caplog.text and "90° horizontal field of view" in caplog.text
    k = estimate_intrinsics(4, 10, 90)
    assert k[0, 0] == pytest.approx(5.0) and (k[0, 2], k[1, 2]) == (4.5, 1.5)
    # with a 90° field of view the outermost pixel centres span nearly ±z
    np.testing.assert_allclose(points[:, 0].max(), 4.5 / 5.0 * 3.0, rtol=1e-6)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="depthforge.pointcloud"):
        backproject(depth)
    assert "60°" in caplog.text


@pytest.mark.parametrize("kwargs, message", [
    ({"depth": np.zeros((2, 2, 2))}, "depth must be"),
    ({"intrinsics": np.eye(2)}, "intrinsics"),
    ({"image": np.zeros((3, 3, 3))}, "does not match"),
    ({"fov_deg": 0}, "field of view"),
])
def test_bad_arguments(kwargs, message):
    args = {"depth": np.ones((2, 2), np.float32), **kwargs}
    with pytest.raises(DepthforgeError, match=message):
        backproject(**args)


def test_ply_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(1000, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (1000, 3)).astype(np.uint8)
    path = tmp_path / "cloud.ply"
    write_ply(path, points, colors)
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert path.stat().st_size == len(path.read_bytes().split(b"end_header\n")[0]) + 11 + 1000 * 15
    back, back_colors = read_ply(path)
    np.testing.assert_array_equal(back, points)
    np.testing.assert_array_equal(back_colors, colors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cloud.ply"]  # atomic: no temp file left
    write_ply(tmp_path / "white.ply", points[:3])
    assert read_ply(tmp_path / "white.ply")[1].tolist() == [[255, 255, 255]] * 3
    write_ply(tmp_path / "empty.ply", np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    assert read_ply(tmp_path / "empty.ply")[0].shape == (0, 3)


def test_read_ascii_ply_and_bad_files(tmp_path):
    ascii_ply = tmp_path / "a.ply"
    ascii_ply.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
                         "property float z\nend_header\n1 2 3\n4 5 6\n")
    points, colors = read_ply(ascii_ply)
    assert points.tolist() == [[1, 2, 3], [4, 5, 6]] and colors is None
    (tmp_path / "bad.ply").write_text("hello")
    with pytest.raises(DepthforgeError, match="bad.ply: not a PLY file"):
        read_ply(tmp_path / "bad.ply")
    with pytest.raises(DepthforgeError, match="missing.ply: file not found"):
        read_ply(tmp_path / "missing.ply")
    write_ply(tmp_path / "cut.ply", np.ones((10, 3)), np.ones((10, 3), np.uint8))
    (tmp_path / "cut.ply").write_bytes((tmp_path / "cut.ply").read_bytes()[:-20])
    with pytest.raises(DepthforgeError, match="cut.ply: truncated"):
        read_ply(tmp_path / "cut.ply")
    with pytest.raises(DepthforgeError, match="points must be"):
        write_ply(tmp_path / "x.ply", np.ones((3, 2)))


def test_real_nyu_frame_with_its_intrinsics(realdata, tmp_path):
    depth = read_depth(realdata / "nyu" / "depth_1.png", "mm")
    image = read_image(realdata / "nyu" / "rgb_1.png")
    k = np.array([[518.8579, 0, 325.5824], [0, 519.4696, 253.7362], [0, 0, 1]])
    n = save_ply(tmp_path / "nyu.ply", depth, image, k, max_depth=10.0)
    points, colors = read_ply(tmp_path / "nyu.ply")
    assert n == len(points) == int((depth > 0).sum())
    v, u = np.nonzero(depth > 0)
    i = len(u) // 2
    z = depth[v[i], u[i]]
    np.testing.assert_allclose(points[i], [(u[i] - 325.5824) * z / 518.8579, (v[i] - 253.7362) * z / 519.4696, z],
                               rtol=1e-5)
    np.testing.assert_array_equal(colors[i], np.round(image[v[i], u[i]] * 255))
    # an indoor room: a few metres across, in front of the camera
    assert 0.5 < points[:, 2].min() and points[:, 2].max() < 10 and np.ptp(points[:, 0]) < 15
