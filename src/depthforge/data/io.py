"""Reading images and depth maps at the file boundary, where units are converted once.

Inside the program an image is float32 RGB in [0,1] (H,W,3) and depth is float32 metres (H,W), 0 = invalid.
Every reader raises DepthforgeError with one line naming the file. Writing lives in ``depthforge.files``.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import re
import stat
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


# What each encoding is, and the farthest depth (metres) the sensors that store it measure: a depth map read as
# millimetres that reaches 21 m is not from an RGB-D camera but, likely, KITTI's LiDAR stored x256.
ENCODING_TEXT = {"mm": "millimetres (value / 1000)", "kitti256": "KITTI's value / 256",
                 "tum5000": "TUM's value / 5000", "sunrgbd": "SUN RGB-D's bit-rotated millimetres",
                 "nyu8bit": "8 bits, 255 = 10 m", "metres": "metres as stored"}
ENCODING_REACH = {"mm": 12.0, "tum5000": 12.0, "sunrgbd": 12.0, "nyu8bit": 10.0, "kitti256": 120.0}
_SCALES = {"mm": 1000.0, "kitti256": 256.0, "tum5000": 5000.0}  # linear 16-bit encodings


def encoding_doubt(encoding: str, max_m: float) -> str | None:
    """One line when depths up to ``max_m`` metres read with ``encoding`` are farther than its sensors measure
    (``ENCODING_REACH``), naming the linear encodings that would read the same files within their reach."""
    reach = ENCODING_REACH.get(encoding)
    if reach is None or not max_m > reach:
        return None
    line = f"depth read as {ENCODING_TEXT[encoding]} reaches {max_m:.1f} m, farther than such sensors measure " \
           f"(~{reach:g} m)"
    if encoding in _SCALES:
        raw = max_m * _SCALES[encoding]
        other = [f"{e} (up to {raw / s:.1f} m)" for e, s in _SCALES.items()
                 if e != encoding and raw / s <= ENCODING_REACH[e] and raw / s > reach]
        if other:
            line += "; if the files are in another encoding, give it: " + " or ".join(other)
    return line


def check_encoding(name: str, where: str) -> None:
    """Raise a one-line DepthforgeError unless ``name`` is one of DEPTH_ENCODINGS; ``where`` names the option
    (e.g. "kitti option 'depth_encoding'") or the file."""
    if name not in DEPTH_ENCODINGS:
        raise DepthforgeError(f"{where}: unknown depth encoding {name!r}; known: {', '.join(DEPTH_ENCODINGS)}")


Source = "str | os.PathLike | bytes"

# The most pixels any image may have, checked from its header before a byte of pixels is decoded (a PNG of a
# few kB can claim 400 MP). One limit for every reader: predict, serve, eval and the datasets.
MAX_PIXELS = 40_000_000
GRAY_INT_MODES = ("I;16", "I;16B", "I;16L", "I")


def file_error(message: str, kind: str) -> DepthforgeError:
    """A DepthforgeError for a sample's file, with ``kind`` ('missing' | 'unreadable' | 'wrong size' |
    'too large') set, so that ``data check`` and serve can sort problems without reading the message."""
    e = DepthforgeError(message)
    e.kind = kind
    return e


def _not_regular(path: str | os.PathLike, mode: int) -> DepthforgeError:
    what = "a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else "a device or socket"
    return file_error(f"{path}: not a regular file ({what})", "unreadable")


def _os_error(path: str | os.PathLike, e: OSError) -> DepthforgeError:
    if isinstance(e, FileNotFoundError):
        return file_error(f"{path}: file not found", "missing")
    return file_error(f"{path}: cannot read ({e.strerror or e})", "unreadable")


def check_regular(path: str | os.PathLike) -> None:
    """Raise a one-line error unless ``path`` is a regular file (after symlinks): for readers that open by name
    (OpenCV's video capture), which a named pipe would block forever."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:  # missing, a symlink loop, no permission
        raise _os_error(path, e) from None
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode)


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading; never blocks: a named pipe, device or folder is refused in one line."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _os_error(path, e) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    return os.fdopen(fd, "rb")


def _open_bytes(path: str | os.PathLike, data: bytes | None) -> BinaryIO:
    return io.BytesIO(data) if data is not None else open_regular(path)


def check_pixels(path: str | os.PathLike, width: int, height: int, limit: int = MAX_PIXELS) -> None:
    """Raise a one-line 'too large' error when a ``width`` x ``height`` image is beyond ``limit`` pixels."""
    if width * height > limit:
        raise file_error(f"{path}: image is {width}x{height} ({width * height / 1e6:.0f} MP); the limit is "
                         f"{limit / 1e6:g} MP (decompression bomb guard)", "too large")


