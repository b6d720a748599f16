"""Depth maps as 3-D point clouds, and PLY files to view them in (MeshLab, CloudCompare, Open3D, Blender).

Points are in the camera frame, OpenCV convention: x right, y down, z forward (= the depth), metres.
Pixel (u, v) — column, row, integer pixel centres — with depth z maps to ((u-cx)·z/fx, (v-cy)·z/fy, z),
as ``kornia.geometry.depth.depth_to_3d_v2``.
"""
from __future__ import annotations

import logging
import math
import os

import numpy as np

from .colors import colorize
from ..files import write_bytes
from ..encode import to_uint8
from ..errors import DepthforgeError

log = logging.getLogger(__name__)

DEFAULT_FOV_DEG = 60.0


def estimate_intrinsics(height: int, width: int, fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    """Pinhole intrinsics (3,3) for an image whose horizontal field of view is ``fov_deg``; square pixels,
    principal point at the image centre. A guess for photos of unknown cameras (phones: about 60-70°)."""
    if not 0 < fov_deg < 180:
        raise DepthforgeError(f"field of view must be between 0 and 180 degrees, got {fov_deg}")
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], dtype=np.float32)


def backproject(depth: np.ndarray, intrinsics: np.ndarray | None = None, image: np.ndarray | None = None,
                max_depth: float | None = None, fov_deg: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth (H,W) metres -> (points (M,3) float32 metres, colors (M,3) uint8), one point per valid pixel.

    Pixels with depth 0, negative, non-finite, or above ``max_depth`` are dropped. ``intrinsics``: (3,3) pixels
    at this size; when None they are estimated from a horizontal field of view ``fov_deg`` (default 60°) and a
    warning says so. ``image``: (H,W,3) RGB, uint8 or float in [0,1], gives the colours; without it the points
    are coloured by depth (``colors.colorize``).
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim == 3 and d.shape[0] == 1:
        d = d[0]
    if d.ndim != 2:
        raise DepthforgeError(f"backproject: depth must be (H,W), got shape {d.shape}")
    h, w = d.shape
    if intrinsics is None:
        fov = DEFAULT_FOV_DEG if fov_deg is None else float(fov_deg)
        k = estimate_intrinsics(h, w, fov)
        log.warning("no camera intrinsics: assuming a %g° horizontal field of view (fx = fy = %.1f px); "
                    "pass intrinsics for true geometry", fov, k[0, 0])
    else:
        k = np.asarray(intrinsics, dtype=np.float64)
        if k.shape != (3, 3) or not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
            raise DepthforgeError(f"backproject: intrinsics must be a 3x3 matrix with fx, fy > 0, got {k.tolist()}")
    valid = np.isfinite(d) & (d > 0)
    if max_depth is not None:
        valid &= d <= max_depth
    v, u = np.nonzero(valid)
    z = d[v, u].astype(np.float64)
    fx, fy, cx, cy = float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
    points = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=1).astype(np.float32)
    if image is None:
        colors = colorize(d)[v, u]
    else:
        img = np.asarray(image)
        if img.shape[:2] != (h, w) or img.ndim != 3 or img.shape[2] < 3:
            raise DepthforgeError(f"backproject: image shape {img.shape} does not match depth {(h, w)} (need H,W,3)")
        colors = to_uint8(img[..., :3])[v, u]
    return points, np.ascontiguousarray(colors, dtype=np.uint8)


_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def ply_bytes(points: np.ndarray, colors: np.ndarray | None = None) -> bytes:
    """Binary little-endian PLY: vertices x, y, z (float) and red, green, blue (uchar)."""
    p = np.asarray(points, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] != 3:
        raise DepthforgeError(f"write_ply: points must be (M,3), got shape {p.shape}")
    c = np.full((len(p), 3), 255, np.uint8) if colors is None else np.asarray(colors)
    if c.shape != p.shape:
        raise DepthforgeError(f"write_ply: colors shape {c.shape} does not match points {p.shape}")
    vertices = np.empty(len(p), _VERTEX)
    vertices["x"], vertices["y"], vertices["z"] = p.T
    vertices["red"], vertices["green"], vertices["blue"] = c.astype(np.uint8).T
    header = ("ply\nformat binary_little_endian 1.0\ncomment written by depthforge; camera frame x right, "
              f"y down, z forward, metres\nelement vertex {len(p)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    return header.encode("ascii") + vertices.tobytes()


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray | None = None) -> None:
    """Write a coloured point cloud as binary little-endian PLY, atomically (colors None -> white)."""
    write_bytes(path, ply_bytes(points, colors))


_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read the vertices of a PLY point cloud -> (points (M,3) float32, colors (M,3) uint8 or None).

    Reads ascii and binary (little/big-endian) files whose first element is ``vertex`` with scalar properties.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DepthforgeError(f"{path}: file not found") from None
    except OSError as e:
        raise DepthforgeError(f"{path}: cannot read ({e.strerror or e})") from None
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise DepthforgeError(f"{path}: not a PLY file")
    body = data[data.index(b"\n", end) + 1:]
    fmt, count, props = None, None, []
    for line in data[:end].decode("ascii", "replace").splitlines()[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            if count is not None:
                break  # only the vertex element (first) is read
            if words[1] != "vertex":
                raise DepthforgeError(f"{path}: first PLY element is {words[1]!r}, not 'vertex'")
            count = int(words[2])
        elif words[0] == "property" and count is not None:
            if words[1] == "list" or words[1] not in _PLY_TYPES:
                raise DepthforgeError(f"{path}: unsupported PLY vertex property {' '.join(words[1:])!r}")
            props.append((words[2], _PLY_TYPES[words[1]]))
    names = [n for n, _ in props]
    if count is None or not {"x", "y", "z"} <= set(names):
        raise DepthforgeError(f"{path}: PLY has no vertex element with x, y, z")
    try:
        if fmt == "ascii":
            lines = body.decode("ascii").splitlines()[:count]
            table = np.loadtxt(lines, ndmin=2) if count else np.zeros((0, len(props)))
            vertices = {n: table[:, i] for i, n in enumerate(names)}
        elif fmt in ("binary_little_endian", "binary_big_endian"):
            order = "<" if fmt == "binary_little_endian" else ">"
            dtype = np.dtype([(n, order + t) for n, t in props])
            vertices = np.frombuffer(body, dtype, count=count)
        else:
            raise DepthforgeError(f"{path}: unknown PLY format {fmt!r}")
    except ValueError as e:
        raise DepthforgeError(f"{path}: truncated or damaged PLY ({e})") from None
    points = np.stack([vertices[a] for a in "xyz"], axis=1).astype(np.float32)
    colors = None
    if {"red", "green", "blue"} <= set(names):
        colors = np.stack([vertices[a] for a in ("red", "green", "blue")], axis=1).astype(np.uint8)
    return points, colors


def save_ply(path: str | os.PathLike, depth: np.ndarray, image: np.ndarray | None = None,
             intrinsics: np.ndarray | None = None, max_depth: float | None = None,
             fov_deg: float | None = None) -> int:
    """``backproject`` then ``write_ply`` in one call (what ``depthforge predict --ply`` does); returns M."""
    points, colors = backproject(depth, intrinsics, image, max_depth=max_depth, fov_deg=fov_deg)
    write_ply(path, points, colors)
    return len(points)
