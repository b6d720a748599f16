"""The ``video`` suite: short clips of a camera moving through the built-in rooms, every frame with exact depth,
intrinsics and the camera's pose, for video depth metrics (``evaluation/temporal.py``).

A clip is one random room (``scenes.random_scene``) and a camera path drawn from the clip's own seed: ``walk``
(forward, with a little sway), ``pan`` (turning in place) or ``orbit`` (circling a point a little in front of the
nearest surface ahead, always facing it). About every other clip also has a ball that floats across the view; its
pixels are marked ``moving`` (a reprojection with the camera's pose is wrong there).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import DepthforgeError
from ..base import register
from ..sample import make_sample
from .raycast import Camera, Scene, render
from .scenes import SEED_TAG, SPLITS, check_size, random_scene, synth_intrinsics
from .shapes import Sphere
from .textures import random_texture

PATHS = ("walk", "pan", "orbit")
VIDEO_TAG = 4  # part of the seed; suites.py's tags are 1-3: never reuse a number
FRAMES = 8
MAX_FRAMES = 240


def _yaw(angle: float) -> np.ndarray:
    """Rotation (3,3) by ``angle`` radians about the world's vertical axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def clip_rng(clip: int, split: str = "test") -> np.random.Generator:
    """The generator of clip ``clip`` of ``split``: its own seed, the same on every machine."""
    if split not in SPLITS:
        raise DepthforgeError(f"synth-video: unknown split {split!r} (known: {', '.join(SPLITS)})")
    return np.random.default_rng(np.random.SeedSequence([SEED_TAG, SPLITS[split], int(clip), VIDEO_TAG]))


