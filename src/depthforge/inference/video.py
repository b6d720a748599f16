"""Depth for videos and webcams, frame by frame, stabilised over time (``stabilize.Stabilizer``).

Files are decoded with PyAV (FFmpeg in the wheel); cameras are read with OpenCV. What is written, by ``outputs``:
"color" the frame beside its colour-mapped depth, H.264 (yuv420p) ``.mp4`` that browsers and slide tools play;
"depth" a lossless 16-bit depth video (FFV1 grey16 in ``.mkv``, values as the photos' 16-bit PNG: millimetres, or
x256 beyond 65 m); "npy" / "png" one float32 ``.npy`` / 16-bit PNG per frame in a ``_frames`` folder.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..data.io import check_pixels, check_regular
from ..errors import DepthforgeError, error_line
from ..encode import PNG16_SCALES, depth_png_name, depth_to_uint16, png16_encoding
from ..files import atomic_path, write_depth_png, write_npy
from ..viz.colors import colorize, depth_range
from .stabilize import Stabilizer

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
VIDEO_OUTPUTS = ("color", "depth", "npy", "png")
CAMERA_FPS = 30.0  # what a webcam reports when it reports nothing
MAX_FRAMES = 1_000_000  # a header promising more (9 h at 30 frames/s) is refused unless max_frames bounds the run
LOG_EVERY_S = 10.0  # how often the frame rate is logged while a video runs


def is_video_source(arg: str) -> bool:
    """True for a camera index ("0", "1", ...) or a path with a video suffix (.mp4, .avi, .mov, ...)."""
    arg = str(arg)
    return arg.isdigit() or Path(arg).suffix.lower() in VIDEO_SUFFIXES


def _why(e: BaseException) -> str:
    """FFmpeg's words for an error, without the errno and file name PyAV wraps them in."""
    return getattr(e, "strerror", None) or error_line(e, 120)


class _Source:
    """Frames of a file (PyAV) or a camera (OpenCV) as RGB uint8 (H,W,3): ``name``, ``fps``, ``total`` frames
    (0: unknown, a camera), ``size`` (H, W) from the header, and ``frames()``. A source that stops before its
    end after giving frames (a camera unplugged or Ctrl-C while waiting for it, a file damaged mid-way) ends
    ``frames()`` early with ``lost`` saying how, so that what came before is still written."""

    def __init__(self, source: int | str | os.PathLike, max_frames: int | None):
        if isinstance(source, str) and source.isdigit():
            source = int(source)
        self.camera = isinstance(source, int)
        self.lost: str | None = None
        self.interrupted = False
        self._container = self._cap = None
        if self.camera:
            self._open_camera(source)
        else:
            self._open_file(Path(source), max_frames)
        self.total = min(self.total, max_frames) if self.total and max_frames else (self.total or max_frames or 0)
        self.max_frames = max_frames

    def _open_camera(self, index: int) -> None:
        import cv2

        self.name = f"camera {index}"
        self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            self._cap.release()
            raise DepthforgeError(f"{self.name}: cannot be opened (no such camera, or it is in use)")
        w, h = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        try:
            check_pixels(self.name, w, h)
        except DepthforgeError:
            self._cap.release()
            raise
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps, self.total, self.size = (fps if 0 < fps < 1000 else CAMERA_FPS), 0, (h, w)

    def _open_file(self, path: Path, max_frames: int | None) -> None:
        import av

        self.name = str(path)
        check_regular(path)  # FFmpeg opens by name: a named pipe would block it forever
        try:
            self._container = av.open(str(path), metadata_errors="ignore")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise DepthforgeError(f"{self.name}: cannot be opened as a video ({_why(e)})") from None
        try:
            if not self._container.streams.video:
                raise DepthforgeError(f"{self.name}: has no video stream")
            stream = self._stream = self._container.streams.video[0]
            w, h = stream.codec_context.width, stream.codec_context.height
            if w <= 0 or h <= 0:
                raise DepthforgeError(f"{self.name}: the header gives no frame size (damaged video)")
            check_pixels(self.name, w, h)
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            self.fps = fps if 0 < fps < 1000 else CAMERA_FPS
            total = stream.frames or (round(float(stream.duration * stream.time_base) * self.fps)
                                      if stream.duration and stream.time_base else 0)
            if total > MAX_FRAMES and max_frames is None:
                raise DepthforgeError(f"{self.name}: the header says {total} frames, more than {MAX_FRAMES}; "
                                      "use --max-frames to run on the first ones")
            self.total, self.size = max(int(total), 0), (h, w)
        except BaseException:
            self._container.close()
            raise

    def frames(self) -> Iterator[np.ndarray]:
        n, limit = 0, self.max_frames or MAX_FRAMES
        if self.camera:
            while n < limit:
                try:
                    ok, bgr = self._cap.read()
                except KeyboardInterrupt:
                    if not n:
                        raise
                    self.lost, self.interrupted = "interrupted", True
                    return
                if not ok:
                    if n:
                        self.lost = "stopped delivering frames (disconnected?)"
                        return
                    raise DepthforgeError(f"{self.name}: no frame could be read")
                n += 1
                yield bgr[..., ::-1]
            return
        import av

        decoded = self._container.decode(self._stream)
        while n < limit:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except (av.error.FFmpegError, ValueError) as e:
                if n:
                    self.lost = f"cannot be decoded after frame {n} ({_why(e)})"
                    return
                raise DepthforgeError(f"{self.name}: cannot be decoded ({_why(e)})") from None
            check_pixels(self.name, frame.width, frame.height)
            n += 1
            yield frame.to_ndarray(format="rgb24")
        if n == 0:
            raise DepthforgeError(f"{self.name}: no frame could be decoded")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        if self._container is not None:
            self._container.close()


