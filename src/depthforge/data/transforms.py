"""Depth-correct transforms on sample dicts ([3,H,W] image, [1,H,W] depth/valid tensors, optional [3,3]
intrinsics in pixels).

Depth is never blended across holes: it is resized and rotated with nearest neighbour, so an invalid pixel stays
0 and a valid one keeps a measured value. Geometry changes move the intrinsics with the pixels; colour changes
touch the image only. ``build_train_transform`` composes them from a config's ``augment:`` section.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable

import torch
from torch.nn import functional as F

from ..errors import DepthforgeError
from .sample import scale_intrinsics


def maps(sample: dict) -> list[str]:
    """The per-pixel keys besides the image: depth, valid and any mask a benchmark adds ([C,H,W] tensors of the
    image's size: edges, glass, depth_through ...). Geometry moves them all with nearest neighbour."""
    h, w = sample["image"].shape[-2:]
    return [k for k, v in sample.items() if k != "image" and isinstance(v, torch.Tensor) and v.ndim == 3
            and tuple(v.shape[-2:]) == (h, w)]


def _nearest(x: torch.Tensor, fn) -> torch.Tensor:
    """Apply an interpolating ``fn`` to a map of any dtype with nearest neighbour semantics (bool stays bool)."""
    y = fn(x[None].float())[0]
    return y > 0.5 if x.dtype == torch.bool else y.to(x.dtype)


def resize(sample: dict, size: tuple[int, int]) -> dict:
    """Resize a sample to (H, W): image with area/bilinear filtering, depth and the other maps with nearest
    neighbour; valid is recomputed from the resized depth."""
    h0, w0 = sample["image"].shape[-2:]
    h, w = size
    if (h0, w0) == (h, w):
        return sample
    out = dict(sample)
    mode = "area" if h < h0 and w < w0 else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    out["image"] = F.interpolate(sample["image"][None], size=(h, w), mode=mode, **kw)[0].clamp(0, 1)
    for key in maps(sample):
        out[key] = _nearest(sample[key], lambda x: F.interpolate(x, size=(h, w), mode="nearest-exact"))
    out["valid"] = out["depth"] > 0
    if "intrinsics" in sample:
        k = scale_intrinsics(sample["intrinsics"].numpy(), h / h0, w / w0)
        out["intrinsics"] = torch.from_numpy(k)
    return out


def hflip(sample: dict) -> dict:
    """Mirror left-right; the principal point moves to W-1-cx."""
    out = dict(sample)
    for key in ["image", *maps(sample)]:
        out[key] = sample[key].flip(-1)
    if "intrinsics" in sample:
        k = sample["intrinsics"].clone()
        k[0, 2] = sample["image"].shape[-1] - 1 - k[0, 2]
        out["intrinsics"] = k
    return out


def crop(sample: dict, top: int, left: int, height: int, width: int) -> dict:
    """Cut rows ``top:top+height`` and columns ``left:left+width``; values (metres) are unchanged and the
    principal point moves by (-left, -top)."""
    h0, w0 = sample["image"].shape[-2:]
    if top < 0 or left < 0 or top + height > h0 or left + width > w0:
        raise DepthforgeError(f"{sample.get('name', 'sample')}: crop {width}x{height} at ({left},{top}) "
                              f"does not fit in {w0}x{h0}")
    out = dict(sample)
    for key in ["image", *maps(sample)]:
        out[key] = sample[key][..., top:top + height, left:left + width].contiguous()
    if "intrinsics" in sample:
        k = sample["intrinsics"].clone()
        k[0, 2] -= left
        k[1, 2] -= top
        out["intrinsics"] = k
    return out


def random_crop(sample: dict, size: tuple[int, int], generator: torch.Generator | None = None) -> dict:
    """Crop (H, W) at a uniformly random position (see ``crop``)."""
    h0, w0 = sample["image"].shape[-2:]
    h, w = size
    if h > h0 or w > w0:
        raise DepthforgeError(f"{sample.get('name', 'sample')}: crop {w}x{h} is larger than the image {w0}x{h0}")
    top = int(torch.randint(0, h0 - h + 1, (), generator=generator))
    left = int(torch.randint(0, w0 - w + 1, (), generator=generator))
    return crop(sample, top, left, h, w)


def rotate(sample: dict, degrees: float) -> dict:
    """Rotate the picture by ``degrees`` (counter-clockwise as displayed) about the principal point, or the
    image centre when the sample has no intrinsics.

    About the principal point this is a roll of the camera around its optical axis, so depth (distance along
    the axis) and the intrinsics stay exact (for fx = fy; NYU's differ by 0.1 %). The image is sampled
    bilinearly; depth and valid with nearest neighbour, so every valid output pixel holds one measured input
    value; pixels rotated in from outside the frame are invalid (depth 0) and black.
    """
    if degrees == 0:
        return sample
    h, w = sample["image"].shape[-2:]
    if "intrinsics" in sample:
        cx, cy = float(sample["intrinsics"][0, 2]), float(sample["intrinsics"][1, 2])
    else:
        cx, cy = (w - 1) / 2, (h - 1) / 2
    t = math.radians(degrees)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    dx, dy = xs - cx, ys - cy
    sx = cx + math.cos(t) * dx - math.sin(t) * dy  # source pixel of each output pixel
    sy = cy + math.sin(t) * dx + math.cos(t) * dy
    grid = torch.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], -1)[None]

    out = dict(sample)
    out["image"] = F.grid_sample(sample["image"][None], grid, mode="bilinear", padding_mode="zeros",
                                 align_corners=False)[0].clamp(0, 1)
    for key in maps(sample):
        out[key] = _nearest(sample[key], lambda x: F.grid_sample(x, grid, mode="nearest", padding_mode="zeros",
                                                               align_corners=False))
    out["valid"] = out["valid"] & (out["depth"] > 0)
    return out