class Clip:
    """One clip: a room, a camera path and maybe a moving ball; ``frame(t)`` renders frame t."""

    def __init__(self, clip: int, split: str, size: tuple[int, int], frames: int, path: str | None = None,
                 moving: bool | None = None):
        rng = clip_rng(clip, split)
        k = synth_intrinsics(size)
        self.scene = random_scene(rng, k, size)
        self.path = path or str(rng.choice(PATHS))
        self.frames = frames
        cam = self.scene.camera
        self.r0, self.p0 = np.asarray(cam.rotation, np.float64), np.asarray(cam.position, np.float64)
        first = render(self.scene)["depth"]
        h, w = size
        ahead = float(np.percentile(first[h // 4:3 * h // 4, w // 4:3 * w // 4], 5))  # the nearest thing ahead
        fwd = self.r0[:, 2] * np.array([1.0, 0.0, 1.0])
        self.fwd = fwd / max(np.linalg.norm(fwd), 1e-9)
        span = max(frames - 1, 1)
        if self.path == "walk":  # never further than 40 % of the way to what is ahead
            self.step = min(0.08, 0.4 * ahead / span) * rng.uniform(0.6, 1.0)
            self.sway = rng.uniform(-0.01, 0.01)
        elif self.path == "pan":
            self.step = math.radians(rng.uniform(1.0, 2.5)) * rng.choice([-1, 1])
        elif self.path == "orbit":
            self.pivot = self.p0 + self.r0[:, 2] * max(0.6 * ahead, 0.5)
            self.step = math.radians(rng.uniform(1.5, 3.0)) * rng.choice([-1, 1])
        else:
            raise DepthforgeError(f"synth-video: unknown camera path {self.path!r} (known: {', '.join(PATHS)})")
        self.ball = None
        if moving if moving is not None else rng.random() < 0.5:
            right = self.r0[:, 0]
            centre = self.p0 + self.r0[:, 2] * min(0.5 * ahead, 2.0) - right * 0.25
            radius = float(min(0.15, 0.2 * min(0.5 * ahead, 2.0)))
            self.ball = (Sphere(tuple(centre), radius, random_texture(rng, "any", ("checker", "stripes"))),
                         right * rng.uniform(0.02, 0.05))  # its velocity, metres per frame

    def pose(self, t: int) -> np.ndarray:
        """Camera-to-world (4,4) of frame ``t``."""
        r, p = self.r0, self.p0
        if self.path == "walk":
            p = self.p0 + self.fwd * self.step * t + self.r0[:, 0] * self.sway * math.sin(t)
        elif self.path == "pan":
            r = _yaw(self.step * t) @ self.r0
        else:
            turn = _yaw(self.step * t)
            p = self.pivot + turn @ (self.p0 - self.pivot)
            r = turn @ self.r0
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = r, p
        return out

    def frame(self, t: int) -> dict:
        """{"image", "depth", "intrinsics", "pose", "moving"} of frame ``t`` (``raycast.render``'s arrays)."""
        pose = self.pose(t)
        cam = self.scene.camera
        camera = Camera(tuple(pose[:3, 3]), pose[:3, :3], cam.k, cam.size)
        shapes, objects = list(self.scene.shapes), list(self.scene.objects)
        if self.ball is not None:
            ball, velocity = self.ball
            shapes.append(replace(ball, center=tuple(np.asarray(ball.center) + velocity * t)))
            objects.append(max(objects, default=0) + 1)
        out = render(Scene(camera, shapes, self.scene.lights, self.scene.ambient, objects))
        moving = out["shape"] == len(self.scene.shapes) if self.ball is not None else np.zeros(cam.size, bool)
        return {"image": out["image"], "depth": out["depth"], "intrinsics": np.asarray(cam.k, np.float32),
                "pose": pose.astype(np.float32), "moving": moving}


def check_clip(split: str, size, frames: int, path: str | None) -> tuple[int, int]:
    """A clip's options checked before anything is rendered or written (one line each); returns the size."""
    size = check_size(size)
    clip_rng(0, split)
    if not 2 <= int(frames) <= MAX_FRAMES:
        raise DepthforgeError(f"synth-video: frames per clip must be 2..{MAX_FRAMES}, got {frames}")
    if path is not None and path not in PATHS:
        raise DepthforgeError(f"synth-video: unknown camera path {path!r} (known: {', '.join(PATHS)})")
    return size


@register("synth-video")
class SynthVideo(Dataset):
    """``n`` synthetic clips of ``frames`` frames each at ``size`` (H, W); sample i is frame i % frames of clip
    i // frames. Samples carry "intrinsics", "pose" (camera-to-world) and "moving" ([1,H,W] bool). ``path``:
    one camera path for every clip (default: drawn per clip); ``moving``: force a moving ball on or off."""

    exact_depth = True  # correspondences may come from the ground truth and poses (evaluation/temporal.py)

    def __init__(self, split: str = "test", n: int = 4, size=(240, 320), frames: int = FRAMES,
                 path: str | None = None, moving: bool | None = None):
        if int(n) < 1:
            raise DepthforgeError(f"synth-video: n (clips) must be >= 1, got {n}")
        self.split, self.n, self.size, self.frames = split, int(n), check_clip(split, size, frames, path), int(frames)
        self.path, self.moving = path, moving
        self._clip: tuple[int, Clip] | None = None  # the last clip used: frames are read in order

    def __len__(self) -> int:
        return self.n * self.frames

    def sequences(self) -> dict[str, list[int]]:
        """{clip name: its sample indices in time order}."""
        return {self.clip_name(c): list(range(c * self.frames, (c + 1) * self.frames)) for c in range(self.n)}

    def clip_name(self, c: int) -> str:
        return f"synth-video-{self.split}-{c:04d}"

    def clip(self, c: int) -> Clip:
        if self._clip is None or self._clip[0] != c:
            self._clip = (c, Clip(c, self.split, self.size, self.frames, self.path, self.moving))
        return self._clip[1]

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"synth-video: index {i} out of range for {len(self)} frames")
        c, t = divmod(i, self.frames)
        f = self.clip(c).frame(t)
        image = np.round(f["image"] * 255).astype(np.float32) / 255  # 8 bits, as a camera's
        sample = make_sample(image, f["depth"], f"{self.clip_name(c)}-{t:03d}", f["intrinsics"], f["pose"])
        sample["moving"] = torch.from_numpy(f["moving"])[None]
        return sample
