"""MPI Sintel (Butler et al., ECCV 2012): rendered film clips with exact depth and cameras; the training sequences
are a zero-shot depth benchmark (MoGe, DepthCrafter, Video Depth Anything) and a video one.

Layout (``MPI-Sintel-complete`` and ``MPI-Sintel-depth-training-20150305`` extracted into one folder; ROOT may be
that folder or its ``training/``)::

    ROOT/training/final/<sequence>/frame_0001.png         the final render pass (option ``render_pass``: clean)
    ROOT/training/depth/<sequence>/frame_0001.dpt          depth
    ROOT/training/camdata_left/<sequence>/frame_0001.cam   camera (optional)

File formats, as the Sintel depth SDK (``sdk/python/sintel_io.py``) defines them, little-endian:

- ``.dpt``: float32 tag 202021.25 ("PIEH"), int32 width, int32 height, then height x width float32 depths.
- ``.cam``: float32 tag 202021.25, then the 3x3 intrinsics M and the 3x4 world-to-camera extrinsics N as float64,
  row-major (a pixel is x = M·N·X). ``pose`` here is the inverse, camera-to-world, 4x4.

The tag is checked (a wrong one is one line naming the file) and the file size must match the header before any
depth is read. Depth at or beyond ``MAX_PLAUSIBLE_DEPTH`` is background rendered at "infinity", not a surface:
it is invalid here. Frames are sorted by sequence and frame number; ``sequences()`` gives each clip's indices.

Protocol ``sintel``: the full frame, 1e-3 < gt < 70 m, as the video-depth benchmarks of DepthCrafter and Video
Depth Anything (``benchmark/eval/eval.py``: ``max_depth_eval = 70`` for sintel). MoGe evaluates Sintel without a
range; use its processed copy with the ``moge`` reader for that.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import file_error, open_regular, read_float32_raw, read_image
from .sample import MAX_PLAUSIBLE_DEPTH, check_same_size, make_sample

TAG = 202021.25
CAM_BYTES = 4 + 9 * 8 + 12 * 8
PASSES = ("final", "clean")


def _read_head(path: str | os.PathLike, n: int) -> tuple[bytes, int]:
    """The first ``n`` bytes of ``path`` and its size, without reading the rest."""
    try:
        with open_regular(path) as f:
            return f.read(n), os.fstat(f.fileno()).st_size
    except OSError as e:
        raise file_error(f"{path}: cannot read ({e.strerror or e})", "unreadable") from None


def _check_tag(path, head: bytes, what: str) -> None:
    if len(head) < 4 or struct.unpack("<f", head[:4])[0] != TAG:
        got = f"{struct.unpack('<f', head[:4])[0]!r}" if len(head) >= 4 else "a file under 4 bytes"
        raise file_error(f"{path}: not a Sintel {what} file (tag {got}, expected {TAG})", "unreadable")


def read_dpt(path: str | os.PathLike) -> np.ndarray:
    """A Sintel ``.dpt`` depth file -> float32 (H,W) as stored (see the module docstring)."""
    head, size = _read_head(path, 12)
    _check_tag(path, head, ".dpt depth")
    if len(head) < 12:
        raise file_error(f"{path}: truncated .dpt header ({size} bytes)", "unreadable")
    w, h = struct.unpack("<ii", head[4:12])
    if w <= 0 or h <= 0:
        raise file_error(f"{path}: .dpt header gives size {w}x{h}", "unreadable")
    return read_float32_raw(path, h, w, offset=12)


def read_cam(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A Sintel ``.cam`` file -> (intrinsics 3x3, camera-to-world 4x4), float64."""
    head, size = _read_head(path, CAM_BYTES + 1)
    _check_tag(path, head, ".cam camera")
    if size != CAM_BYTES:
        raise file_error(f"{path}: {size} bytes, a Sintel .cam file has {CAM_BYTES}", "wrong size")
    values = np.frombuffer(head[4:CAM_BYTES], dtype="<f8")
    k, world_to_cam = values[:9].reshape(3, 3), np.eye(4)
    world_to_cam[:3] = values[9:].reshape(3, 4)
    try:
        return k.copy(), np.linalg.inv(world_to_cam)
    except np.linalg.LinAlgError:
        raise file_error(f"{path}: the extrinsic matrix is singular", "unreadable") from None


def _base(path: Path) -> Path | None:
    for base in (path / "training", path):
        if (base / "depth").is_dir() and any((base / p).is_dir() for p in PASSES):
            return base
    return None


def _detect(path: Path) -> bool:
    base = _base(path) if path.is_dir() else None
    return base is not None and next(iter((base / "depth").glob("*/*.dpt")), None) is not None


@register("sintel", detect=_detect, protocols={"sintel": ("none", 1e-3, 70.0)},
          benchmark={"folder": "sintel", "split": "test"})
class Sintel(Dataset):
    """MPI Sintel training clips with depth (see the module docstring). Options: ``root``; ``render_pass``
    final|clean; ``split``: ``test`` (or ``train``: the same frames, the only ones with depth)."""

    protocol = "sintel"

    def __init__(self, split: str = "test", root: str | None = None, render_pass: str = "final"):
        if root is None:
            raise DepthforgeError("sintel: the option 'root' is required")
        if split not in ("test", "train"):
            raise DepthforgeError(f"sintel: unknown split {split!r}; known: test, train (the same frames)")
        if render_pass not in PASSES:
            raise DepthforgeError(f"sintel: unknown render_pass {render_pass!r}; known: {', '.join(PASSES)}")
        base = _base(Path(root))
        if base is None:
            raise DepthforgeError(f"{root}: not a Sintel folder (expected training/depth/ and training/final/)")
        self.base, self.render_pass = base, render_pass
        self.frames = sorted((d.parent.name, d.stem) for d in (base / "depth").glob("*/*.dpt"))
        if not self.frames:
            raise DepthforgeError(f"{base / 'depth'}: no .dpt depth files")

    def __len__(self) -> int:
        return len(self.frames)

    def sequences(self) -> dict[str, list[int]]:
        """Clip name -> its sample indices in frame order."""
        out: dict[str, list[int]] = {}
        for i, (seq, _) in enumerate(self.frames):
            out.setdefault(seq, []).append(i)
        return out

    def __getitem__(self, i: int) -> dict:
        seq, frame = self.frames[i]
        dpt = self.base / "depth" / seq / f"{frame}.dpt"
        depth = read_dpt(dpt)
        depth = np.where(depth < MAX_PLAUSIBLE_DEPTH, depth, 0).astype(np.float32)
        image = read_image(self.base / self.render_pass / seq / f"{frame}.png")
        check_same_size(dpt, image, depth)
        cam = self.base / "camdata_left" / seq / f"{frame}.cam"
        k, pose = read_cam(cam) if cam.exists() else (None, None)
        return make_sample(image, depth, f"{seq}_{frame}", k, pose)