@contextlib.contextmanager
def open_pil(path: str | os.PathLike, data: bytes | None = None, limit: int = MAX_PIXELS,
             what: str = "image") -> Iterator[Image.Image]:
    """A Pillow image whose header is read and its size checked against ``limit``, nothing decoded yet; every
    Pillow and OS error (in the ``with`` body too) becomes one line naming ``path`` and ``what`` it is."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies, below
            with _open_bytes(path, data) as f, Image.open(f) as im:
                check_pixels(path, *im.size, limit)
                yield im
    except DepthforgeError:  # already one line (a ValueError, which the last clause would wrap again)
        raise
    except UnidentifiedImageError:
        raise file_error(f"{path}: not an image file", "unreadable") from None
    except Image.DecompressionBombError as e:  # Pillow's own guard fires in open(), before the size is known
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(pixels[1]) / 1e6:.0f} MP" if pixels else "too many pixels"
        raise file_error(f"{path}: image is {size}; the limit is {limit / 1e6:g} MP (decompression bomb guard)",
                         "too large") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise file_error(f"{path}: unreadable or truncated {what} ({e})", "unreadable") from None


def read_image(path: str | os.PathLike, data: bytes | None = None, limit: int = MAX_PIXELS,
               work_pixels: int | None = None) -> np.ndarray:
    """Read an image file (or its bytes) -> float32 RGB (H,W,3) in [0,1], turned as its EXIF orientation says
    (as every viewer shows it).

    Grayscale, RGBA (alpha dropped), palette and 16-bit images are converted; ``path`` names the file in errors.
    Beyond ``limit`` pixels (from the header) nothing is decoded; beyond ``work_pixels`` the image is scaled down
    to that many while decoding (JPEG decodes at 1/2, 1/4 or 1/8 scale directly).
    """
    with open_pil(path, data, limit) as im:
        w, h = im.size
        if work_pixels is not None and w * h > work_pixels:
            scale = math.sqrt(work_pixels / (w * h))
            target = (max(1, int(w * scale)), max(1, int(h * scale)))
            im.draft("RGB", target)
            im = _resizable(im)
            im.thumbnail(target, Image.Resampling.BILINEAR)
        else:
            im.load()
        ImageOps.exif_transpose(im, in_place=True)  # no copy of a 40 MP photo
        return pil_to_array(im)


def _resizable(im: Image.Image) -> Image.Image:
    """``im`` in a mode Pillow resizes without losing its values: 16/32-bit grey goes to float "F" scaled as
    ``pil_to_array`` scales it (Pillow's own convert would clip every value above 255 to white)."""
    if im.mode in GRAY_INT_MODES:
        return Image.fromarray(_gray_unit(np.asarray(im), im.mode), "F")
    return im if im.mode in ("RGB", "L", "F") else im.convert("RGB")


def _gray_unit(a: np.ndarray, mode: str) -> np.ndarray:
    """Integer grey values -> float32 in [0,1]: 16-bit files over 65535, 32-bit ones holding 8-bit values over 255."""
    a = a.astype(np.float32)
    return np.clip(a / (65535.0 if a.max(initial=0) > 255 or mode.startswith("I;16") else 255.0), 0, 1)


def pil_to_array(im: Image.Image) -> np.ndarray:
    """PIL image of any mode -> float32 RGB (H,W,3) in [0,1]."""
    if im.mode in GRAY_INT_MODES:
        return np.repeat(_gray_unit(np.asarray(im), im.mode)[..., None], 3, axis=2)
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
    if not path_s.lower().endswith((".npy", ".exr")):
        with open_pil(path, data, what="depth map") as im:
            im.load()
            raw = np.asarray(im)
        if raw.ndim == 3:  # some tools save depth as 3 identical channels
            raw = raw[..., 0]
    else:
        try:
            with _open_bytes(path, data) as f:
                if path_s.lower().endswith(".exr"):
                    raw = _read_exr(f.read())
                else:
                    raw = load_npy(f, path).squeeze()
        except DepthforgeError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise file_error(f"{path}: unreadable or truncated depth map ({e})", "unreadable") from None
    if raw.ndim != 2:
        raise file_error(f"{path}: depth must be 2-D, got shape {raw.shape}", "unreadable")
    return raw


def load_npy(f: BinaryIO, path: str | os.PathLike, limit: int = MAX_PIXELS) -> np.ndarray:
    """A numeric ``.npy`` array from the open file ``f``, its header checked first: beyond ``limit`` pixels (the
    first two axes of more than 1), more than 4 channels, or more values than the file holds, nothing is
    allocated. Errors name ``path``."""
    try:
        version = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_2_0 if version >= (2, 0) else np.lib.format.read_array_header_1_0
        shape, _, dtype = header(f)
    except (ValueError, OSError, EOFError) as e:
        raise file_error(f"{path}: not a .npy file ({e})", "unreadable") from None
    if dtype.kind not in "uifb":
        raise file_error(f"{path}: dtype {dtype} is not numeric", "unreadable")
    dims = [d for d in shape if d != 1]  # as squeezed: (1,H,W) and (H,W,1) are one image too
    if len(dims) >= 2:
        check_pixels(path, dims[1], dims[0], limit)
    if math.prod(dims[2:]) > 4:
        raise file_error(f"{path}: array of shape {shape} is not one image", "unreadable")
    here = f.tell()
    f.seek(0, os.SEEK_END)
    if f.tell() - here < math.prod(shape) * dtype.itemsize:
        raise file_error(f"{path}: truncated .npy ({f.tell() - here} bytes of data, its header says "
                         f"{math.prod(shape) * dtype.itemsize})", "unreadable")
    f.seek(0)
    return np.asarray(np.load(f, allow_pickle=False))


def read_npy(path: str | os.PathLike, limit: int = MAX_PIXELS) -> np.ndarray:
    """A numeric ``.npy`` image-like array (H,W[,C]) from ``path``, size checked before it is read (``load_npy``)."""
    try:
        with open_regular(path) as f:
            return load_npy(f, path, limit)
    except DepthforgeError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise file_error(f"{path}: unreadable .npy ({e})", "unreadable") from None


def read_float32_raw(path: str | os.PathLike, h: int, w: int, offset: int = 0) -> np.ndarray:
    """A headerless little-endian float32 (h,w) raster from ``path`` after ``offset`` bytes (ETH3D depth, the body
    of a Sintel .dpt); the file size must match exactly, checked before a byte is read."""
    check_pixels(path, w, h)
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size != offset + h * w * 4:
                raise file_error(f"{path}: {size} bytes, expected {offset + h * w * 4} for a {w}x{h} float32 "
                                 "depth map", "wrong size")
            f.seek(offset)
            data = f.read()
    except OSError as e:
        raise _os_error(path, e) from None
    return np.frombuffer(data, dtype="<f4").reshape(h, w).astype(np.float32)


def read_h5(path: str | os.PathLike, key: str = "dataset", limit: int = MAX_PIXELS) -> np.ndarray:
    """Array ``key`` of an HDF5 file (Hypersim's frames), its shape checked against ``limit`` pixels before it is
    read. Errors are one line naming the file."""
    import h5py

    check_regular(path)
    try:
        with h5py.File(path, "r") as f:
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise file_error(f"{path}: no array {key!r} in this HDF5 file", "unreadable")
            shape = f[key].shape
            if len(shape) < 2:
                raise file_error(f"{path}: {key!r} has shape {shape}, not an image", "unreadable")
            check_pixels(path, shape[1], shape[0], limit)
            return np.asarray(f[key][()])
    except DepthforgeError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise file_error(f"{path}: not a readable HDF5 file ({e})", "unreadable") from None


def data_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of a text file's lines that hold data: blank lines and ``#`` comments are skipped,
    commas count as spaces. One line naming the file when it cannot be read."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise DepthforgeError(f"{path}: cannot read ({e.strerror or e})") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].replace(",", " ").strip()
        if line:
            out.append((n, line.split()))
    return out


def read_columns(path: Path, min_fields: int = 2) -> list[list[str]]:
    """A whitespace-separated file list (Marigold's ``data_split/*.txt``: paths relative to the data root, one
    sample a line) -> its rows (``data_lines``)."""
    rows = []
    for n, fields in data_lines(path):
        if len(fields) < min_fields:
            raise DepthforgeError(f"{path}: line {n}: expected {min_fields} paths, got {len(fields)}")
        rows.append(fields)
    if not rows:
        raise DepthforgeError(f"{path}: the list is empty")
    return rows


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file from its header, nothing decoded."""
    with open_pil(path) as im:
        return im.size[1], im.size[0]


def decode_depth(raw: np.ndarray, encoding: str = "mm") -> np.ndarray:
    """Stored depth values -> float32 metres, 0 where invalid; floating-point values are already metres."""
    depth = raw.astype(np.float32) if raw.dtype.kind == "f" else DEPTH_ENCODINGS[encoding](raw)
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)


def _read_exr(buf: bytes) -> np.ndarray:
    import cv2  # OPENCV_IO_ENABLE_OPENEXR is set at the top of this module, before OpenCV's first EXR use

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
