"""The ``synth`` dataset: synthetic rooms (or a benchmark suite of them) rendered on first use."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ...errors import DepthforgeError
from ..base import register
from ...files import write_bytes
from ..sample import make_sample
from .scenes import check_renderer, check_size, scene_rng
from .suites import check_suite, render_suite

GLASS_VERSION = 2  # part of the cache folder's name: bump it when Mitsuba's images change
MASKS = ("edges", "glass")  # bool (H,W) -> [1,H,W] bool tensors
DEPTHS = ("depth_through", "twin_depth")  # float32 (H,W) metres -> [1,H,W] tensors
SCORES = ("clutter", "overlaps")  # per-sample floats


def default_cache_dir() -> Path:
    """Where rendered suites are kept: $DEPTHFORGE_CACHE/synth, else $XDG_CACHE_HOME (~/.cache)/depthforge/synth."""
    if os.environ.get("DEPTHFORGE_CACHE"):
        return Path(os.environ["DEPTHFORGE_CACHE"]) / "synth"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "depthforge" / "synth"


@register("synth")
class SynthDataset(Dataset):
    """``n`` synthetic rooms of ``split`` at ``size`` (H, W), rendered on first use.

    ``suite``: ``rooms`` (default: the everyday scenes), ``edges``, ``clutter`` or ``glass`` (see
    ``suites.py``); their samples carry masks ``edges`` / ``glass`` ([1,H,W] bool), ``depth_through``
    ([1,H,W] float32 metres) and scores ``clutter`` / ``overlaps`` (floats) besides the usual keys; a glass
    sample also its twin without glass, ``twin_image`` ([3,H,W]) and ``twin_depth`` ([1,H,W] metres).

    Images are kept as 8 bits, like a camera's and like the files ``write_dataset`` writes. With ``cache`` each
    rendered sample is kept in memory (about 0.55 MB at 240x320), per DataLoader worker process. The glass suite
    (Mitsuba, seconds per scene) is rendered when the dataset is built, with a progress bar, into
    ``cache_dir`` (default ``default_cache_dir()``) as one ``.npz`` per scene, written atomically; a later build
    reads them back. ``renderer: mitsuba`` renders any suite's images so, in the glass suite's look (train on
    what the glass suite tests), cached the same way; ``spp``: Mitsuba's samples per pixel.
    """

    def __init__(self, split: str = "train", n: int = 1000, size=(240, 320), holes: bool = False,
                 cache: bool = True, suite: str = "rooms", cache_dir: str | os.PathLike | None = None,
                 spp: int = 32, progress: bool = True, renderer: str = "raycast"):
        scene_rng(0, split)  # checks the split
        if int(n) < 1:
            raise DepthforgeError(f"synth: n must be >= 1, got {n}")
        self.split, self.n, self.size, self.holes = split, int(n), check_size(size), bool(holes)
        self.suite = check_suite(suite)
        self.cache: dict[int, tuple] | None = {} if cache else None
        self.folder: Path | None = None
        self.renderer = check_renderer(renderer)
        if self.suite == "glass" or self.renderer == "mitsuba":  # path traced: seconds a scene, cached on disk
            if self.suite == "glass" and self.holes:
                raise DepthforgeError("synth: the glass suite has no 'holes' (its Kinect-like depth is "
                                      "depth_through)")
            if int(spp) < 1:
                raise DepthforgeError(f"synth: spp must be >= 1, got {spp}")
            self.spp = int(spp)
            h, w = self.size
            root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
            tag = "glass" if self.suite == "glass" else f"{self.suite}-mitsuba{'-holes' if self.holes else ''}"
            self.folder = root / f"{tag}-v{GLASS_VERSION}-{split}-{h}x{w}-spp{self.spp}"
            missing = [i for i in range(self.n) if not self._file(i).exists()]
            for i in tqdm(missing, desc=f"rendering {tag} {split} scenes", unit="scene", disable=not progress):
                s = render_suite(self.suite, i, split, self.size, self.holes, "mitsuba", self.spp)
                images = {key: _to_uint8(s[key]) for key in ("image", "twin_image") if key in s}
                buf = io.BytesIO()
                np.savez_compressed(buf, **{**s, **images})
                write_bytes(self._file(i), buf.getvalue())

    def _file(self, i: int) -> Path:
        return self.folder / f"{i:05d}.npz"

    def __len__(self) -> int:
        return self.n

    def _load(self, i: int) -> dict:
        if self.folder is not None:
            try:
                with np.load(self._file(i), allow_pickle=False) as f:
                    return {key: f[key] for key in f.files}
            except (OSError, ValueError, KeyError) as e:
                raise DepthforgeError(f"{self._file(i)}: unreadable cached scene ({e}); delete it to render "
                                      f"it again") from None
        s = render_suite(self.suite, i, self.split, self.size, self.holes)
        return {**s, "image": _to_uint8(s["image"])}

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f"synth: index {i} out of range for {self.n} scenes")
        i %= self.n
        arrays = self.cache.get(i) if self.cache is not None else None
        if arrays is None:
            arrays = self._load(i)
            if self.cache is not None:
                self.cache[i] = arrays
        name = f"synth-{self.split}-{i:05d}" if self.suite == "rooms" else f"synth-{self.suite}-{self.split}-{i:05d}"
        sample = make_sample(arrays["image"].astype(np.float32) / 255, arrays["depth"], name, arrays["intrinsics"])
        if "twin_image" in arrays:
            sample["twin_image"] = torch.from_numpy(np.ascontiguousarray(
                arrays["twin_image"].transpose(2, 0, 1), np.float32) / 255)
        for key in MASKS:
            if key in arrays:
                sample[key] = torch.from_numpy(np.ascontiguousarray(arrays[key], bool))[None]
        for key in DEPTHS:
            if key in arrays:
                sample[key] = torch.from_numpy(np.ascontiguousarray(arrays[key], np.float32))[None]
        for key in SCORES:
            if key in arrays:
                sample[key] = float(arrays[key])
        return sample


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(image * 255).astype(np.uint8)