def _gray(image: torch.Tensor) -> torch.Tensor:
    return (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]


def adjust_color(sample: dict, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0,
                 gamma: float = 1.0) -> dict:
    """Photometric change of the image only (depth, valid and intrinsics are the same objects).

    In this order: ``image ** gamma``; times ``brightness``; ``contrast`` scales the distance to the mean grey
    level; ``saturation`` scales the distance to each pixel's grey value (0 = greyscale). All 1 = unchanged.
    The result is clamped to [0, 1].
    """
    x = sample["image"]
    if gamma != 1:
        x = x.clamp(min=0) ** gamma
    if brightness != 1:
        x = x * brightness
    if contrast != 1:
        m = _gray(x).mean()
        x = (x - m) * contrast + m
    if saturation != 1:
        g = _gray(x)
        x = (x - g) * saturation + g
    out = dict(sample)
    out["image"] = x.clamp(0, 1)
    return out


def _range(value: Any, key: str) -> tuple[float, float]:
    """A jitter amount a -> (1-a, 1+a); a pair [lo, hi] as given."""
    try:
        lo, hi = (1 - float(value), 1 + float(value)) if not isinstance(value, (list, tuple)) else map(float, value)
    except (TypeError, ValueError):
        raise DepthforgeError(f"augment.jitter.{key}: expected a number or [low, high], got {value!r}") from None
    if not 0 <= lo <= hi < math.inf:
        raise DepthforgeError(f"augment.jitter.{key}: need 0 <= low <= high (finite), got [{lo}, {hi}]")
    return lo, hi


