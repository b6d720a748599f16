"""A depth result as files, bytes per format: the one renderer behind ``depthforge predict`` (``photos.py``)
and the web service (``serve``), so a photo's files are the same whichever way it came in."""
from __future__ import annotations

import numpy as np

from ..encode import PNG16_SCALES, depth_to_png16, image_bytes, npy_bytes
from ..viz.colors import colorize
from ..viz.pointcloud import backproject, ply_bytes


def result_files(depth: np.ndarray, encoding: str, image: np.ndarray | None = None, ply: bool = False,
                 intrinsics: np.ndarray | None = None, cloud_step: int = 1,
                 vrange: tuple[float, float] | None = None, compress_level: int = 6) -> dict[str, bytes]:
    """Depth (H,W) metres -> {"color.png": plasma colours (near = bright; ``vrange`` (vmin, vmax) metres, default
    ``colors.depth_range``), "depth.png": 16-bit PNG in ``encoding`` ("mm" or "kitti256",
    ``files.png16_encoding``), "depth.npy": float32 metres}, and with ``ply`` "cloud.ply": the points of every
    ``cloud_step``-th row and column, coloured by ``image`` (H,W,3) and placed with ``intrinsics`` (3,3 at the
    full size; None: a 60° field of view, with a warning). ``compress_level``: the colour PNG's (0 fastest..9)."""
    files = {"color.png": image_bytes(colorize(depth, *(vrange or (None, None))), "png",
                                      compress_level=compress_level),
             "depth.png": depth_to_png16(depth, PNG16_SCALES[encoding]), "depth.npy": npy_bytes(depth)}
    if ply:
        s = cloud_step
        k = None if intrinsics is None else np.array(intrinsics)  # a copy, in its own dtype
        if k is not None:
            k[:2] /= s  # striding from pixel 0 by s divides fx, fy, cx, cy by s exactly
        files["cloud.ply"] = ply_bytes(*backproject(depth[::s, ::s], k, None if image is None else image[::s, ::s]))
    return files
