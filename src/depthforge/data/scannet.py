"""ScanNet (Dai et al., CVPR 2017) frames, as Marigold evaluates them zero-shot: its 800-frame validation subset
(prs-eth/Marigold ``src/dataset/scannet_dataset.py``, ``config/dataset_depth/data_scannet_val.yaml``,
``data_split/scannet_depth/scannet_val_sampled_list_800_1.txt``), and whole scenes as ScanNet's SensReader exports
them (for per-clip video metrics).

Layout (Marigold's ``scannet_val_sampled_800_1.tar`` extracted, or SensReader's export)::

    ROOT/scene0406_02/color/000300.jpg          (Marigold's subset: 640x480; SensReader: 1296x968)
    ROOT/scene0406_02/depth/000300.png          16-bit, millimetres, 0 = no reading
    ROOT/scene0406_02/pose/000300.txt           optional: 4x4 camera-to-world (SensReader; -inf when lost)
    ROOT/scene0406_02/intrinsic/intrinsic_color.txt, intrinsic_depth.txt   optional: 4x4, pixels

Frames are sorted by scene, then by frame number; ``sequences()`` gives each scene's sample indices in time
order. A colour image larger than its depth map (SensReader's raw export) is resized to the depth's size, its
intrinsics scaled with it; intrinsics come from ``intrinsic_color.txt`` (else ``intrinsic_depth.txt``) at the
size that file's image has. A Marigold list file in ROOT (or the option ``lists``) fixes the set and order.

Protocol ``scannet``: the full image, 1e-3 < gt < 10 m (Marigold's ScanNet range; no crop).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import read_columns, read_depth, read_image
from .sample import check_same_size, make_sample, scale_intrinsics

LIST_NAME = "scannet_val_sampled_list_800_1.txt"
COLOR_SUFFIXES = (".jpg", ".png")


def _frame(path: Path) -> int:
    return int(path.stem) if path.stem.isdigit() else -1


def _detect(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / LIST_NAME).is_file():
        return True
    return any(d.name.startswith("scene") and (d / "color").is_dir() and (d / "depth").is_dir()
               for d in path.iterdir() if d.is_dir())


def read_matrix(path: Path, rows: int = 4) -> np.ndarray | None:
    """A whitespace-separated rows x 4 matrix text file (ScanNet pose/intrinsics); None if absent, unreadable or
    not finite (SensReader writes -inf for frames whose tracking was lost)."""
    try:
        m = np.array([[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()])
    except (OSError, ValueError):
        return None
    if m.shape != (rows, 4) or not np.isfinite(m).all():
        return None
    return m


def _color_intrinsics(scene: Path) -> tuple[np.ndarray, tuple[int, int]] | None:
    """(3x3 intrinsics, (h, w) they are for) of the scene's colour camera, from intrinsic/ (None: not there)."""
    for name, size in (("intrinsic_color.txt", (968, 1296)), ("intrinsic_depth.txt", (480, 640))):
        m = read_matrix(scene / "intrinsic" / name)
        if m is not None:
            return m[:3, :3].astype(np.float32), size
    return None


@register("scannet", detect=_detect, protocols={"scannet": ("none", 1e-3, 10.0)},
          benchmark={"folder": "scannet", "split": "test"})
class ScanNet(Dataset):
    """ScanNet frames (see the module docstring). Options: ``root``; ``lists`` (a Marigold list; default
    ROOT/scannet_val_sampled_list_800_1.txt when present); ``split``: ``test`` (or ``val``, the same frames)."""

    protocol = "scannet"

    def __init__(self, split: str = "test", root: str | None = None, lists: str | None = None):
        if root is None:
            raise DepthforgeError("scannet: the option 'root' is required")
        if split not in ("test", "val"):
            raise DepthforgeError(f"scannet: unknown split {split!r}; known: test, val (the same frames)")
        self.root = Path(root)
        listed = Path(lists) if lists else self.root / LIST_NAME
        if lists or listed.is_file():
            pairs = [(self.root / r[0], self.root / r[1]) for r in read_columns(listed)]
        else:
            pairs = []
            for scene in sorted(p for p in self.root.iterdir() if p.is_dir() and (p / "depth").is_dir()):
                for dep in sorted((scene / "depth").glob("*.png"), key=_frame):
                    rgb = next((dep.parent.parent / "color" / (dep.stem + s) for s in COLOR_SUFFIXES
                                if (dep.parent.parent / "color" / (dep.stem + s)).is_file()),
                               dep.parent.parent / "color" / (dep.stem + ".jpg"))
                    pairs.append((rgb, dep))
        if not pairs:
            raise DepthforgeError(f"{self.root}: no ScanNet frames found (expected scene*/depth/*.png)")
        # time order within each scene, whatever order a list gives
        self.pairs = sorted(pairs, key=lambda p: (p[1].parent.parent.name, _frame(p[1])))

    def __len__(self) -> int:
        return len(self.pairs)

    def sequences(self) -> dict[str, list[int]]:
        """Scene name -> its sample indices in time order."""
        out: dict[str, list[int]] = {}
        for i, (_, dep) in enumerate(self.pairs):
            out.setdefault(dep.parent.parent.name, []).append(i)
        return out

    def __getitem__(self, i: int) -> dict:
        rgb, dep = self.pairs[i]
        scene = dep.parent.parent
        depth = read_depth(dep, "mm")
        image = read_image(rgb)
        found = _color_intrinsics(scene)
        k = scale_intrinsics(found[0], image.shape[0] / found[1][0], image.shape[1] / found[1][1]) if found else None
        h, w = depth.shape
        if image.shape[:2] != (h, w) and image.shape[0] >= h and image.shape[1] >= w:
            sy, sx = h / image.shape[0], w / image.shape[1]
            image = _resize(image, h, w)
            k = scale_intrinsics(k, sy, sx) if k is not None else None
        check_same_size(dep, image, depth)
        pose = read_matrix(scene / "pose" / f"{dep.stem}.txt")
        return make_sample(image, depth, f"{scene.name}_{dep.stem}", k, pose)


def _resize(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Float RGB (H,W,3) in [0,1] -> (h,w,3), area-averaged as a downscale should be."""
    channels = [np.asarray(Image.fromarray(image[..., c]).resize((w, h), Image.Resampling.BOX)) for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.float32)
