"""Your own RGB-D data: a folder of images and depth maps matched by file stem.

Layout: ``ROOT[/SPLIT]/rgb/NAME.ext`` and ``ROOT[/SPLIT]/depth/NAME.png|.npy`` (``image``/``images`` also
accepted for the RGB folder), optional ``intrinsics.txt`` (fx fy cx cy at the images' size).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from . import register
from .io import is_image_file, read_depth, read_image
from .sample import intrinsics_matrix, make_sample

RGB_DIRS = ("rgb", "image", "images")


def _rgb_dir(root: Path) -> Path | None:
    return next((root / d for d in RGB_DIRS if (root / d).is_dir()), None)


def _detect(path: Path) -> bool:
    roots = [path] + [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []
    return any(_rgb_dir(r) is not None and (r / "depth").is_dir() for r in roots)


def read_intrinsics_txt(path: Path) -> np.ndarray:
    try:
        values = [float(v) for v in path.read_text().split()]
    except (OSError, ValueError) as e:
        raise DepthforgeError(f"{path}: cannot read intrinsics 'fx fy cx cy' ({e})") from None
    if len(values) != 4:
        raise DepthforgeError(f"{path}: expected 4 numbers 'fx fy cx cy', got {len(values)}")
    return intrinsics_matrix(*values)


@register("folder", detect=_detect)
class FolderDataset(Dataset):
    def __init__(self, root: str, split: str = "test", depth_encoding: str = "mm",
                 intrinsics: list[float] | None = None, **_: object):
        root_p = Path(root)
        if (root_p / split).is_dir():
            root_p = root_p / split
        rgb = _rgb_dir(root_p)
        if rgb is None:
            raise DepthforgeError(f"{root_p}: no rgb/ folder")
        self.root, self.encoding = root_p, depth_encoding
        depth_dir = root_p / "depth"
        depths = {p.stem: p for p in sorted(depth_dir.glob("*")) if p.suffix.lower() in (".png", ".npy")} \
            if depth_dir.is_dir() else {}
        self.items = [(p, depths.get(p.stem)) for p in sorted(rgb.iterdir()) if is_image_file(p)]
        if not self.items:
            raise DepthforgeError(f"{rgb}: no images")
        if intrinsics is not None:
            self.intrinsics = intrinsics_matrix(*intrinsics)
        elif (root_p / "intrinsics.txt").exists():
            self.intrinsics = read_intrinsics_txt(root_p / "intrinsics.txt")
        else:
            self.intrinsics = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        rgb_path, depth_path = self.items[i]
        image = read_image(rgb_path)
        depth = None if depth_path is None else read_depth(depth_path, self.encoding)
        if depth is not None and depth.shape != image.shape[:2]:
            raise DepthforgeError(f"{depth_path}: depth is {depth.shape[1]}x{depth.shape[0]}, "
                                  f"image is {image.shape[1]}x{image.shape[0]}")
        return make_sample(image, depth, rgb_path.stem, self.intrinsics)
