"""Depth for videos and webcams: each frame beside its colour-mapped depth, written as an mp4 (OpenCV)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..viz.colors import colorize, depth_range
from ..data.io import check_pixels, check_regular
from ..files import atomic_path
from ..errors import DepthforgeError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
CAMERA_FPS = 30.0  # what a webcam reports when it reports nothing


def is_video_source(arg: str) -> bool:
    """True for a camera index ("0", "1", ...) or a path with a video suffix (.mp4, .avi, .mov, ...)."""
    arg = str(arg)
    return arg.isdigit() or Path(arg).suffix.lower() in VIDEO_SUFFIXES


def _open(source: int | str | os.PathLike):
    """An opened capture and its name; its frame size (from the stream's header, no frame decoded yet) is
    checked against the pixel limit every reader shares."""
    import cv2

    if isinstance(source, str) and source.isdigit():
        source = int(source)
    if isinstance(source, int):
        cap, name = cv2.VideoCapture(source), f"camera {source}"
        if not cap.isOpened():
            raise DepthforgeError(f"{name}: cannot be opened (no such camera, or it is in use)")
    else:
        check_regular(source)  # OpenCV opens by name: a named pipe would block it forever
        cap, name = cv2.VideoCapture(str(source)), str(Path(source))
        if not cap.isOpened():
            raise DepthforgeError(f"{name}: cannot be opened as a video (unknown format or damaged)")
    try:
        check_pixels(name, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    except DepthforgeError:
        cap.release()
        raise
    return cap, name


def _frames(cap, max_frames: int | None):
    n = 0
    while max_frames is None or n < max_frames:
        ok, bgr = cap.read()
        if not ok:
            return
        n += 1
        yield bgr


def _batches(frames, batch_size: int):
    """Consecutive frames of one size, up to ``batch_size`` at a time."""
    batch: list[np.ndarray] = []
    for frame in frames:
        if batch and (len(batch) == batch_size or frame.shape != batch[0].shape):
            yield batch
            batch = []
        batch.append(frame)
    if batch:
        yield batch


def predict_video(predictor, source: int | str | os.PathLike, out: str | os.PathLike,
                  max_frames: int | None = None, progress: bool = True, batch_size: int = 4) -> dict[str, Any]:
    """Run ``predictor`` on every frame of a video file or camera (index) and write ``out``: the frame on the
    left, its colour-mapped depth on the right (near = bright), mp4v, at the source's frame rate.

    The colour range is fixed from the first frames so that a colour means the same depth throughout. The file
    is written atomically; a camera runs until ``max_frames`` or Ctrl-C, which keeps what was captured.
    Returns {"path", "frames", "fps" (frames processed per second), "video_fps", "seconds", "size" [H, W]}.
    """
    import cv2

    cap, name = _open(source)
    camera = name.startswith("camera")
    total = 0 if camera else max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    video_fps = cap.get(cv2.CAP_PROP_FPS)
    video_fps = video_fps if 0 < video_fps < 1000 else CAMERA_FPS
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total or None, unit="frame", desc=f"depth {Path(name).name}", leave=False)
    out = Path(out)
    frames, vrange, writer, size = 0, None, None, None
    start = time.perf_counter()
    try:
        with atomic_path(out) as tmp:
            try:
                for batch in _batches(_frames(cap, max_frames), batch_size):
                    depths = predictor([f[..., ::-1] for f in batch])
                    if vrange is None:
                        vrange = depth_range(np.stack(depths))
                    for frame, depth in zip(batch, depths):
                        panel = colorize(depth, *vrange)[..., ::-1]
                        if writer is None:
                            size = frame.shape[:2]
                            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), video_fps,
                                                     (2 * size[1], size[0]))
                            if not writer.isOpened():
                                raise DepthforgeError(f"{out}: cannot write an mp4v video there (use a .mp4 name)")
                        if frame.shape[:2] != size:  # a stream that changes size: fit the writer's frame
                            frame = cv2.resize(frame, size[::-1], interpolation=cv2.INTER_AREA)
                            panel = cv2.resize(panel, size[::-1], interpolation=cv2.INTER_NEAREST)
                        writer.write(np.ascontiguousarray(np.concatenate([frame, panel], axis=1)))
                        frames += 1
                        if bar is not None:
                            bar.update(1)
            except KeyboardInterrupt:
                if not (camera and frames):
                    raise
                log.warning("%s: interrupted; keeping the %d frames captured", name, frames)
            finally:
                if writer is not None:
                    writer.release()
            if frames == 0:
                raise DepthforgeError(f"{name}: no frame could be read")
    finally:
        cap.release()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    result = {"path": str(out), "frames": frames, "fps": frames / max(seconds, 1e-9), "video_fps": video_fps,
              "seconds": seconds, "size": list(size)}
    log.debug("%s: %d frames at %.1f frames/s -> %s", name, frames, result["fps"], out)
    return result
