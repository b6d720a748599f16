"""The sample dict every dataset returns, and how to build one from arrays read at the file boundary."""
from __future__ import annotations

import os

import numpy as np
import torch

from .io import file_error


# Beyond this a depth file holds wrong units or garbage (no RGB-D sensor or LiDAR measures 1 km indoors or on a road).
MAX_PLAUSIBLE_DEPTH = 1000.0


def make_sample(image: np.ndarray, depth: np.ndarray | None, name: str,
                intrinsics: np.ndarray | None = None, pose: np.ndarray | None = None) -> dict:
    """Arrays -> sample dict of tensors.

    image: float32 (H,W,3) in [0,1]; depth: float32 metres (H,W), 0/non-finite = invalid (None: no ground truth,
    stored as all-invalid zeros; beyond ``MAX_PLAUSIBLE_DEPTH`` it raises, so training skips the file and
    ``depthforge data check`` lists it); intrinsics: (3,3) pixels at this image size; pose: (4,4) camera-to-world
    (x right, y down, z forward, metres), as video metrics reproject one frame into the next with it.
    Returns {"image": [3,H,W] float32, "depth": [1,H,W] float32, "valid": [1,H,W] bool, "name": str,
    "intrinsics": [3,3] float32, "pose": [4,4] float32 (each only when given)}.
    """
    h, w = image.shape[:2]
    if depth is None:
        depth = np.zeros((h, w), np.float32)
    depth = np.where(np.isfinite(depth), depth, 0).astype(np.float32)
    if depth.size and float(depth.max()) > MAX_PLAUSIBLE_DEPTH:
        raise file_error(f"{name}: depth up to {float(depth.max()):.3g} m, beyond any plausible range "
                         f"(> {MAX_PLAUSIBLE_DEPTH:g} m): wrong units or a damaged file", "absurd depth")
    sample = {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)),
        "depth": torch.from_numpy(np.ascontiguousarray(depth))[None],
        "name": name,
    }
    sample["valid"] = sample["depth"] > 0
    if intrinsics is not None:
        sample["intrinsics"] = torch.tensor(np.asarray(intrinsics, dtype=np.float32))  # a copy: k may be shared
    if pose is not None:
        sample["pose"] = torch.tensor(np.asarray(pose, dtype=np.float32).reshape(4, 4))
    return sample


def scale_intrinsics(k: np.ndarray, sy: float, sx: float) -> np.ndarray:
    """Intrinsics for an image resized by (sy, sx); principal point in pixel-centre convention."""
    k = np.array(k, dtype=np.float32, copy=True)
    k[0, 0] *= sx
    k[1, 1] *= sy
    k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
    k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
    return k


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float32)


def with_focal(k: np.ndarray | None, focal: float | None, h: int, w: int) -> np.ndarray | None:
    """Intrinsics for an (h, w) image whose file list gives one focal length (BTS/AdaBins lists): fx = fy =
    ``focal``; cx, cy from ``k``, else the image centre. Without a focal, ``k`` as it is (None: unknown)."""
    if focal is None:
        return k
    cx, cy = (float(k[0, 2]), float(k[1, 2])) if k is not None else ((w - 1) / 2, (h - 1) / 2)
    return intrinsics_matrix(focal, focal, cx, cy)


def check_same_size(path: str | os.PathLike, image: np.ndarray, depth: np.ndarray | None) -> None:
    """Raise a one-line 'wrong size' DepthforgeError naming the depth file ``path`` unless ``depth`` (H,W) matches
    ``image`` (H,W,...); None (no ground truth) passes."""
    if depth is not None and depth.shape[:2] != image.shape[:2]:
        raise file_error(f"{path}: depth is {depth.shape[1]}x{depth.shape[0]}, "
                         f"image is {image.shape[1]}x{image.shape[0]}", "wrong size")


NYU_INTRINSICS_640 = intrinsics_matrix(518.8579, 519.4696, 325.5824, 253.7362)
