"""Rendering scenes to disk in the folder format and clips in the frames format (``depthforge data synth``), and
the render-rate benchmark."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ...errors import DepthforgeError
from ...files import remove_partial_writes, write_bytes, write_depth_png, write_image
from ..poses import pose_line
from .scenes import check_size, render_scene, scene_rng, synth_intrinsics
from .video import FRAMES, Clip, check_clip

MAX_SCENES = 100_000  # file names hold 5 digits, so that they sort in scene order


def write_dataset(out, n: int, size=(240, 320), split: str = "train", holes: bool = False,
                  progress: bool = True) -> Path:
    """Render scenes 0..n-1 of ``split`` to ``out`` in the folder format (``folder`` dataset) and return ``out``:
    ``rgb/NNNNN.png`` (8-bit RGB), ``depth/NNNNN.png`` (16-bit millimetres, 0 = invalid), ``intrinsics.txt``.
    Temp files that a killed earlier run left in these folders are removed first."""
    out = Path(out)
    size = check_size(size)
    scene_rng(0, split)
    if not 1 <= int(n) <= MAX_SCENES:
        raise DepthforgeError(f"synth: number of scenes must be 1..{MAX_SCENES}, got {n}")
    remove_partial_writes(out, ["intrinsics.txt"])  # the user's folder: only our own file's temps
    for folder in (out / "rgb", out / "depth"):
        remove_partial_writes(folder)
    _write_intrinsics(out, size)
    for i in tqdm(range(int(n)), desc=f"rendering {split} scenes", unit="scene", disable=not progress):
        s = render_scene(i, split, size, holes)
        write_image(out / "rgb" / f"{i:05d}.png", s["image"])
        write_depth_png(out / "depth" / f"{i:05d}.png", s["depth"])
    return out


def write_clip(out, clip: int = 0, split: str = "test", size=(240, 320), frames: int = FRAMES,
               path: str | None = None, on_frame=None, progress: bool = True) -> Path:
    """Render clip ``clip`` of the video suite (``video.Clip``: its room and camera path, or ``path``) to ``out`` in
    the ``frames`` format and return ``out``: ``rgb_NNNN.png`` (8-bit RGB), ``depth_NNNN.png`` (16-bit millimetres),
    ``pose.txt`` (camera-to-world, ``tx ty tz qx qy qz qw`` a frame), ``intrinsics.txt``. No moving ball: a frames
    folder cannot mark its pixels, which TAE must leave out. ``on_frame``: also called with each frame as uint8
    (H,W,3), e.g. a video writer's ``write``."""
    out = Path(out)
    size = check_clip(split, size, frames, path)
    remove_partial_writes(out)
    scene = Clip(int(clip), split, size, int(frames), path, moving=False)
    _write_intrinsics(out, size)
    poses = []
    for t in tqdm(range(int(frames)), desc=f"rendering clip {clip} ({scene.path})", unit="frame",
                  disable=not progress):
        f = scene.frame(t)
        rgb = np.round(np.clip(f["image"], 0, 1) * 255).astype(np.uint8)  # as SynthVideo quantises
        write_image(out / f"rgb_{t + 1:04d}.png", rgb)
        write_depth_png(out / f"depth_{t + 1:04d}.png", f["depth"])
        poses.append(pose_line(f["pose"]))
        if on_frame is not None:
            on_frame(rgb)
    write_bytes(out / "pose.txt", ("\n".join(poses) + "\n").encode())
    return out


def _write_intrinsics(out: Path, size: tuple[int, int]) -> None:
    """``intrinsics.txt`` as the folder and frames readers take it: ``fx fy cx cy`` in pixels."""
    k = synth_intrinsics(size)
    write_bytes(out / "intrinsics.txt", f"{k[0, 0]:.6f} {k[1, 1]:.6f} {k[0, 2]:.6f} {k[1, 2]:.6f}\n".encode())


def render_rate(size=(240, 320), n: int = 20) -> float:
    """Scenes rendered per second at ``size`` in this process (after one warm-up scene)."""
    render_scene(0, "test", size)
    start = time.perf_counter()
    for i in range(n):
        render_scene(i + 1, "test", size)
    return n / (time.perf_counter() - start)
