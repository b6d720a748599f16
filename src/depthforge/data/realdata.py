"""The real RGB-D frames of ``shared/realdata`` (README there): NYU-Depth v2, KITTI, TUM RGB-D and SUN RGB-D, a
few frames each, in their own depth encodings, as four small benchmark sets.

Layout: ``realdata/SUBSET/depth*.png`` beside ``rgb*.png`` (or ``.jpg``) with the same suffix
(``depth_1.png`` <-> ``rgb_1.png``). Each subset is registered as ``realdata-SUBSET`` with the protocol of its
dataset (NYU: Eigen crop, 10 m; KITTI: Garg crop, 80 m; TUM and SUN RGB-D: the full frame, 10 m), so
``depthforge benchmark --root DIR`` finds all four under ``DIR/realdata`` and ``--sets realdata`` names them.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import check_encoding, read_depth, read_image
from .sample import NYU_INTRINSICS_640, check_same_size, intrinsics_matrix, make_sample

FOLDER = "realdata"
# subset -> (depth encoding, intrinsics (fx, fy, cx, cy) at the files' size or None, protocol name and its
# (crop, min, max depth)), from the README of shared/realdata.
SUBSETS = {
    "nyu": ("mm", NYU_INTRINSICS_640, ("nyu", ("eigen", 1e-3, 10.0))),
    "kitti": ("kitti256", intrinsics_matrix(707.0493, 707.0493, 604.0814, 180.5066),
              ("kitti", ("garg", 1e-3, 80.0))),
    "tum": ("tum5000", intrinsics_matrix(520.9, 521.0, 325.1, 249.7), ("none", ("none", 1e-3, 10.0))),
    "sunrgbd": ("sunrgbd", None, ("none", ("none", 1e-3, 10.0))),
}
IMAGE_SUFFIXES = (".png", ".jpg")


def pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(rgb, depth) files of one subset folder, sorted by name; a depth file without its image is kept (its
    sample then fails with a one-line error and is skipped and counted by the caller)."""
    out = []
    for depth in sorted(folder.glob("depth*.png")):
        stem = "rgb" + depth.stem[len("depth"):]
        rgb = next((folder / (stem + s) for s in IMAGE_SUFFIXES if (folder / (stem + s)).is_file()),
                   folder / (stem + IMAGE_SUFFIXES[0]))
        out.append((rgb, depth))
    return out


def _detect(subset: str, path: Path) -> bool:
    """``path`` is the realdata folder holding this subset (or the subset folder itself) with a depth file."""
    for folder in (path / subset, path):
        if folder.name == subset and folder.is_dir() and any(folder.glob("depth*.png")):
            return True
    return False


class RealData(Dataset):
    """One subset of shared/realdata. Options: ``root`` (the realdata folder, or the subset's folder),
    ``subset`` (nyu, kitti, tum, sunrgbd), ``split`` (only ``test``: a handful of frames to evaluate on). Other
    keys (a config's ``size``) are ignored: samples keep the files' size."""

    def __init__(self, root: str, subset: str, split: str = "test", **_ignored):
        if subset not in SUBSETS:
            raise DepthforgeError(f"realdata subset {subset!r}: choose from {', '.join(SUBSETS)}")
        if split != "test":
            raise DepthforgeError(f"realdata: split {split!r}: the real frames are a test set only (split: test)")
        root = Path(root)
        self.folder = root / subset if (root / subset).is_dir() else root
        self.encoding, self.k, _ = SUBSETS[subset]
        check_encoding(self.encoding, str(self.folder))
        self.subset = subset
        self.files = pairs(self.folder)
        if not self.files:
            raise DepthforgeError(f"{self.folder}: no depth*.png file (realdata subset {subset})")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        rgb, depth_file = self.files[i]
        image = read_image(rgb)
        depth = read_depth(depth_file, self.encoding)
        check_same_size(depth_file, image, depth)
        return make_sample(image, depth, f"{self.subset}/{rgb.stem}", intrinsics=self.k)


for _subset, (_, _, (_protocol, _range)) in SUBSETS.items():
    register(f"realdata-{_subset}", detect=partial(_detect, _subset), protocols={_protocol: _range},
             benchmark={"folder": FOLDER, "split": "test", "subset": _subset})(partial(RealData, subset=_subset))
