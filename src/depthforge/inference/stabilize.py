"""Temporal stabilisation of per-frame depth: causal, streaming (one frame in, one frame out), bounded memory.

    stab = Stabilizer(output=predictor.output)
    for rgb in frames:
        depth = stab.push(rgb, predictor(rgb))

Each frame is blended with the previous *stabilised* output carried into it, in four steps:

1. **Where each pixel was** — OpenCV's DIS optical flow from the current frame back to the previous one, once per
   frame, on grey images at a small working size (``work_size``; a larger depth map is stabilised at that size).
2. **How the camera moved** (``motion``; default for metric outputs that are not rescaled): the previous output,
   warped by the flow, gives 3-D points in the previous camera and the flow gives where they are seen now; a
   RANSAC PnP (EPnP, then refined) on a few hundred of them gives the rotation R and translation t, and every
   warped depth is moved with it: ``z_now = (R·X_prev + t)_z``. Without this a warped depth keeps its old value:
   walking towards a wall, the blend lags behind the wall coming closer (measured on the video suite: stabilising
   the ground truth itself raises its TAE from 0.18 to 1.00 without this step, to 0.73 with it). The motion comes
   from the flow and the previous output only, not from the current prediction, so the model's own
   frame-to-frame rescaling is not taken for camera motion (fitting the motion to the current prediction
   instead absorbed most of the flicker: TAE −10 % instead of −25 % on an early DA-V2 metric checkpoint).
   The intrinsics are not known here: the focal length is assumed to be ``focal`` × the longer side (0.81: the
   NYU/Kinect camera's, a 64° horizontal field of view), the principal point the image centre; a wrong focal
   bends the estimated motion a little (measured with 0.6 and 1.1 on the suite, whose camera is NYU's: TAE
   −52 % and −54 % against −54 %).
3. **Scale alignment** (relative and disparity outputs; metric ones only with ``align=True``): a per-frame model
   rescales the scene from frame to frame; each frame is brought to the moved reference — a robust median of
   ratios (scale only) for relative depth, a trimmed least-squares scale and shift for disparity, the same split
   evaluation uses (``evaluation.metrics``: "median" for relative, "lstsq-disparity" for disparity). Only
   trusted pixels take part; the fit is done on block-averaged maps, where the per-pixel noise is small, because
   a least-squares slope fitted against a noisy regressor shrinks toward zero (regression dilution).
4. **Trust-gated blend**: ``out = w·moved_previous + (1-w)·aligned_current`` with ``w = strength·trust``. The
   trust falls toward 0 where the photometric error after warping is high (the flow is wrong, or the pixel was
   hidden in the previous frame), outside the previous frame, where the previous output was invalid, and where
   the moved depth disagrees with the new one by more than ``depth_tolerance`` (something moved in depth): there
   the new prediction is taken as it is, so moving edges are not smeared. ``fb_check`` adds a forward-backward
   flow check (a second DIS call): measured on the video suite, it rejects good pixels more than bad ones at
   these sizes and costs double, so it is off by default.

Literature: carrying past depth into the current view and fusing it with the new prediction under
occlusion-aware weights is the usual online approach (e.g. Khan et al. 2023, "Temporally consistent online depth
estimation using point-based fusion", with camera poses given and learned fusion weights); here the carry is by
optical flow plus a pose estimated from it, and the weights are hand-set. Video Depth Anything (Chen et al. 2025)
instead trains a spatio-temporal head over a window of frames with a temporal gradient-matching loss and stitches
windows by scale-shift alignment on overlapping key frames; that needs a trained video model and a window of
frames, so this filter deviates: it is training-free, works on any per-frame model and sees only the past
(causal, one frame of state), which is what a webcam needs. Its scale alignment follows the per-window
scale-shift alignment in spirit, done per frame against the running output.

A depth map larger than the working size is stabilised at that size and the correction (stabilised / raw, a
ratio) is scaled back up onto the full-size prediction, so the cost stays that of the working size and the
full-size map keeps its own detail.

State kept between frames: the previous frame's grey image and the previous output at the working size, and two
constant coordinate grids — a fixed number of arrays whatever the clip's length (``state``).
"""
from __future__ import annotations

