"""Depth prompts for a model whose contract takes one (Prompt Depth Anything): a low-resolution depth map of the
same view, such as a phone's 192×256 LiDAR, in metres.

Files: a 16-bit PNG in millimetres (as ARKit/PromptDA's samples store it) or a ``.npy`` in metres. The network
scales the prompt by its own minimum and maximum and resizes it bilinearly to each stage (its processor never
resizes it), so any resolution works; one of another aspect ratio than the photo's is stretched to the photo's
frame, and a log line says so. Readings whose median is not plausible in metres (millimetres in a ``.npy``,
metres in a PNG) are refused with the reason, and holes (0) are filled from the nearest reading: a 0 would
become the prompt's minimum and pull the whole scale.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from ..data.io import decode_depth, read_depth_raw
from ..errors import DepthforgeError

log = logging.getLogger(__name__)

# metres: where the median of a real depth prompt lies (a room's 0.3-10 m to a street's 100 m, with a wide margin)
PLAUSIBLE = (0.05, 250.0)
# the rows of the low-resolution prompt evaluation gives a model, as ARKit's 192×256 LiDAR (PromptDA's setting)
PROMPT_ROWS = 192


def read_prompt(path: str | os.PathLike) -> np.ndarray:
    """A prompt file -> float32 metres (h,w), checked and its holes filled (``check_prompt``)."""
    name = str(path)
    if name.lower().endswith(".npy"):
        depth = decode_depth(read_depth_raw(path), "metres")
    elif name.lower().endswith(".png"):
        raw = read_depth_raw(path)
        if raw.dtype != np.uint16:
            raise DepthforgeError(f"{path}: a depth prompt PNG must be 16-bit millimetres, not {raw.dtype}")
        depth = decode_depth(raw, "mm")
    else:
        raise DepthforgeError(f"{path}: a depth prompt is a 16-bit PNG (millimetres) or a .npy (metres)")
    return check_prompt(depth, name)


def check_prompt(depth: np.ndarray, name: str = "prompt") -> np.ndarray:
    """Depth (h,w) metres, 0 or non-finite = no reading -> float32 (h,w) with holes filled from the nearest reading;
    one line when it has no reading, negative values, or a median that is not plausible metres."""
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2 or min(d.shape) < 1:
        raise DepthforgeError(f"{name}: a depth prompt must be a 2-D map (h,w), got shape {d.shape}")
    if (d < 0).any():
        raise DepthforgeError(f"{name}: a depth prompt cannot hold negative depths (min {float(np.nanmin(d)):g})")
    valid = np.isfinite(d) & (d > 0)
    if not valid.any():
        raise DepthforgeError(f"{name}: the depth prompt has no valid reading (all 0 or not finite)")
    median = float(np.median(d[valid]))
    if median > PLAUSIBLE[1]:
        raise DepthforgeError(f"{name}: median depth {median:g} m is not plausible for a prompt in metres "
                              "(millimetres? a .npy holds metres, a 16-bit PNG millimetres)")
    if median < PLAUSIBLE[0]:
        raise DepthforgeError(f"{name}: median depth {median:g} m is not plausible for a prompt (metres stored in a "
                              "16-bit PNG? it holds millimetres)")
    if not valid.all():
        from scipy.ndimage import distance_transform_edt

        nearest = distance_transform_edt(~valid, return_distances=False, return_indices=True)
        d = d[tuple(nearest)]
    return np.ascontiguousarray(d)


def fit_prompt(prompt: np.ndarray, shape: tuple[int, int], name: str = "prompt") -> np.ndarray:
    """The prompt for a photo of ``shape`` (H, W): as it is (the network resizes it), with a log line when its aspect
    ratio is not the photo's, as it is then stretched to the photo's frame."""
    h, w = prompt.shape
    if abs((w / h) / (shape[1] / shape[0]) - 1) > 0.01:
        log.warning("%s: the prompt is %dx%d, the photo %dx%d (another aspect ratio): it is stretched to the photo's "
                    "frame, resized bilinearly as Prompt Depth Anything resizes every prompt", name, w, h, shape[1],
                    shape[0])
    return prompt


def prompt_from_depth(depth: np.ndarray, rows: int = PROMPT_ROWS) -> np.ndarray:
    """A low-resolution prompt from a dense depth map (evaluation): nearest-neighbour sampling to ``rows`` rows at
    the map's aspect ratio (never upsampled), holes filled; as PromptDA simulates a LiDAR from ground truth."""
    h, w = depth.shape
    ph = min(rows, h)
    pw = max(1, round(w * ph / h))
    ys = ((np.arange(ph) + 0.5) * h / ph).astype(int)
    xs = ((np.arange(pw) + 0.5) * w / pw).astype(int)
    return check_prompt(depth[np.ix_(ys, xs)], "ground-truth prompt")
