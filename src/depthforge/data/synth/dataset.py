"""The ``synth`` dataset: synthetic rooms rendered on first use."""
from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from ...errors import DepthforgeError
from .. import register
from ..sample import make_sample
from .scenes import _check_size, render_scene, scene_rng


@register("synth")
class SynthDataset(Dataset):
    """``n`` synthetic rooms of ``split`` at ``size`` (H, W), rendered on first use.

    Images are kept as 8 bits, like a camera's and like the files ``write_dataset`` writes. With ``cache`` each
    rendered sample is kept in memory (about 0.55 MB at 240x320), per DataLoader worker process.
    """

    def __init__(self, split: str = "train", n: int = 1000, size=(240, 320), holes: bool = False,
                 cache: bool = True, **_: object):
        scene_rng(0, split)  # checks the split
        if int(n) < 1:
            raise DepthforgeError(f"synth: n must be >= 1, got {n}")
        self.split, self.n, self.size, self.holes = split, int(n), _check_size(size), bool(holes)
        self.cache: dict[int, tuple] | None = {} if cache else None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f"synth: index {i} out of range for {self.n} scenes")
        i %= self.n
        arrays = self.cache.get(i) if self.cache is not None else None
        if arrays is None:
            s = render_scene(i, self.split, self.size, self.holes)
            arrays = (np.round(s["image"] * 255).astype(np.uint8), s["depth"], s["intrinsics"])
            if self.cache is not None:
                self.cache[i] = arrays
        image, depth, k = arrays
        return make_sample(image.astype(np.float32) / 255, depth, f"synth-{self.split}-{i:05d}", k)
