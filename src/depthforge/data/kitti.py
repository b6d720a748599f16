"""KITTI depth prediction, Eigen split, as the BTS/AdaBins file lists give it.

Lists ``eigen_{train,test}_files_with_gt.txt`` hold ``rgb depth focal`` per line, e.g.
``2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377``, with ``None`` for a frame
that has no annotated depth. RGB paths are relative to the KITTI raw folder (``image_root``), depth paths to the
``data_depth_annotated`` folder (``depth_root``; its ``train/`` and ``val/`` subfolders are searched too).
Annotated depth is 16-bit PNG, value / 256 = metres, 0 = invalid. A frame without ground truth comes with an
all-invalid depth map: evaluation skips it, and training skips it through SkipBad.

The KB crop (352x1216, bottom-centred) is applied here when ``kb_crop`` is on, with the intrinsics moved to match.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import check_encoding, file_error, find_list, read_depth, read_image, read_list, safe_name
from .sample import check_same_size, intrinsics_matrix, make_sample, with_focal
from .transforms import crop

KITTI_LISTS = {"train": "eigen_train_files_with_gt.txt", "test": "eigen_test_files_with_gt.txt"}
KB_CROP = (352, 1216)  # H, W
# P_rect_02 (fx, cx, cy) of the KITTI raw recordings by date, used when calib_cam_to_cam.txt is not at hand.
KITTI_CALIB = {
    "2011_09_26": (721.5377, 609.5593, 172.8540),
    "2011_09_28": (707.0493, 604.0814, 180.5066),
    "2011_09_29": (718.3351, 600.3891, 181.5122),
    "2011_09_30": (707.0912, 601.8873, 183.1104),
    "2011_10_03": (718.8560, 607.1928, 185.2157),
}
_DATE = re.compile(r"\d{4}_\d{2}_\d{2}")


def kb_crop_box(h: int, w: int) -> tuple[int, int]:
    """(top, left) of the KB crop in an HxW KITTI frame: the bottom 352 rows, the centred 1216 columns."""
    return h - KB_CROP[0], (w - KB_CROP[1]) // 2


def read_calib(path: Path, camera: str = "02") -> tuple[float, float, float, float] | None:
    """(fx, fy, cx, cy) of P_rect_<camera> in a KITTI calib_cam_to_cam.txt, or None if absent/unreadable."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(f"P_rect_{camera}:"):
                v = [float(x) for x in line.split(":", 1)[1].split()]
                return v[0], v[5], v[2], v[6]
    except (OSError, ValueError, IndexError):
        return None
    return None


def _detect(path: Path) -> bool:
    if not path.is_dir():
        return False
    if any((d / n).is_file() for d in (path, path / "train_test_inputs") for n in KITTI_LISTS.values()):
        return True
    return any(p.is_dir() and _DATE.fullmatch(p.name) and any(p.glob("*_drive_*_sync")) for p in path.iterdir())


@register("kitti", detect=_detect, protocols={"kitti": ("garg", 1e-3, 80.0)},
          benchmark={"folder": "kitti", "split": "test"})