def _number(value: Any, key: str, lo: float, hi: float) -> float:
    """A finite number in [lo, hi], or one line naming ``augment.KEY`` and the range."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if isinstance(value, bool) or not lo <= x <= hi:  # also refuses nan
        raise DepthforgeError(f"augment.{key}: expected a number in [{lo:g}, {hi:g}], got {value!r}")
    return x


JITTER_DEFAULTS = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "gamma": [0.9, 1.1]}
HFLIP_TRUE = 0.5  # the flip probability ``hflip: true`` means
AUGMENT_KEYS = ("hflip", "crop", "rotate", "jitter")


class TrainTransform:
    """Random augmentation then a fixed output size; see ``build_train_transform``.

    Draws come from the ``seed`` given with the sample (training passes one derived from the run's seed, the
    epoch and the sample's index, so the draws do not depend on workers and a resumed run repeats them); without
    one, from a torch.Generator of its own, seeded on first use in each process from ``torch.initial_seed()``.
    ``seed(n)`` reseeds that generator in the current process.
    """

    def __init__(self, cfg: dict, size: tuple[int, int]):
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(AUGMENT_KEYS)
        if unknown:
            raise DepthforgeError(f"augment: unknown option(s) {', '.join(sorted(unknown))}; "
                                  f"known: {', '.join(AUGMENT_KEYS)}")
        self.size = (int(size[0]), int(size[1]))
        flip = cfg.get("hflip", 0.0)
        self.hflip = HFLIP_TRUE if flip is True else _number(flip or 0.0, "hflip", 0.0, 1.0)
        crop_ = cfg.get("crop", False)
        if isinstance(crop_, (list, tuple)):
            if len(crop_) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in crop_):
                raise DepthforgeError(f"augment.crop: expected true or [H, W] of integers >= 1, got {list(crop_)!r}")
            self.crop: tuple[int, int] | bool = (int(crop_[0]), int(crop_[1]))
        elif isinstance(crop_, bool):
            self.crop = crop_
        else:
            raise DepthforgeError(f"augment.crop: expected true/false or [H, W] of integers >= 1, got {crop_!r}")
        self.rotate = _number(cfg.get("rotate", 0.0) or 0.0, "rotate", 0.0, 180.0)
        jitter = cfg.get("jitter") or {}
        if jitter is True:
            jitter = JITTER_DEFAULTS
        if not isinstance(jitter, dict) or set(jitter) - set(JITTER_DEFAULTS):
            raise DepthforgeError(f"augment.jitter: expected a mapping of {', '.join(JITTER_DEFAULTS)}, got {jitter!r}")
        self.jitter = {k: _range(v, k) for k, v in jitter.items()}
        self._generator: torch.Generator | None = None
        self._pid: int | None = None

    def seed(self, seed: int) -> "TrainTransform":
        self._generator = torch.Generator().manual_seed(int(seed))
        self._pid = os.getpid()
        return self

    def _gen(self) -> torch.Generator:
        if self._generator is None or self._pid != os.getpid():  # a new DataLoader worker
            self.seed(torch.initial_seed())
        return self._generator

    def __getstate__(self):
        return {**self.__dict__, "_generator": None, "_pid": None}

    def __call__(self, sample: dict, seed: int | None = None) -> dict:
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else self._gen()

        def uniform(lo: float, hi: float) -> float:
            return lo + (hi - lo) * float(torch.rand((), generator=gen))

        if self.rotate:
            sample = rotate(sample, uniform(-self.rotate, self.rotate))
        if self.crop is True:
            h0, w0 = sample["image"].shape[-2:]
            s = max(self.size[0] / h0, self.size[1] / w0)
            if s > 1:  # too small to crop from: enlarge just enough, keeping the aspect ratio
                sample = resize(sample, (math.ceil(h0 * s), math.ceil(w0 * s)))
            sample = random_crop(sample, self.size, gen)
        elif self.crop:
            sample = random_crop(sample, self.crop, gen)
        sample = resize(sample, self.size)
        if self.hflip and float(torch.rand((), generator=gen)) < self.hflip:
            sample = hflip(sample)
        if self.jitter:
            sample = adjust_color(sample, **{k: uniform(*r) for k, r in self.jitter.items()})
        return sample


def build_train_transform(cfg: dict, size: tuple[int, int]) -> Callable[[dict], dict]:
    """The training augmentation of a config's ``augment:`` section, ending at ``size`` (H, W).

    Keys (all optional; ``{}`` = just resize to ``size``):
    ``hflip`` probability of a left-right flip; ``rotate`` max degrees of a uniform random rotation (e.g. 2.5);
    ``crop`` true = a random ``size`` crop at the native scale (the image is enlarged first only if smaller),
    or [H, W] = a random crop of that size then a resize to ``size`` (false/absent: resize the whole image);
    ``jitter`` {brightness, contrast, saturation: amount a (factor in [1-a, 1+a]) or [lo, hi]; gamma: [lo, hi]}
    (``true`` = 0.2, 0.2, 0.2, [0.9, 1.1]). Order: rotate, crop, resize, flip, colour.
    """
    return TrainTransform(cfg, size)


def identity(sample: dict, seed: int | None = None) -> dict:
    return sample


def build_eval_transform(size: tuple[int, int] | None) -> Callable[[dict], dict]:
    """Evaluation/validation: resize to ``size`` (H, W) — nearest for depth — or nothing when ``size`` is None."""
    if size is None:
        return identity
    size = (int(size[0]), int(size[1]))
    return lambda sample, seed=None: resize(sample, size)