class VideoWriter:
    """Frames (H,W,3) RGB uint8 -> an H.264 ``.mp4`` (yuv420p, which every player decodes), or with
    ``depth_scale`` 16-bit depth (H,W) metres -> a lossless FFV1 grey16 ``.mkv`` of round(metres x scale).
    The frame rate goes into the container; odd sizes are padded by one edge row/column (yuv420p needs even)."""

    def __init__(self, path: str | os.PathLike, fps: float, depth_scale: float | None = None):
        import av

        self.path, self.fps, self.depth_scale = Path(path), float(fps), depth_scale
        self._av, self._stream, self.frames = av, None, 0
        try:
            self._container = av.open(str(path), "w", format="matroska" if depth_scale else "mp4",
                                      options={} if depth_scale else {"movflags": "+faststart"})
        except (av.error.FFmpegError, OSError) as e:
            raise DepthforgeError(f"{path}: cannot write a video there ({_why(e)})") from None

    def _open_stream(self, h: int, w: int) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)  # 29.97 -> 30000/1001, as cameras record it
        if self.depth_scale:
            s = self._container.add_stream("ffv1", rate=rate)
            s.pix_fmt, s.width, s.height = "gray16le", w, h
            self._container.metadata["comment"] = (f"depth: value / {self.depth_scale:g} = metres (model units "
                                                   "for relative outputs); 0 = invalid")
        else:
            s = self._container.add_stream("libx264", rate=rate)
            s.pix_fmt, s.width, s.height = "yuv420p", w + w % 2, h + h % 2
            s.options = {"crf": "18", "preset": "veryfast"}
        self._stream = s

    def write(self, image: np.ndarray) -> None:
        av = self._av
        if self._stream is None:
            self._open_stream(*image.shape[:2])
        if self.depth_scale:
            frame = av.VideoFrame.from_ndarray(depth_to_uint16(image, self.depth_scale), format="gray16le")
        else:
            h, w = image.shape[:2]
            if h % 2 or w % 2:
                image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (a playable file from whatever frames were written)."""
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()


def video_files(out: str | os.PathLike, outputs: tuple[str, ...], encoding: str) -> dict[str, Path]:
    """Where each of ``outputs`` goes for the colour video path ``out`` (``NAME_depth.mp4``): "color" ``out``,
    "depth" ``NAME_depth.mkv`` (``NAME_depth_kitti256.mkv`` in that encoding), "npy"/"png" the folder
    ``NAME_depth_frames`` (frames ``000000.npy``, ``000000.png``, as the photos' files are named)."""
    out = Path(out)
    base = out.with_suffix("")
    return {o: {"color": out, "depth": Path(depth_png_name(str(base), encoding)).with_suffix(".mkv"),
                "npy": Path(f"{base}_frames"), "png": Path(f"{base}_frames")}[o] for o in outputs}


def _batches(frames, batch_size: int):
    """Consecutive frames of one size, up to ``batch_size`` at a time; a full batch goes at once (a camera's
    frame is not held back waiting for the next)."""
    batch: list[np.ndarray] = []
    for frame in frames:
        if batch and frame.shape != batch[0].shape:
            yield batch
            batch = []
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_video(predictor, source: int | str | os.PathLike, out: str | os.PathLike,
                  max_frames: int | None = None, progress: bool = True, batch_size: int = 4,
                  stabilize: bool = True, align: bool | None = None,
                  outputs: tuple[str, ...] = ("color",)) -> dict[str, Any]:
    """Run ``predictor`` on every frame of a video file or camera (index) and write ``outputs`` (see the module)
    beside ``out``, the colour video's path: the frame on the left, its colour-mapped depth on the right (near =
    bright), at the source's frame rate.

    ``stabilize``: depth stabilised over time (``stabilize.Stabilizer``; ``align`` its rescaling, default for
    relative and disparity outputs). The colour range is fixed from the first frames so that a colour means the
    same depth throughout. Videos are written atomically. A camera unplugged, a file that stops decoding, or
    Ctrl-C keeps what was written (playable) and raises a DepthforgeError saying so (Ctrl-C: exit code 130).
    Returns {"path", "files", "frames", "fps" (frames processed per second), "video_fps", "seconds", "size" [H, W],
    "stabilize_ms" (per frame)}.
    """
    outputs = tuple(dict.fromkeys(outputs))
    bad = [o for o in outputs if o not in VIDEO_OUTPUTS]
    if bad or not outputs:
        raise DepthforgeError(f"video outputs must be some of {', '.join(VIDEO_OUTPUTS)}, "
                              f"got {', '.join(bad) or 'none'}")
    src = _Source(source, max_frames)
    encoding = png16_encoding(predictor.max_depth)
    paths = video_files(out, outputs, encoding)
    stab = Stabilizer(predictor.output, align=align) if stabilize else None
    if src.camera:
        batch_size = 1  # one frame in, one out: a batch would hold frames back
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=src.total or None, unit="frame", desc=f"depth {Path(src.name).name}", leave=False)
    frames, vrange, interrupted = 0, None, False
    start = last_log = time.perf_counter()
    try:
        with contextlib.ExitStack() as files:
            tmp = {o: files.enter_context(atomic_path(paths[o])) for o in ("color", "depth") if o in paths}
            writers = {}
            if "color" in tmp:
                writers["color"] = VideoWriter(tmp["color"], src.fps)
            if "depth" in tmp:
                writers["depth"] = VideoWriter(tmp["depth"], src.fps, depth_scale=PNG16_SCALES[encoding])
            frame_dir = paths.get("npy") or paths.get("png")
            log.info("%s: %s frames/s -> %s%s", src.name, f"{src.fps:g}",
                     ", ".join(map(str, dict.fromkeys(paths.values()))), "" if stab else " (not stabilised)")
            try:
                try:
                    for batch in _batches(src.frames(), batch_size):
                        depths = predictor(batch)
                        for rgb, depth in zip(batch, depths):
                            if stab is not None:
                                depth = stab.push(rgb, depth)
                            if vrange is None:  # from the first (stabilised) frame: its scale is the reference
                                vrange = depth_range(depth)
                            _write_frame(writers, frame_dir, outputs, encoding, frames, rgb, depth, vrange, src.size)
                            frames += 1
                            if bar is not None:
                                bar.update(1)
                            now = time.perf_counter()
                            if now - last_log > LOG_EVERY_S:
                                log.info("%s: %d frames, %.1f frames/s", src.name, frames, frames / (now - start))
                                last_log = now
                except KeyboardInterrupt:  # in the model: the frames written so far are kept
                    if not frames:
                        raise
                    interrupted = True
            finally:
                for w in writers.values():
                    w.close()
    finally:
        src.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    result = {"path": str(paths.get("color", next(iter(paths.values())))),
              "files": [str(p) for p in dict.fromkeys(paths.values())],
              "frames": frames, "fps": frames / max(seconds, 1e-9), "video_fps": src.fps, "seconds": seconds,
              "size": list(src.size), "stabilize_ms": stab.ms_per_frame if stab else 0.0}
    log.info("%s: %d frames at %.1f frames/s%s", src.name, frames, result["fps"],
             f", stabilising {result['stabilize_ms']:.1f} ms/frame" if stab else "")
    if src.lost or interrupted:
        e = DepthforgeError(f"{src.name}: {'interrupted' if interrupted else src.lost}; kept the {frames} frames "
                            f"written in {', '.join(result['files'])}")
        e.exit_code = 130 if interrupted or src.interrupted else 1  # Ctrl-C: as the shell reports it
        raise e
    return result


def _write_frame(writers: dict, frame_dir: Path | None, outputs, encoding: str, index: int, rgb: np.ndarray,
                 depth: np.ndarray, vrange, size) -> None:
    import cv2

    if rgb.shape[:2] != tuple(size):  # a stream that changes size: fit the first frame's size
        rgb = cv2.resize(rgb, size[::-1], interpolation=cv2.INTER_AREA)
        depth = cv2.resize(depth, size[::-1], interpolation=cv2.INTER_NEAREST)
    if "color" in writers:
        writers["color"].write(np.concatenate([rgb, colorize(depth, *vrange)], axis=1))
    if "depth" in writers:
        writers["depth"].write(depth)
    if "npy" in outputs:
        write_npy(frame_dir / f"{index:06d}.npy", depth)
    if "png" in outputs:
        write_depth_png(frame_dir / depth_png_name(f"{index:06d}", encoding), depth, PNG16_SCALES[encoding])
