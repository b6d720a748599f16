"""DIODE (Vasiljevic et al., 2019): indoor and outdoor laser-scanned scenes; its validation split (771 images) is
the zero-shot test set of Marigold, Depth Anything and MoGe. Read as Marigold reads it (prs-eth/Marigold
``src/dataset/diode_dataset.py``, ``config/dataset_depth/data_diode_all.yaml``,
``data_split/diode_depth/diode_val_{all,indoor,outdoor}_filename_list.txt``).

Layout (the official ``val.tar.gz`` extracted; ROOT may also be the folder holding ``val/``)::

    ROOT/indoors/scene_00019/scan_00183/00019_00183_indoors_000_010.png
    ROOT/indoors/scene_00019/scan_00183/00019_00183_indoors_000_010_depth.npy       float32 (768,1024,1), metres
    ROOT/indoors/scene_00019/scan_00183/00019_00183_indoors_000_010_depth_mask.npy  (768,1024), 1 = valid
    ROOT/outdoor/...

A pixel is valid where the mask is non-zero and the depth is finite and > 0 (Marigold takes the mask as its valid
mask, then its range). Option ``scene``: ``all`` (Marigold's table), ``indoors`` or ``outdoor``. A Marigold list
file (option ``lists``) fixes the set and order; else every image found is read, sorted.

Protocol ``diode``: the full image, 0.6 < gt < 350 m (Marigold's DIODE range). Intrinsics: DIODE's published RGB
camera (fx 886.81, fy 927.06, cx 512, cy 384 at 1024x768), given only for images of that size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import decode_depth, read_columns, read_image, read_npy
from .sample import check_same_size, intrinsics_matrix, make_sample

SCENES = ("indoors", "outdoor")
DIODE_SIZE = (768, 1024)  # H, W
DIODE_INTRINSICS = intrinsics_matrix(886.81, 927.06, 512.0, 384.0)


def _base(path: Path) -> Path | None:
    """The folder holding indoors/ and/or outdoor/ (``path`` or its ``val/``), or None."""
    for base in (path, path / "val"):
        if any((base / s).is_dir() and next(iter((base / s).glob("scene_*/scan_*/*_depth_mask.npy")), None)
               for s in SCENES):
            return base
    return None


def _detect(path: Path) -> bool:
    return path.is_dir() and _base(path) is not None


def find_triples(base: Path, scenes: tuple[str, ...]) -> list[tuple[Path, Path, Path]]:
    """(image, depth, mask) for every ``*_depth_mask.npy`` under base/<scene>/, sorted."""
    out = []
    for scene in scenes:
        for mask in sorted((base / scene).glob("scene_*/scan_*/*_depth_mask.npy")):
            stem = mask.name.removesuffix("_depth_mask.npy")
            out.append((mask.with_name(stem + ".png"), mask.with_name(stem + "_depth.npy"), mask))
    return out


@register("diode", detect=_detect, protocols={"diode": ("none", 0.6, 350.0)},
          benchmark={"folder": "diode", "split": "test"})
class DIODE(Dataset):
    """DIODE validation (see the module docstring). Options: ``root``, ``scene`` all|indoors|outdoor, ``lists``;
    ``split``: ``test`` or ``val`` (the same images: DIODE's validation split is the benchmark)."""

    protocol = "diode"

    def __init__(self, split: str = "test", root: str | None = None, scene: str = "all", lists: str | None = None):
        if root is None:
            raise DepthforgeError("diode: the option 'root' is required")
        if split not in ("test", "val"):
            raise DepthforgeError(f"diode: unknown split {split!r}; known: test, val (the same validation images)")
        if scene not in ("all", *SCENES):
            raise DepthforgeError(f"diode: unknown scene {scene!r}; known: all, {', '.join(SCENES)}")
        path = Path(root)
        if lists:
            self.items = [(path / r[0], path / r[1], path / r[2]) for r in read_columns(Path(lists), 3)]
            return
        base = _base(path)
        if base is None:
            raise DepthforgeError(f"{path}: no DIODE images found (expected indoors/ or outdoor/ with "
                                  "scene_*/scan_*/*_depth_mask.npy, here or under val/)")
        self.items = find_triples(base, SCENES if scene == "all" else (scene,))
        if not self.items:
            raise DepthforgeError(f"{base}: no DIODE images of scene {scene!r}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        rgb, dep, msk = self.items[i]
        image = read_image(rgb)
        depth = decode_depth(read_npy(dep).squeeze())
        mask = read_npy(msk).squeeze()
        check_same_size(dep, image, depth)
        check_same_size(msk, image, mask)
        depth = np.where(mask != 0, depth, 0).astype(np.float32)
        k = DIODE_INTRINSICS if image.shape[:2] == DIODE_SIZE else None
        return make_sample(image, depth, rgb.stem, k)
