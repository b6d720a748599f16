"""Reading images and depth maps at the file boundary, where units are converted once.

Inside the program an image is float32 RGB in [0,1] (H,W,3) and depth is float32 metres (H,W), 0 = invalid.
Every reader raises DepthforgeError with one line naming the file. Writing lives in ``depthforge.files``.
"""
from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DepthforgeError

# OpenCV reads this once, at its first EXR decode; it must be set before then.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

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


def check_encoding(name: str, where: str) -> None:
    """Raise a one-line DepthforgeError unless ``name`` is one of DEPTH_ENCODINGS; ``where`` names the option
    (e.g. "kitti option 'depth_encoding'") or the file."""
    if name not in DEPTH_ENCODINGS:
        raise DepthforgeError(f"{where}: unknown depth encoding {name!r}; known: {', '.join(DEPTH_ENCODINGS)}")


Source = "str | os.PathLike | bytes"


def _open_bytes(path: str | os.PathLike, data: bytes | None) -> io.BytesIO | str:
    return io.BytesIO(data) if data is not None else str(path)


def file_error(message: str, kind: str) -> DepthforgeError:
    """A DepthforgeError for a sample's file, with ``kind`` ('missing' | 'unreadable' | 'wrong size') set, so that
    ``data check`` can sort problems without reading the message (which holds the path)."""
    e = DepthforgeError(message)
    e.kind = kind
    return e


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
        raise file_error(f"{path}: file not found", "missing") from None
    except UnidentifiedImageError:
        raise file_error(f"{path}: not an image file", "unreadable") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise file_error(f"{path}: image too large (decompression bomb guard)", "unreadable") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise file_error(f"{path}: unreadable or truncated image ({e})", "unreadable") from None


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

    ``encoding`` is one of DEPTH_ENCODINGS for integer files (PNG, PGM, TIFF); floating-point files (``.npy``,
    ``.exr``, float TIFF) are metres whatever it says.
    """
    check_encoding(encoding, str(path))
    return decode_depth(read_depth_raw(path, data), encoding)


DEPTH_SUFFIXES = {".png", ".npy", ".exr", ".tif", ".tiff", ".pgm"}


def read_depth_raw(path: str | os.PathLike, data: bytes | None = None) -> np.ndarray:
    """The values a depth file stores, (H,W), in its own dtype (uint8/uint16 PNG, float ``.npy``/``.exr``).

    For callers that choose the encoding from the file (e.g. 8-bit vs 16-bit PNG); ``decode_depth`` converts.
    """
    path_s = str(path)
    try:
        if path_s.lower().endswith(".npy"):
            raw = np.load(_open_bytes(path, data), allow_pickle=False)
            raw = np.asarray(raw).squeeze()
            if raw.dtype.kind not in "uif":
                raise ValueError(f"dtype {raw.dtype} is not numeric")
        elif path_s.lower().endswith(".exr"):
            raw = _read_exr(path, data)
        else:
            with Image.open(_open_bytes(path, data)) as im:
                im.load()
                raw = np.asarray(im)
            if raw.ndim == 3:  # some tools save depth as 3 identical channels
                raw = raw[..., 0]
    except FileNotFoundError:
        raise file_error(f"{path}: file not found", "missing") from None
    except UnidentifiedImageError:
        raise file_error(f"{path}: not an image file", "unreadable") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise file_error(f"{path}: unreadable or truncated depth map ({e})", "unreadable") from None
    if raw.ndim != 2:
        raise file_error(f"{path}: depth must be 2-D, got shape {raw.shape}", "unreadable")
    return raw


def decode_depth(raw: np.ndarray, encoding: str = "mm") -> np.ndarray:
    """Stored depth values -> float32 metres, 0 where invalid; floating-point values are already metres."""
    depth = raw.astype(np.float32) if raw.dtype.kind == "f" else DEPTH_ENCODINGS[encoding](raw)
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)


def _read_exr(path: str | os.PathLike, data: bytes | None) -> np.ndarray:
    import cv2  # OPENCV_IO_ENABLE_OPENEXR is set at the top of this module, before OpenCV's first EXR use

    buf = data if data is not None else Path(path).read_bytes()
    try:
        raw = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise ValueError(str(e).strip().splitlines()[-1]) from None
    if raw is None:
        if re.search(r"OpenEXR:\s+NO", cv2.getBuildInformation()):
            raise ValueError("this OpenCV build cannot read OpenEXR; save depth as .npy or 16-bit PNG")
        raise ValueError("OpenCV could not decode it")
    return raw[..., 0] if raw.ndim == 3 else raw


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


class ZipReader:
    """Reads members of a zip archive by name, without extracting it (e.g. DenseDepth's nyu_data.zip)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as e:
            raise file_error(f"{path}: not a readable zip archive ({e})", "unreadable") from None

    def read(self, member: str) -> bytes:
        try:
            return self._zip.read(member)
        except KeyError:
            raise file_error(f"{self.path}!{member}: file not found in archive", "missing") from None
        except (OSError, zipfile.BadZipFile, zlib.error) as e:  # a damaged member
            raise file_error(f"{self.path}!{member}: unreadable ({e})", "unreadable") from None


# File lists (``rgb depth [focal]`` per line), as BTS/AdaBins and people's own datasets use them.

def parse_list(text: str, where: str) -> list[tuple[str, str | None, float | None]]:
    """``rgb depth [focal]`` or ``rgb,depth[,focal]`` lines -> (rgb, depth or None, focal or None).

    Blank lines and ``#`` comments are skipped, and a first row whose first field has no file suffix (a header).
    """
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")] if "," in line else line.split()
        if not items and "." not in fields[0].rsplit("/", 1)[-1]:
            continue  # a header row
        if not 2 <= len(fields) <= 3:
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise DepthforgeError(f"{where}: line {n}: expected 'rgb depth [focal]', got {shown!r}")
        try:
            focal = float(fields[2]) if len(fields) == 3 and fields[2] else None
        except ValueError:
            raise DepthforgeError(f"{where}: line {n}: focal {fields[2]!r} is not a number") from None
        items.append((fields[0], None if fields[1] in ("None", "none", "") else fields[1], focal))
    return items


def read_list(path: Path) -> list[tuple[str, str | None, float | None]]:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise DepthforgeError(f"{path}: cannot read the list ({e.strerror or e})") from None
    items = parse_list(text, str(path))
    if not items:
        raise DepthforgeError(f"{path}: the list is empty")
    return items


def find_list(lists: Any, split: str, names: list[str], search: list[Path]) -> Path:
    """The list file of ``split``: ``lists`` as a file, a folder, or {split: file}; else the first of ``names``
    found in the folders ``search``."""
    if isinstance(lists, dict):
        if split not in lists:
            raise DepthforgeError(f"lists: no list for split {split!r} (given: {', '.join(lists)})")
        lists = lists[split]
    if lists is not None and Path(lists).is_file():
        return Path(lists)
    folders = [Path(lists)] if lists is not None else search
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    where = folders[0] / names[0] if folders else Path(names[0])
    raise DepthforgeError(f"{where}: list file not found (give the option 'lists')")


def safe_name(rel: str) -> str:
    """A list path -> a sample name usable as a file name: suffix dropped, folders joined with '_'."""
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if parts and "." in parts[-1]:
        parts[-1] = parts[-1].rsplit(".", 1)[0]
    return "_".join(parts)
