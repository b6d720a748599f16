"""Temporal stabilisation of per-frame depth: causal, streaming (one frame in, one frame out), bounded memory.

    stab = Stabilizer(output=predictor.output)
    for rgb in frames:
        depth = stab.push(rgb, predictor(rgb))

Each frame is blended with the previous *stabilised* output carried into it, in four steps:

1. **Where each pixel was** — OpenCV's DIS optical flow from the current frame back to the previous one, once per
   frame, on grey images at a small working size (``work_size``; a larger depth map is stabilised at that size).
1b. **Large steps: reprojection instead of flow** (``reproject``; with the motion step). Where the flow's carry
   gets less than half the weight a fully trusted frame would (step 4's mean weight < ``strength``/2: the frames are
   far apart, as in NYU's five frames, 0.2–0.7 m and 4–25° apart, where DIS fails on much of the frame), the camera
   motion is estimated from sparse features instead: ORB keypoints (Rublee et al. 2011) of both frames, matched by
   Hamming distance under Lowe's ratio test (0.8), lifted to 3-D with the previous output at the previous frame's
   keypoints, RANSAC PnP as in step 2. The previous output is then carried by forward reprojection: each valid
   pixel lifted with its depth, moved, projected and splatted onto the 2×2 pixels around its projection with a
   z-buffer (the front-most wins; what the move hides is dropped; pixels nothing lands on stay untrusted). That
   carry goes through the same trust gates, and is taken for the frame when its mean blend weight is the higher
   (the carry that explains more of the frame). On the video suite (small steps) it is never tried, so the
   suite's results are the flow's; on NYU (DA-V2 metric micro) it is taken on the 25° step, whose pair TAE
   falls 10.2 → 5.5 (7.7 with the flow), but the next pair loses as much (the pose estimated from a prediction
   40 % off in AbsRel is no better than the flow's there), so NYU's mean TAE moves little (−14 % either way).
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
   a least-squares slope fitted against a noisy regressor shrinks toward zero (regression dilution). A frame
   of which less than half is carried with trust (``MIN_OVERLAP``: a cut, or a step where the flow failed)
   keeps its own scale.
4. **Trust-gated blend**: ``out = w·moved_previous + (1-w)·aligned_current`` with ``w = strength·trust``. The
   trust falls toward 0 where the photometric error after warping is high (the flow is wrong, or the pixel was
   hidden in the previous frame), outside the previous frame, where the previous output was invalid, and where
   the moved depth disagrees with the new one by more than ``depth_tolerance`` (something moved in depth): there
   the new prediction is taken as it is, so moving edges are not smeared. (A looser 0.6 lowers the video suite's
   TAE further, −54 → −58 % on DA-V2 metric micro, but smears a moving object's edges and lags behind a real
   50 % scale change, which tests/test_stabilize.py guards, so it stays 0.3.) ``fb_check`` adds a
   forward-backward flow check (a second DIS call): measured on the video suite, it rejects good pixels more than
   bad ones at these sizes and costs double, so it is off by default.

Literature: carrying past depth into the current view and fusing it with the new prediction under
occlusion-aware weights is the usual online approach (e.g. Khan et al. 2023, "Temporally consistent online depth
estimation using point-based fusion": past depth reprojected into the new view with the camera pose and fused);
here the pose is not given but estimated (from the flow, or from sparse feature matches and PnP as in feature-based
visual odometry, for large steps), the intrinsics are assumed, the carry is by optical flow except on large steps
(where it is the reprojection, z-buffered), only the last output is kept (no point cloud), and the fusion weights
are hand-set rather than learned. Video Depth Anything (Chen et al. 2025)
instead trains a spatio-temporal head over a window of frames with a temporal gradient-matching loss and stitches
windows by scale-shift alignment on overlapping key frames; that needs a trained video model and a window of
frames, so this filter deviates: it is training-free, works on any per-frame model and sees only the past
(causal, one frame of state), which is what a webcam needs. Its scale alignment follows the per-window
scale-shift alignment in spirit, done per frame against the running output.

A depth map larger than the working size is stabilised at that size and the correction (stabilised / raw, a
ratio) is scaled back up onto the full-size prediction, so the cost stays that of the working size and the
full-size map keeps its own detail.

State kept between frames: the previous frame's grey image and the previous output at the working size, and two
constant coordinate grids — a fixed number of arrays whatever the clip's length (``state``); step 1b detects the
previous frame's keypoints again from its grey image when it needs them.
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
MIN_POINTS = 12  # fewest PnP correspondences (and inliers) a camera motion is estimated from
FEATURES = 1000  # ORB keypoints a frame (both frames' are detected when step 1b runs; none are kept between frames)
RATIO = 0.8  # Lowe's ratio test: a match is kept when its distance is under 0.8 x the second best's
# RANSAC draws for PnP: the flow's correspondences are mostly right (50 suffice); matches across a large step may be
# a third right, and 4-point draws then need ln(0.01) / ln(1 - 0.33^4) ~ 380 for 99 % odds of one clean draw
FLOW_DRAWS, MATCH_DRAWS = 50, 400
TRY_BELOW = 0.5  # step 1b is tried when the flow's mean blend weight is under this share of ``strength``
# the share of the frame (in blocks) the flow must carry with trust for step 3's fit: measured on NYU's five frames
# with a DA-V2 relative micro, a fit on 14 % of one frame raised the TAE by 28 %; any share from 0.25 to 0.5 gives
# +0.4 % instead (and changes nothing on the video suite, whose frames share 66-89 %)
MIN_OVERLAP = 0.5


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
    flow is computed at. ``focal``: the assumed focal length as a fraction of the longer side. ``reproject``: on
    a large step, try the carry by sparse-feature pose and reprojection (step 1b; default: with ``motion``).
    ``moved`` / ``reprojected`` count the frames whose carry was moved with a camera motion / was the reprojection;
    ``pose`` is the camera motion estimated for the last frame (R, t: a point X in the previous camera is at
    R·X + t in the current one, t in the output's units), None when none was.
    """

    def __init__(self, output: str = "relative", align: bool | None = None, strength: float = 0.9,
                 work_size: int = 320, photo_tolerance: float = 20.0, depth_tolerance: float = 0.3,
                 motion: bool | None = None, focal: float = 0.81, fb_check: bool = False,
                 flow_tolerance: float = 1.0, reproject: bool | None = None):
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
        self.reproject = self.motion if reproject is None else bool(reproject) and self.motion
        self.moved = 0  # frames whose previous output was moved with an estimated camera motion
        self.reprojected = 0  # frames whose carry was the reprojection (step 1b), not the flow
        self.pose = None  # the last frame's camera motion from the previous one (R [3,3], t [3]), when estimated
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
        self.pose = None  # until this frame's motion is estimated
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
        # a new array either way: the state must not be changed by what the caller does with the result
        out = _grown(out, small, depth) if small is not depth else out.copy()
        self.frames += 1
        self.seconds += time.perf_counter() - start
        return out

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
        h, w = depth.shape
        sh, sw = gray.shape
        if self._gray.shape != gray.shape:  # the frame's size changed under an unchanged depth size: start over
            self.reset()
            return depth.copy()
        _, (sx, sy) = self._grids(h, w, sh, sw)
        dis = self._dis()
        back = dis.calc(gray, self._gray, None)  # where each current pixel was in the previous frame
        mx, my = sx + back[..., 0], sy + back[..., 1]
        extra = None
        if self.fb_check:  # forward-backward: following back then forward must return to the start
            import cv2

            fwd = dis.calc(self._gray, gray, None)
            fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            extra = (np.hypot(back[..., 0] + fwd_at[..., 0], back[..., 1] + fwd_at[..., 1]) / self.flow_tolerance) ** 2
        valid = np.isfinite(depth) & (depth > 0)
        cur = np.where(valid, depth, 0).astype(np.float32)
        warped, trust = self._carried(gray, mx, my, valid, extra)
        if self.motion:
            self.pose = self._flow_pose(warped, trust > 0.5, mx, my)
            if self.pose is not None:
                warped = self._move(warped, mx, my, self.pose)
                self.moved += 1
        if self.align:
            cur = self._aligned(cur, warped, trust, valid)
        weight = self._weight(cur, warped, trust)
        # step 1b: where the flow carries less than half of what a fully trusted frame would (a large step), the
        # carry by reprojection is tried too, and taken when it explains more of the frame
        if self.reproject and weight.mean() < TRY_BELOW * self.strength:
            alt = self._reprojection(gray, valid, cur)
            if alt is not None and alt[1].mean() > weight.mean():
                warped, weight, self.pose = alt
                self.reprojected += 1
        out = weight * warped + (1 - weight) * cur
        return np.where(valid, out, depth).astype(np.float32)

    def _carried(self, gray, mapx, mapy, valid, extra=None):
        """The previous output read at (mapx, mapy) (each current pixel's place in the previous frame) and the
        trust in that read: photometric agreement of the two frames there (and ``extra``, a squared error in
        tolerances), 0 outside the previous frame, on its invalid pixels and on the current frame's."""
        import cv2

        sh, sw = gray.shape
        photo = np.abs(gray.astype(np.float32) - cv2.remap(self._gray, mapx, mapy, cv2.INTER_LINEAR,
                                                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32))
        inside = (mapx >= 0) & (mapx <= sw - 1) & (mapy >= 0) & (mapy <= sh - 1)
        bad = (photo / self.photo_tolerance) ** 2
        if extra is not None:
            bad += extra
        trust = (np.exp(-bad) * inside).astype(np.float32)
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
        return warped, np.where(valid & (seen > 0.999), trust, 0).astype(np.float32)

    def _weight(self, cur, warped, trust):
        """The blend weight of the carried depth: strength x trust, less where the depths disagree (step 4)."""
        # a depth change beyond the tolerance is motion the flow missed (or a real change): do not average it away
        rel = np.abs(cur - warped) / np.maximum(np.maximum(warped, cur), 1e-12)
        return self.strength * trust * np.exp(-(rel / self.depth_tolerance) ** 2)

    def _camera(self, h: int, w: int):
        """The assumed pinhole camera at (h, w): focal ``focal`` x the longer side, principal point the centre."""
        f = self.focal * max(h, w)
        return f, np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], np.float64)

    def _pnp(self, pts3: np.ndarray, pts2: np.ndarray, h: int, w: int, draws: int = FLOW_DRAWS):
        """R, t (previous camera -> current) from 3-D points in the previous camera and their pixels now: RANSAC
        EPnP, then refined on its inliers; None when too few points or inliers, or it fails."""
        import cv2

        if len(pts3) < MIN_POINTS:
            return None
        _, k = self._camera(h, w)
        ok, rvec, tvec, inl = cv2.solvePnPRansac(pts3, pts2, k, None, iterationsCount=draws,
                                                 reprojectionError=PNP_ERROR * max(h, w) / 160,
                                                 flags=cv2.SOLVEPNP_EPNP)
        if not ok or inl is None or len(inl) < MIN_POINTS:
            return None
        ok, rvec, tvec = cv2.solvePnP(pts3[inl[:, 0]], pts2[inl[:, 0]], k, None, rvec, tvec, True,
                                      cv2.SOLVEPNP_ITERATIVE)
        if not (ok and np.isfinite(rvec).all() and np.isfinite(tvec).all()):
            return None
        return cv2.Rodrigues(rvec)[0], tvec[:, 0].astype(np.float64)

    def _lifted(self, z: np.ndarray, x: np.ndarray, y: np.ndarray, h: int, w: int) -> np.ndarray:
        """Pixels (x, y) at depth z -> (N,3) points in that camera."""
        f, _ = self._camera(h, w)
        z = z.astype(np.float64)
        return np.stack([(x.astype(np.float64) - w / 2) / f * z, (y.astype(np.float64) - h / 2) / f * z, z], 1)

    def _depth_of(self, out: np.ndarray) -> np.ndarray:
        """The output as depth (1/disparity for a disparity output), 0 where invalid."""
        if self.output == "disparity":
            return np.where(out > 0, 1 / np.maximum(out, 1e-12), 0)
        return out

    def _flow_pose(self, warped: np.ndarray, use: np.ndarray, mapx: np.ndarray, mapy: np.ndarray):
        """The camera motion by PnP from the previous output's 3-D points (at the flow's source positions
        ``mapx, mapy``) to where the flow says they are now; None when too few points or PnP fails."""
        z_prev = self._depth_of(warped)
        h, w = warped.shape
        idx = np.flatnonzero(use & (z_prev > 0))
        if idx.size < MIN_POINTS:
            return None
        idx = idx[:: max(1, idx.size // PNP_POINTS)]
        gx, gy = self._grid
        pts3 = self._lifted(z_prev.ravel()[idx], mapx.ravel()[idx], mapy.ravel()[idx], h, w)
        pts2 = np.stack([gx.ravel()[idx], gy.ravel()[idx]], 1).astype(np.float64)
        return self._pnp(pts3, pts2, h, w)

    def _move(self, warped: np.ndarray, mapx: np.ndarray, mapy: np.ndarray, pose) -> np.ndarray:
        """The carried previous output (read at ``mapx, mapy``) moved with the camera: ``z_now = (R·X_prev + t)_z``
        per pixel (step 2)."""
        r, t = pose
        z_prev = self._depth_of(warped)
        h, w = warped.shape
        f, _ = self._camera(h, w)
        z_now = z_prev * (r[2, 0] * (mapx - w / 2) / f + r[2, 1] * (mapy - h / 2) / f + r[2, 2]) + float(t[2])
        keep = (z_prev > 0) & (z_now > 0)
        if self.output == "disparity":
            return np.where(keep, 1 / np.maximum(z_now, 1e-12), 0).astype(np.float32)
        return np.where(keep, z_now, 0).astype(np.float32)

    def _keypoints(self, gray: np.ndarray):
        """ORB keypoints (N,2) and binary descriptors (N,32) of a grey frame; None when it has none."""
        import cv2

        # edge and patch 15 px instead of ORB's 31: a 126x168 frame keeps most of its corners
        orb = cv2.ORB_create(FEATURES, fastThreshold=10, edgeThreshold=15, patchSize=15)
        keys, desc = orb.detectAndCompute(gray, None)
        if desc is None or len(keys) < MIN_POINTS:
            return None
        return np.float32([k.pt for k in keys]), desc

    def _sparse_pose(self, gray: np.ndarray):
        """The camera motion from sparse feature matches (step 1b): ORB keypoints of the previous and the current
        frame, matched by Hamming distance under Lowe's ratio test, lifted to 3-D with the previous output at the
        previous frame's keypoints, then PnP (``MATCH_DRAWS`` RANSAC draws)."""
        import cv2

        before, now = self._keypoints(self._gray), self._keypoints(gray)
        if before is None or now is None:
            return None
        pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(before[1], now[1], k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
        if len(good) < MIN_POINTS:
            return None
        p0 = before[0][[m.queryIdx for m in good]]
        p1 = now[0][[m.trainIdx for m in good]]
        z_prev = self._depth_of(self._out)
        h, w = z_prev.shape
        z = z_prev[np.clip(np.rint(p0[:, 1]).astype(int), 0, h - 1), np.clip(np.rint(p0[:, 0]).astype(int), 0, w - 1)]
        ok = z > 0
        return self._pnp(self._lifted(z[ok], p0[ok, 0], p0[ok, 1], h, w), p1[ok].astype(np.float64), h, w,
                         MATCH_DRAWS)

    def _reprojection(self, gray: np.ndarray, valid: np.ndarray, cur: np.ndarray):
        """The previous output carried by reprojection (step 1b): moved with the sparse camera motion and splatted
        into the current view; the carried depth, its blend weight and the motion, or None without a motion."""
        pose = self._sparse_pose(gray)
        if pose is None:
            return None
        mapx, mapy = self._splat(self._depth_of(self._out), pose)
        warped, trust = self._carried(gray, mapx, mapy, valid)
        warped = self._move(warped, mapx, mapy, pose)
        return warped, self._weight(cur, warped, trust), pose

    def _splat(self, z_prev: np.ndarray, pose):
        """Where each current pixel was in the previous frame, by forward reprojection: every valid previous pixel
        is lifted with its depth, moved by (R, t) and projected; each lands on the 2x2 pixels around its
        projection (a 1-pixel footprint, so a view that comes closer has no cracks) and the front-most wins (a
        z-buffer: what the move hides is dropped). A pixel's source is the winner's previous position, shifted by
        the pixel's offset from the projection. Pixels nothing lands on get -1 (outside: untrusted)."""
        r, t = pose
        h, w = z_prev.shape
        f, _ = self._camera(h, w)
        sx, sy = self._small_grid
        ok = z_prev > 0
        src_x, src_y = sx[ok], sy[ok]
        pts = self._lifted(z_prev[ok], src_x, src_y, h, w) @ r.T + t
        front = pts[:, 2] > 1e-6
        pts, src_x, src_y = pts[front], src_x[front], src_y[front]
        z = pts[:, 2]
        u, v = f * pts[:, 0] / z + w / 2, f * pts[:, 1] / z + h / 2
        x0, y0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
        off_x, off_y = src_x - u, src_y - v  # the source position minus the projection, per point
        zbuf = np.full(h * w, np.inf)
        corners = []
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            x, y = x0 + dx, y0 + dy
            inside = np.flatnonzero((x >= 0) & (x < w) & (y >= 0) & (y < h))
            pix = y[inside] * w + x[inside]
            np.minimum.at(zbuf, pix, z[inside])
            corners.append((inside, pix))
        mapx, mapy = np.full(h * w, -1, np.float32), np.full(h * w, -1, np.float32)
        for inside, pix in corners:
            win = z[inside] <= zbuf[pix]
            at, pix = inside[win], pix[win]
            mapx[pix] = (pix % w) + off_x[at]
            mapy[pix] = (pix // w) + off_y[at]
        return mapx.reshape(h, w), mapy.reshape(h, w)

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
        # too little trustworthy in common (a cut, a fast pan, a large step where the flow failed on most of the
        # frame): a fit on the rest is not trusted, the frame keeps its own scale
        if ok.sum() < 16 or ok.mean() < MIN_OVERLAP:
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

    size = (shape[1], shape[0])
    ok = np.isfinite(depth) & (depth > 0)
    if ok.all():  # the usual case (a dense prediction): one resize, no masking
        return cv2.resize(np.ascontiguousarray(depth), size, interpolation=cv2.INTER_AREA)
    ok = ok.astype(np.float32)
    num = cv2.resize(np.where(ok > 0, depth, 0).astype(np.float32), size, interpolation=cv2.INTER_AREA)
    den = cv2.resize(ok, size, interpolation=cv2.INTER_AREA)
    return np.where(den > 0.5, num / np.maximum(den, 1e-6), 0).astype(np.float32)


def _grown(out: np.ndarray, small: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The working-size correction ``out / small`` scaled up and applied to the full-size ``depth``."""
    import cv2

    ratio = np.where((small > 0) & (out > 0), out / np.maximum(small, 1e-12), 1).astype(np.float32)
    ratio = cv2.resize(ratio, (depth.shape[1], depth.shape[0]), interpolation=cv2.INTER_LINEAR)
    # the ratio is finite and positive, so an invalid pixel (0, negative or not finite) stays invalid as it is
    return depth * ratio


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
