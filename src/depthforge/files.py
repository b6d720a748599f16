"""Writing outputs: atomic writes (temp file + fsync + rename), output folders, and the image / depth / array
encoders every command shares. A crash leaves either the old file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from PIL import Image

from .errors import DepthforgeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's 0600 would make every output private


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is flushed to disk and replaces ``path`` in one
    rename, so a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    except OSError as e:
        raise DepthforgeError(f"{path.parent}: cannot write there ({e.strerror or e})") from None
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ``atomic_path``'s temp names: "." + target name + "." + mkstemp's 8 random characters + the target's suffix
_TEMP = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)")


def partial_write_of(path: str | os.PathLike) -> str | None:
    """The target file name when ``path`` is the temp file of an ``atomic_path`` write (one a killed process can
    leave), else None."""
    m = _TEMP.fullmatch(Path(path).name)
    return m["name"] if m is not None and m["suffix"] == (Path(m["name"]).suffix or ".tmp") else None


def remove_partial_writes(folder: str | os.PathLike, names: Iterable[str] | None = None) -> int:
    """Remove the temp files of ``atomic_path`` writes that a killed run left in ``folder`` (not below it): of the
    target file ``names`` only, or of any name. Other files are never touched. Returns how many were removed."""
    names = None if names is None else set(names)
    removed = 0
    with contextlib.suppress(OSError):
        for p in Path(folder).iterdir():
            target = partial_write_of(p)
            if target is not None and (names is None or target in names) and p.is_file() and not p.is_symlink():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed += 1
    return removed


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create an output folder (and parents) and check it is writable; one-line DepthforgeError otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DepthforgeError(f"{path}: cannot write there ({e.strerror or e})") from None
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


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


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write RGB (H,W,3) float in [0,1] or uint8, atomically; JPEG for .jpg/.jpeg, else PNG."""
    fmt = "jpeg" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "png"
    write_bytes(path, image_bytes(image, fmt))


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
    buf = io.BytesIO()
    Image.fromarray(depth_to_uint16(depth, scale)).save(buf, format="PNG")
    return buf.getvalue()


def depth_to_uint16(depth: np.ndarray, scale: float = 1000.0) -> np.ndarray:
    """Depth in metres (H,W) -> uint16 round(depth x scale), invalid as 0, valid never 0 (``depth_to_png16``);
    also the values of the 16-bit depth video (``inference.video``)."""
    d = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    return np.where(valid, np.clip(np.round(np.where(valid, d, 0) * scale), 1, 65535), 0).astype(np.uint16)


def write_depth_png(path: str | os.PathLike, depth: np.ndarray, scale: float = 1000.0) -> None:
    """Write depth (metres) as a 16-bit PNG, millimetres by default, atomically (see ``depth_to_png16``)."""
    write_bytes(path, depth_to_png16(depth, scale))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as float32 ``.npy`` (depth in metres), atomically."""
    write_bytes(path, npy_bytes(array))