import logging
import time

import numpy as np

from ..errors import DepthforgeError

log = logging.getLogger(__name__)

ALIGN_KINDS = ("relative", "disparity", "metric")
FIT_PIXELS = 4096  # pixels of the block-averaged maps used in a fit: enough for a stable median, cheap
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as OpenCV's RGB2GRAY
EDGE_STEP = 0.05  # a bilinear read more than 5 % off the nearest pixel straddles a depth edge
PNP_POINTS = 400  # correspondences given to PnP: RANSAC's cost grows with them; a few hundred pin 6 numbers down
PNP_ERROR = 1.0  # RANSAC inlier threshold, pixels at a 160-pixel side (scaled with the image)


class Stabilizer:
    """Causal temporal stabiliser: ``push(frame, depth) -> depth``, one frame at a time (see the module).

    ``frame``: RGB (H,W,3) uint8 or float in [0,1]; ``depth``: (H,W) the model's output of kind ``output``
    ("metric" | "relative" | "disparity"); 0 or non-finite is invalid and passes through untouched.
    ``align``: rescale each frame to the running reference (default: relative and disparity outputs only;
    a metric output keeps its scale and is only smoothed). ``motion``: move the previous output with the camera
    motion estimated from flow and depth (default: metric outputs that are not aligned: aligned to a moved
    reference, the output's scale takes on the noise of each estimated translation and drifts (measured: per-frame
    scale spread 2.5 % against 0.4 % unmoved on tests/test_stabilize.py's clip), and a disparity's unknown shift makes
    1/disparity a bent depth (measured worse on the video suite)). ``strength`` in [0,1):
    the weight of the carried-over previous output where it is fully trusted. ``work_size``: the longest side the
    flow is computed at. ``focal``: the assumed focal length as a fraction of the longer side.
    """

    def __init__(self, output: str = "relative", align: bool | None = None, strength: float = 0.9,
                 work_size: int = 320, photo_tolerance: float = 20.0, depth_tolerance: float = 0.3,
                 motion: bool | None = None, focal: float = 0.81, fb_check: bool = False,
                 flow_tolerance: float = 1.0):
        if output not in ALIGN_KINDS:
            raise DepthforgeError(f"stabilizer: output must be one of {', '.join(ALIGN_KINDS)}, got {output!r}")
        if not 0 <= strength < 1:
            raise DepthforgeError(f"stabilizer: strength must be in [0, 1), got {strength}")
        if work_size < 16:
            raise DepthforgeError(f"stabilizer: work_size must be at least 16 pixels, got {work_size}")
        if not focal > 0:
            raise DepthforgeError(f"stabilizer: focal must be positive (a fraction of the longer side), got {focal}")
        self.output = output
        self.align = output != "metric" if align is None else bool(align)
        self.motion = not self.align and output == "metric" if motion is None else bool(motion)
        self.strength, self.work_size, self.focal = float(strength), int(work_size), float(focal)
        self.flow_tolerance, self.photo_tolerance = float(flow_tolerance), float(photo_tolerance)
        self.depth_tolerance, self.fb_check = float(depth_tolerance), bool(fb_check)
        self.frames, self.seconds = 0, 0.0  # frames pushed and the time spent on them
        self.moved = 0  # frames whose previous output was moved with an estimated camera motion
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next frame starts a new reference (a cut, a new clip)."""
        self._gray = self._out = None
        self._grid = self._small_grid = None
        self._flow = None

    @property
    def state(self) -> list[np.ndarray]:
        """The arrays kept between frames (for memory checks): a fixed number, whatever was pushed."""
        grids = [*(self._grid or ()), *(self._small_grid or ())]
        return [a for a in (self._gray, self._out, *grids) if a is not None]

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / max(self.frames, 1)

    def push(self, frame: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """The next frame and its depth -> the stabilised depth (H,W) float32, the input's kind and units."""
        start = time.perf_counter()
        depth = np.asarray(depth, np.float32)
        frame = np.asarray(frame)
        if depth.ndim != 2 or frame.shape[:2] != depth.shape:
            raise DepthforgeError(f"stabilizer: frame {frame.shape} and depth {depth.shape} must be (H,W,3) and "
                                  "(H,W) of one size")
        gray = self._small_gray(frame)
        if max(gray.shape) < 12:  # too small for optical flow (OpenCV's DIS): passed through as it is
            return depth.copy()
        # a depth map larger than the working size is stabilised at that size; the correction (a ratio) is scaled
        # back up onto the full-size prediction, which keeps its own detail: the cost no longer grows with the map
        small = _shrunk(depth, gray.shape) if gray.shape != depth.shape else depth
        if self._out is None or self._out.shape != small.shape:  # the first frame, or a new size: a new reference
            self.reset()
            out = small.copy()
        else:
            out = self._step(gray, small)
        self._gray, self._out = gray, out
        if small is not depth:
            out = _grown(out, small, depth)
        self.frames += 1
        self.seconds += time.perf_counter() - start
        return out.copy()

    # ------------------------------------------------------------------------------------------------------------
    def _small_gray(self, frame: np.ndarray) -> np.ndarray:
        """The frame as uint8 grey at the working size: shrunk first, so the conversions run on the small image."""
        import cv2

        h, w = frame.shape[:2]
        k = min(1.0, self.work_size / max(h, w))
        size = (max(8, round(w * k)), max(8, round(h * k)))
        if size != (w, h):
            frame = cv2.resize(frame if frame.dtype == np.uint8 else frame.astype(np.float32, copy=False), size,
                               interpolation=cv2.INTER_AREA)
        if frame.dtype != np.uint8:
            frame = (np.clip(frame.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame

    def _grids(self, h: int, w: int, sh: int, sw: int):
        if self._grid is None or self._grid[0].shape != (h, w):
            self._grid = tuple(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
        if self._small_grid is None or self._small_grid[0].shape != (sh, sw):
            self._small_grid = tuple(np.meshgrid(np.arange(sw, dtype=np.float32), np.arange(sh, dtype=np.float32)))
        return self._grid, self._small_grid

    def _dis(self):
        import cv2

        if self._flow is None:  # the DIS object holds no frames, only its settings and scratch buffers
            self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        return self._flow

    def _step(self, gray: np.ndarray, depth: np.ndarray) -> np.ndarray:
        import cv2

        h, w = depth.shape
        sh, sw = gray.shape
        if self._gray.shape != gray.shape:  # the frame's size changed under an unchanged depth size: start over
            self.reset()
            return depth.copy()
        _, (sx, sy) = self._grids(h, w, sh, sw)
        dis = self._dis()
        back = dis.calc(gray, self._gray, None)  # where each current pixel was in the previous frame
        mx, my = sx + back[..., 0], sy + back[..., 1]
        photo = np.abs(gray.astype(np.float32) - cv2.remap(self._gray, mx, my, cv2.INTER_LINEAR,
                                                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32))
        inside = (mx >= 0) & (mx <= sw - 1) & (my >= 0) & (my <= sh - 1)
        bad = (photo / self.photo_tolerance) ** 2
        if self.fb_check:  # forward-backward: following back then forward must return to the start
            fwd = dis.calc(self._gray, gray, None)
            fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            bad += (np.hypot(back[..., 0] + fwd_at[..., 0], back[..., 1] + fwd_at[..., 1]) / self.flow_tolerance) ** 2
        trust = (np.exp(-bad) * inside).astype(np.float32)

        mapx, mapy = mx, my  # the depth is at the working size (``push``)
        prev = self._out
        prev_ok = np.isfinite(prev) & (prev > 0)
        # bilinear on smooth depth, nearest across an edge: a bilinear read there makes a depth between the two
        # surfaces, one the tolerance below cannot tell from a small change (measured: 10x the smear on a moving
        # object's edge), while nearest alone misplaces a smooth slope by up to half a pixel
        src = np.where(prev_ok, prev, 0).astype(np.float32)
        near = cv2.remap(src, mapx, mapy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        lin = cv2.remap(src, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        warped = np.where(np.abs(lin - near) <= EDGE_STEP * near, lin, near)
        seen = cv2.remap(prev_ok.astype(np.float32), mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0)
        valid = np.isfinite(depth) & (depth > 0)
        trust = np.where(valid & (seen > 0.999), trust, 0).astype(np.float32)
        if self.motion:
            warped = self._moved(warped, trust > 0.5, mapx, mapy)
        cur = np.where(valid, depth, 0).astype(np.float32)
        if self.align:
            cur = self._aligned(cur, warped, trust, valid)
        # a depth change beyond the tolerance is motion the flow missed (or a real change): do not average it away
        rel = np.abs(cur - warped) / np.maximum(np.maximum(warped, cur), 1e-12)
        weight = self.strength * trust * np.exp(-(rel / self.depth_tolerance) ** 2)
        out = weight * warped + (1 - weight) * cur
        return np.where(valid, out, depth).astype(np.float32)

    def _moved(self, warped: np.ndarray, use: np.ndarray, mapx: np.ndarray, mapy: np.ndarray) -> np.ndarray:
        """The warped previous output moved with the camera: R, t by PnP from the previous output's 3-D points
        (at the flow's source positions ``mapx, mapy``) to where the flow says they are now, then
        ``z_now = (R·X_prev + t)_z`` per pixel. Unchanged when too few points or PnP fails (a cut, a blank wall)."""
        import cv2

        disparity = self.output == "disparity"
        z_prev = np.where(warped > 0, 1 / np.maximum(warped, 1e-12), 0) if disparity else warped
        h, w = warped.shape
        f = self.focal * max(h, w)
        idx = np.flatnonzero(use & (z_prev > 0))
        if idx.size < 12:
            return warped
        idx = idx[:: max(1, idx.size // PNP_POINTS)]
        gx, gy = self._grid
        z = z_prev.ravel()[idx].astype(np.float64)
        xp, yp = mapx.ravel()[idx].astype(np.float64), mapy.ravel()[idx].astype(np.float64)
        pts3 = np.stack([(xp - w / 2) / f * z, (yp - h / 2) / f * z, z], 1)
        pts2 = np.stack([gx.ravel()[idx], gy.ravel()[idx]], 1).astype(np.float64)
        k = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], np.float64)
        ok, rvec, tvec, inl = cv2.solvePnPRansac(pts3, pts2, k, None, iterationsCount=50,
                                                 reprojectionError=PNP_ERROR * max(h, w) / 160,
                                                 flags=cv2.SOLVEPNP_EPNP)
        if not ok or inl is None or len(inl) < 12:
            return warped
        ok, rvec, tvec = cv2.solvePnP(pts3[inl[:, 0]], pts2[inl[:, 0]], k, None, rvec, tvec, True,
                                      cv2.SOLVEPNP_ITERATIVE)
        if not (ok and np.isfinite(rvec).all() and np.isfinite(tvec).all()):
            return warped
        r = cv2.Rodrigues(rvec)[0]
        z_now = z_prev * (r[2, 0] * (mapx - w / 2) / f + r[2, 1] * (mapy - h / 2) / f + r[2, 2]) + float(tvec[2, 0])
        keep = (z_prev > 0) & (z_now > 0)
        self.moved += 1
        if disparity:
            return np.where(keep, 1 / np.maximum(z_now, 1e-12), 0).astype(np.float32)
        return np.where(keep, z_now, 0).astype(np.float32)

    def _aligned(self, cur: np.ndarray, ref: np.ndarray, trust: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``cur`` brought to the scale (and shift, for disparity) of the warped reference ``ref``."""
        import cv2

        h, w = cur.shape
        k = max(1, int(np.sqrt(h * w / FIT_PIXELS)))  # block size: about FIT_PIXELS blocks
        size = (max(1, w // k), max(1, h // k))
        use = (trust > 0.5).astype(np.float32)
        # block means over the trusted pixels only: an untrusted pixel must not leak into a block's value
        n = cv2.resize(use, size, interpolation=cv2.INTER_AREA)
        c = cv2.resize(cur * use, size, interpolation=cv2.INTER_AREA)
        r = cv2.resize(ref * use, size, interpolation=cv2.INTER_AREA)
        ok = n > 0.9
        if ok.sum() < 16:  # nothing trustworthy in common (a cut, a fast pan): keep the frame's own scale
            return cur
        c, r = c[ok] / n[ok], r[ok] / n[ok]
        if self.output == "disparity":
            s, t = _trimmed_lstsq(c, r)
        else:
            s, t = float(np.median(r / np.maximum(c, 1e-12))), 0.0
        if not (np.isfinite(s) and np.isfinite(t) and s > 0):
            return cur
        return np.where(valid, cur * s + t, 0).astype(np.float32)


def _shrunk(depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``depth`` averaged down to ``shape`` over its valid pixels only (0 where fewer than half are valid)."""
    import cv2

    ok = (np.isfinite(depth) & (depth > 0)).astype(np.float32)
    size = (shape[1], shape[0])
    num = cv2.resize(np.where(ok > 0, depth, 0).astype(np.float32), size, interpolation=cv2.INTER_AREA)
    den = cv2.resize(ok, size, interpolation=cv2.INTER_AREA)
    return np.where(den > 0.5, num / np.maximum(den, 1e-6), 0).astype(np.float32)


def _grown(out: np.ndarray, small: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The working-size correction ``out / small`` scaled up and applied to the full-size ``depth``."""
    import cv2

    ratio = np.where((small > 0) & (out > 0), out / np.maximum(small, 1e-12), 1).astype(np.float32)
    ratio = cv2.resize(ratio, (depth.shape[1], depth.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.where(np.isfinite(depth) & (depth > 0), depth * ratio, depth).astype(np.float32)


def _trimmed_lstsq(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``y ≈ s·x + t`` by least squares, refitted once without the residuals beyond 3 × their median absolute
    value (moving objects the flow check let through)."""
    a = np.stack([x, np.ones_like(x)], axis=1).astype(np.float64)
    (s, t), *_ = np.linalg.lstsq(a, y, rcond=None)
    res = np.abs(a @ (s, t) - y)
    keep = res <= 3 * np.median(res) + 1e-12
    if keep.sum() >= 8:
        (s, t), *_ = np.linalg.lstsq(a[keep], y[keep], rcond=None)
    return float(s), float(t)


class Stabilized:
    """A predictor whose depth is stabilised over the frames it is given, in order (``Stabilizer``): what video
    evaluation measures against the bare predictor. ``predict_tensor`` takes one frame at a time ([1,3,H,W]);
    ``reset()`` starts a new clip. Everything else (``output``, ``metric``, ``flip``, ...) is the predictor's."""

    def __init__(self, predictor, align: bool | None = None):
        self.predictor = predictor
        self.stabilizer = Stabilizer(predictor.output, align=align)
        self.model_seconds, self.model_frames = 0.0, 0

    @property
    def timing(self) -> dict[str, float]:
        """Milliseconds per frame of the model and of the stabiliser (the stabiliser's share of the video path)."""
        return {"model_ms": 1000 * self.model_seconds / max(self.model_frames, 1),
                "stabilize_ms": self.stabilizer.ms_per_frame}

    def __getattr__(self, name: str):
        return getattr(self.predictor, name)

    def reset(self) -> None:
        self.stabilizer.reset()

    def predict_tensor(self, images):
        import torch

        if images.shape[0] != 1:
            raise DepthforgeError(f"stabilised prediction takes one frame at a time, got a batch of {images.shape[0]}")
        start = time.perf_counter()
        raw = self.predictor.predict_tensor(images)
        self.model_seconds += time.perf_counter() - start
        self.model_frames += 1
        # grey here, from the [3,H,W] planes: an (H,W,3) view of them is strided, and copying it for OpenCV cost
        # more than the rest of the stabiliser on a 480x640 frame (measured; so did the same sum in torch)
        start = time.perf_counter()
        rgb = images[0].float().cpu().numpy()
        frame = GREY_WEIGHTS[0] * rgb[0] + GREY_WEIGHTS[1] * rgb[1] + GREY_WEIGHTS[2] * rgb[2]
        self.stabilizer.seconds += time.perf_counter() - start  # counted as the stabiliser's time
        depth = self.stabilizer.push(frame, raw[0, 0].cpu().numpy())
        return torch.from_numpy(depth)[None, None].to(raw.device)
