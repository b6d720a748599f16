"""Video on the page: a clip's limits checked before any frame is predicted, its depth video made by
``inference.video.predict_video`` (with progress), and re-encoded as WebM (VP8) so that every browser plays it."""
from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import DepthforgeError
from ..files import atomic_path


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


def to_webm(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Re-encode the video ``src`` as WebM/VP8 at ``dst`` (atomically): OpenCV writes MPEG-4 part 2, which
    browsers do not play."""
    import av

    with av.open(str(src)) as inp, atomic_path(dst) as tmp:
        stream_in = inp.streams.video[0]
        rate = stream_in.average_rate or 25
        with av.open(str(tmp), "w", format="webm") as out:
            stream = out.add_stream("libvpx", rate=rate)
            stream.width, stream.height = stream_in.codec_context.width, stream_in.codec_context.height
            stream.pix_fmt, stream.bit_rate = "yuv420p", 4_000_000
            tick = Fraction(1, 1) / Fraction(rate)
            stream.codec_context.time_base = tick
            for index, frame in enumerate(inp.decode(stream_in)):
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = index, tick  # one tick a frame
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    if not Path(dst).is_file():
        raise DepthforgeError(f"{dst}: the WebM video was not written")
