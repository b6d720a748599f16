"""Reading and writing images and depth maps at the file boundary, where units are converted once.

Inside the program an image is float32 RGB in [0,1] (H,W,3) and depth is float32 metres (H,W), 0 = invalid.
Every reader raises DepthforgeError with one line naming the file; writers are atomic (temp file + rename).
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DepthforgeError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

# Stored value -> metres; 0 stays 0 (invalid) in every encoding.
DEPTH_ENCODINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mm": lambda v: v.astype(np.float32) / 1000.0,
    "kitti256": lambda v: v.astype(np.float32) / 256.0,
    "tum5000": lambda v: v.astype(np.float32) / 5000.0,
    # SUN RGB-D stores millimetres with the 16 bits rotated right by 3.
    "sunrgbd": lambda v: ((v.astype(np.uint32) >> 3 | v.astype(np.uint32) << 13) & 0xFFFF).astype(np.float32) / 1000.0,
    # DenseDepth's NYU training PNGs: 8 bits, 255 <-> 10 m.
    "nyu8bit": lambda v: v.astype(np.float32) * (10.0 / 255.0),
    "metres": lambda v: v.astype(np.float32),
}

Source = "str | os.PathLike | bytes"


def _open_bytes(path: str | os.PathLike, data: bytes | None) -> io.BytesIO | str:
    return io.BytesIO(data) if data is not None else str(path)


def read_image(path: str | os.PathLike, data: bytes | None = None) -> np.ndarray:
    """Read an image file (or its bytes) -> float32 RGB (H,W,3) in [0,1].

    Grayscale, RGBA (alpha dropped), palette and 16-bit images are converted; ``path`` names the file in errors.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(_open_bytes(path, data)) as im:
                im.load()
                return pil_to_array(im)
    except FileNotFoundError:
        raise DepthforgeError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise DepthforgeError(f"{path}: not an image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DepthforgeError(f"{path}: image too large (decompression bomb guard)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DepthforgeError(f"{path}: unreadable or truncated image ({e})") from None


def pil_to_array(im: Image.Image) -> np.ndarray:
    """PIL image of any mode -> float32 RGB (H,W,3) in [0,1]."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float32)
        a = a / (65535.0 if a.max(initial=0) > 255 or im.mode.startswith("I;16") else 255.0)
        return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.clip(np.asarray(im, dtype=np.float32), 0, 1)
        return np.repeat(a[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def read_depth(path: str | os.PathLike, encoding: str = "mm", data: bytes | None = None) -> np.ndarray:
    """Read a depth map -> float32 metres (H,W); 0 where invalid (stored 0, NaN or inf).

    ``encoding`` is one of DEPTH_ENCODINGS for PNGs; ``.npy`` files are float metres whatever it says.
    """
    path_s = str(path)
    if encoding not in DEPTH_ENCODINGS:
        raise DepthforgeError(f"unknown depth encoding {encoding!r}; known: {', '.join(DEPTH_ENCODINGS)}")
    try:
        if path_s.endswith(".npy"):
            raw = np.load(_open_bytes(path, data), allow_pickle=False)
            depth = np.asarray(raw, dtype=np.float32)
            depth = depth.squeeze()
        else:
            with Image.open(_open_bytes(path, data)) as im:
                im.load()
                raw = np.asarray(im)
            if raw.ndim == 3:  # some tools save depth as 3 identical channels
                raw = raw[..., 0]
            depth = DEPTH_ENCODINGS[encoding](raw)
    except FileNotFoundError:
        raise DepthforgeError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise DepthforgeError(f"{path}: not an image file") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DepthforgeError(f"{path}: unreadable or truncated depth map ({e})") from None
    if depth.ndim != 2:
        raise DepthforgeError(f"{path}: depth must be 2-D, got shape {depth.shape}")
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
    return depth


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    except OSError as e:
        raise DepthforgeError(f"{path.parent}: cannot write there ({e.strerror or e})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write RGB (H,W,3) float in [0,1] or uint8, atomically; the format follows the suffix."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(Path(path).suffix.lower(), "PNG")
    Image.fromarray(a).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    write_bytes(path, buf.getvalue())


def depth_to_png16(depth: np.ndarray, scale: float = 1000.0) -> bytes:
    """Depth in metres (H,W) -> 16-bit PNG bytes (default millimetres); invalid and out-of-range become 0."""
    d = np.asarray(depth, dtype=np.float64) * scale
    d = np.where(np.isfinite(d) & (d > 0) & (d <= 65535), np.round(d), 0).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(d).save(buf, format="PNG")
    return buf.getvalue()


def write_depth_png(path: str | os.PathLike, depth: np.ndarray, scale: float = 1000.0) -> None:
    """Write depth (metres) as a 16-bit PNG, millimetres by default, atomically."""
    write_bytes(path, depth_to_png16(depth, scale))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, dtype=np.float32), allow_pickle=False)
    write_bytes(path, buf.getvalue())


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


class ZipReader:
    """Reads members of a zip archive by name, without extracting it (e.g. DenseDepth's nyu_data.zip)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as e:
            raise DepthforgeError(f"{path}: not a readable zip archive ({e})") from None
        self.names = set(self._zip.namelist())

    def read(self, member: str) -> bytes:
        try:
            return self._zip.read(member)
        except KeyError:
            raise DepthforgeError(f"{self.path}!{member}: file not found in archive") from None
        except (OSError, zipfile.BadZipFile) as e:
            raise DepthforgeError(f"{self.path}!{member}: unreadable ({e})") from None

    def __getstate__(self):  # DataLoader workers reopen the archive
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])
