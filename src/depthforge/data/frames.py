"""A plain folder of video frames with a pose file: one clip with depth and camera poses.

Frames are named as the ``folder`` format pairs them (``rgb_1.png`` + ``depth_1.png``, or ``rgb/`` + ``depth/``
folders matched by name) and ordered by the numbers in their names (``rgb_2`` before ``rgb_10``). The pose file
(``pose.txt``, ``poses.txt`` or the option ``poses``) holds one ``tx ty tz qx qy qz qw`` line per frame, in frame
order — the camera-to-world pose, as ``../shared/realdata/nyu/pose.txt`` and TUM's trajectories. Depth PNGs are
millimetres unless ``depth_encoding`` says otherwise; intrinsics as ``folder`` takes them (option or
``intrinsics.txt``).

Bad input stops with one line: a pose that does not parse (file:line), fewer poses than frames. A frame whose
depth is missing or unreadable is skipped and counted when the clip is evaluated, as datasets skip bad files.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .poses import read_poses

POSE_FILES = ("pose.txt", "poses.txt")


def pose_file(root: Path) -> Path | None:
    return next((root / n for n in POSE_FILES if (root / n).is_file()), None)


def _detect(path: Path) -> bool:
    # folder is imported here, not above, so that this format registers (and is detected) before it
    from .folder import flat_pairs, rgb_dir

    return path.is_dir() and pose_file(path) is not None and \
        (rgb_dir(path) is not None or any(d is not None for _, d in flat_pairs(path)))


def frame_key(name: str) -> tuple:
    """Sort key: the numbers in a name compare as numbers (rgb_2 < rgb_10)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name.lower()))


@register("frames", detect=_detect)
class FramesWithPoses(Dataset):
    """One clip (see the module docstring). Options: ``poses`` (the pose file), ``depth_encoding`` (default mm),
    ``intrinsics`` ([fx, fy, cx, cy] or a file)."""

    def __init__(self, root: str, split: str = "test", poses: str | None = None, depth_encoding: str = "mm",
                 intrinsics=None):
        from .folder import FolderDataset

        base = Path(root)
        self.frames = FolderDataset(root=str(base), split=split, depth_encoding=depth_encoding,
                                    intrinsics=intrinsics)
        self.order = sorted(range(len(self.frames)), key=lambda i: frame_key(self.frames.names[i]))
        path = Path(poses) if poses is not None else pose_file(base)
        if path is None:
            raise DepthforgeError(f"{base}: no pose file ({' or '.join(POSE_FILES)}); give the option 'poses'")
        self.poses = read_poses(path)
        if len(self.poses) < len(self.order):
            raise DepthforgeError(f"{path}: {len(self.poses)} poses for {len(self.order)} frames; one "
                                  "'tx ty tz qx qy qz qw' line per frame")
        self.name = base.resolve().name

    def sequences(self) -> dict[str, list[int]]:
        return {self.name: list(range(len(self.order)))}

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> dict:
        sample = self.frames[self.order[i]]
        sample["pose"] = torch.tensor(self.poses[i], dtype=torch.float32)
        return sample


__all__ = ["FramesWithPoses", "frame_key"]
