"""Video on the page: a clip's limits checked before any frame is predicted, its depth video made by
``inference.video.predict_video`` (with progress: H.264, which every browser plays, stabilised over time)."""
from __future__ import annotations

import math
import os
from typing import Any

from ..errors import DepthforgeError


def probe(path: str | os.PathLike, name: str, limits: dict[str, float]) -> int:
    """The number of frames to predict for the clip at ``path`` (called ``name`` in messages), checked against
    ``limits`` ({"seconds", "frames"}); DepthforgeError (kind "too large" when too long) for a clip that cannot
    be opened or is too long. A clip whose header gives no frame count is cut at the limits instead."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DepthforgeError(f"{name}: not a video that can be read (unknown format or damaged)")
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = cap.get(cv2.CAP_PROP_FPS)
        ok, _ = cap.read()
        if not ok:
            raise DepthforgeError(f"{name}: no frame could be read (damaged or not a video)")
    finally:
        cap.release()
    fps = fps if 0 < fps < 1000 else 30.0
    cut = int(min(limits["frames"], math.floor(limits["seconds"] * fps)))
    if frames > 0:
        seconds = frames / fps
        if seconds > limits["seconds"] or frames > limits["frames"]:
            e = DepthforgeError(f"{name}: the clip is {seconds:.1f} s and {frames} frames long; the limits are "
                                f"{limits['seconds']:g} s and {limits['frames']:g} frames")
            e.kind = "too large"
            raise e
        return frames
    return max(cut, 1)


class Counted:
    """A predictor that counts the frames it was given (``progress["frames"]``), for the page's progress."""

    def __init__(self, predictor, progress: dict[str, Any]):
        self.predictor, self.progress = predictor, progress

    def __call__(self, images, *args, **kwargs):
        out = self.predictor(images, *args, **kwargs)
        self.progress["frames"] += len(images) if isinstance(images, (list, tuple)) else 1
        return out

    def __getattr__(self, name):  # everything else is the predictor's
        return getattr(self.predictor, name)