class KittiDataset(Dataset):
    """KITTI Eigen split.

    Options: ``root`` (default for both roots below and where the lists are searched); ``image_root`` (KITTI raw:
    ``2011_09_26/..._sync/image_02/data/*.png``); ``depth_root`` (``data_depth_annotated``); ``lists`` (a folder
    holding the eigen_*_files_with_gt.txt lists, one list file, or {split: file}; default: searched in root,
    root/train_test_inputs, image_root); ``kb_crop`` (default True: 352x1216 bottom-centred crop, as BTS,
    AdaBins and the Monocular-Depth-Estimation-Toolbox train and evaluate); ``require_gt`` (default False: drop
    frames listed with ``None`` instead of returning them all-invalid); ``depth_encoding`` (default kitti256).
    ``split`` is train or test, or any name ``lists`` gives a file for (e.g. {val: my_val.txt}).
    Intrinsics: fx = fy = the list's focal; cx, cy from ``<image_root>/<date>/calib_cam_to_cam.txt``, else the
    published calibration of that date, else the image centre.
    """

    def __init__(self, split: str = "test", root: str | None = None, image_root: str | None = None,
                 depth_root: str | None = None, lists: Any = None, kb_crop: bool = True,
                 require_gt: bool = False, depth_encoding: str = "kitti256"):
        if split not in KITTI_LISTS and lists is None:
            raise DepthforgeError(f"kitti: unknown split {split!r}; known: {', '.join(KITTI_LISTS)} "
                                  "(or give the option 'lists')")
        check_encoding(depth_encoding, "kitti option 'depth_encoding'")
        if root is None and (image_root is None or depth_root is None):
            raise DepthforgeError("kitti: give 'root', or both 'image_root' and 'depth_root'")
        self.image_root = Path(image_root if image_root is not None else root)
        self.depth_root = Path(depth_root if depth_root is not None else root)
        for opt, p in (("image_root", self.image_root), ("depth_root", self.depth_root)):
            if not p.is_dir():
                raise DepthforgeError(f"{p}: folder not found (kitti option {opt!r})")
        search = [Path(root), Path(root) / "train_test_inputs"] if root is not None else []
        search += [self.image_root, self.depth_root]
        name = KITTI_LISTS.get(split, f"eigen_{split}_files_with_gt.txt")
        self.list_path = find_list(lists, split, [name], search)
        self.items = read_list(self.list_path)
        if require_gt:
            self.items = [it for it in self.items if it[1] is not None]
        self.kb_crop, self.encoding = bool(kb_crop), depth_encoding
        self._calib: dict[tuple[str, str], np.ndarray | None] = {}

    def __len__(self) -> int:
        return len(self.items)

    def has_gt(self, i: int) -> bool:
        return self.items[i][1] is not None

    def _depth_path(self, rel: str) -> Path:
        rel = rel.lstrip("/")
        candidates = [self.depth_root / rel, self.depth_root / "train" / rel, self.depth_root / "val" / rel]
        return next((p for p in candidates if p.is_file()), candidates[0])

    def _known_intrinsics(self, rel: str) -> np.ndarray | None:
        """Intrinsics (fx = fy) of the frame's date and camera, from its calib file or the table; None if unknown."""
        parts = rel.strip("/").split("/")
        date = parts[0] if parts and _DATE.fullmatch(parts[0]) else None
        cam = next((p[-2:] for p in parts if p in ("image_02", "image_03")), "02")
        key = (date or "", cam)
        if key not in self._calib:
            calib = read_calib(self.image_root / date / "calib_cam_to_cam.txt", cam) if date else None
            fx, cx, cy = (calib[0], calib[2], calib[3]) if calib else KITTI_CALIB.get(date or "", (None,) * 3)
            self._calib[key] = intrinsics_matrix(fx, fx, cx, cy) if fx is not None else None
        return self._calib[key]

    def __getitem__(self, i: int) -> dict:
        rgb, dep, focal = self.items[i]
        rgb_path = self.image_root / rgb.lstrip("/")
        image = read_image(rgb_path)
        h, w = image.shape[:2]
        depth = None
        if dep is not None:
            dep_path = self._depth_path(dep)
            depth = read_depth(dep_path, self.encoding)
            check_same_size(dep_path, image, depth)
        k = with_focal(self._known_intrinsics(rgb), focal, h, w)
        name = safe_name("/".join(p for p in rgb.strip("/").split("/") if p != "data" and not _DATE.fullmatch(p)))
        sample = make_sample(image, depth, name, k)
        if self.kb_crop:
            if h < KB_CROP[0] or w < KB_CROP[1]:
                raise file_error(f"{rgb_path}: image is {w}x{h}, smaller than the KB crop {KB_CROP[1]}x{KB_CROP[0]}",
                                 "wrong size")
            top, left = kb_crop_box(h, w)
            sample = crop(sample, top, left, *KB_CROP)
        return sample

