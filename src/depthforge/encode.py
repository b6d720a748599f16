"""Image, depth and array encoders: arrays -> file bytes (PNG, JPEG, 16-bit depth PNG, ``.npy``). Nothing here
touches the disk; ``files`` writes the bytes atomically, the server sends them."""
from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from .errors import DepthforgeError


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An image as uint8: float values in [0,1] are clipped and rounded (×255); uint8 passes through as is."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    return (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)


def image_bytes(image: np.ndarray, fmt: str = "png", quality: int = 95, compress_level: int = 6) -> bytes:
    """RGB (H,W,3) or gray (H,W), float in [0,1] or uint8 -> encoded ``fmt`` ("png" or "jpeg") bytes.

    ``quality`` applies to JPEG, ``compress_level`` (0 fastest .. 9 smallest) to PNG.
    """
    fmt = fmt.lower()
    if fmt not in ("png", "jpeg", "jpg"):
        raise DepthforgeError(f"image format must be png or jpeg, got {fmt!r}")
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(to_uint8(image)).save(buf, format="PNG", compress_level=compress_level)
    else:
        Image.fromarray(to_uint8(image)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def npy_bytes(array: np.ndarray, dtype: Any = np.float32) -> bytes:
    """An array as ``.npy`` file bytes, float32 by default (depth in metres); never pickled."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, dtype=dtype), allow_pickle=False)
    return buf.getvalue()


# 16-bit PNG depth: stored value = metres x scale. Millimetres reach 65.535 m; beyond, KITTI's x256 (to 255.996 m).
PNG16_SCALES = {"mm": 1000.0, "kitti256": 256.0}
PNG16_MM_MAX = 65535 / 1000.0


def png16_encoding(max_depth: float) -> str:
    """The 16-bit PNG encoding for depths up to ``max_depth`` metres (a predictor's ``max_depth``): "mm" when
    0 < max_depth <= 65.535, else "kitti256" (also when it is unknown: 0, NaN or inf)."""
    return "mm" if 0 < max_depth <= PNG16_MM_MAX else "kitti256"


def depth_png_name(base: str, encoding: str) -> str:
    """File name of a 16-bit depth PNG that says its encoding: ``BASE.png`` for millimetres (the common case),
    ``BASE_ENCODING.png`` otherwise, e.g. ``photo_depth_kitti256.png``."""
    if encoding not in PNG16_SCALES:
        raise DepthforgeError(f"16-bit depth PNG encoding must be one of {', '.join(PNG16_SCALES)}, got {encoding!r}")
    return f"{base}.png" if encoding == "mm" else f"{base}_{encoding}.png"


def depth_to_png16(depth: np.ndarray, scale: float = 1000.0) -> bytes:
    """Depth in metres (H,W) -> 16-bit PNG bytes of round(depth x scale) (default millimetres).

    Invalid depth (0, negative, NaN, inf) becomes 0. A valid depth is never written as 0: values beyond the
    16-bit range are clipped to 65535 (65.535 m in millimetres, 255.996 m at x256) and tiny ones raised to 1.
    """
    d = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    d = np.where(valid, np.clip(np.round(np.where(valid, d, 0) * scale), 1, 65535), 0).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(d).save(buf, format="PNG")
    return buf.getvalue()
