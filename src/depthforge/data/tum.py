"""TUM RGB-D and Bonn RGB-D Dynamic sequences, in their native layout: video with depth and camera poses.

A sequence folder holds ``rgb.txt`` and ``depth.txt`` (``timestamp file`` per line), the files they name, and
``groundtruth.txt`` (``timestamp tx ty tz qx qy qz qw``: the camera-to-world pose). ``root`` is one sequence
folder or a folder of them (each a clip). Colour and depth frames are matched by timestamp as TUM's
``associate.py`` does (closest pairs first, at most ``max_difference`` s apart), then each frame takes the pose
matched to its colour stamp the same way; frames without a pose are left out when ``groundtruth.txt`` exists.
Depth is 16-bit PNG ÷ 5000 (metres). Intrinsics: the option ``intrinsics`` ([fx, fy, cx, cy] or a file), else
``intrinsics.txt`` in the sequence folder, else the published calibration the folder's name points to
(freiburg1/2/3, bonn), else none (no TAE then).

Bonn's ``groundtruth.txt`` gives the pose of the motion-capture markers, not of the camera's optical centre; the
fixed offset between them (Bonn's own tools apply it) is not applied here, so TAE on Bonn carries it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import read_depth, read_image
from .poses import associate, parse_pose, read_stamped
from .sample import check_same_size, intrinsics_matrix, make_sample

log = logging.getLogger(__name__)

LISTS = ("rgb.txt", "depth.txt")
# fx, fy, cx, cy at 640x480 (TUM's "Intrinsic Camera Calibration" page; Bonn's dataset page).
CALIBRATION = {"freiburg1": (517.3, 516.5, 318.6, 255.3), "freiburg2": (520.9, 521.0, 325.1, 249.7),
               "freiburg3": (535.4, 539.2, 320.1, 247.6), "bonn": (542.822841, 542.576870, 315.593520, 237.756098)}


def is_sequence(path: Path) -> bool:
    return all((path / name).is_file() for name in LISTS)


def _detect(path: Path) -> bool:
    return path.is_dir() and (is_sequence(path) or any(is_sequence(p) for p in path.iterdir() if p.is_dir()))


def calibration(folder: Path, intrinsics) -> np.ndarray | None:
    """The sequence's intrinsics (3,3): as given, else intrinsics.txt, else by the folder's name, else None."""
    # folder is imported here, not above, so that this format registers (and is detected) before it
    from .folder import read_intrinsics_txt

    if isinstance(intrinsics, (str, Path)):
        return read_intrinsics_txt(Path(intrinsics))
    if intrinsics is not None:
        if len(intrinsics) != 4:
            raise DepthforgeError(f"tum: intrinsics must be [fx, fy, cx, cy], got {intrinsics!r}")
        return intrinsics_matrix(*intrinsics)
    if (folder / "intrinsics.txt").is_file():
        return read_intrinsics_txt(folder / "intrinsics.txt")
    key = next((k for k in CALIBRATION if k in folder.name.lower()), None)
    return intrinsics_matrix(*CALIBRATION[key]) if key else None


@register("tum", detect=_detect)
class TumRGBD(Dataset):
    """TUM RGB-D / Bonn RGB-D Dynamic sequences (see the module docstring). Options: ``max_difference``
    (seconds, default 0.02 as associate.py), ``intrinsics``, ``stride`` (every n-th frame), ``max_frames`` (per
    clip). ``sequences()`` gives each sequence's frames in time order."""

    def __init__(self, root: str, split: str = "test", intrinsics=None, max_difference: float = 0.02,
                 stride: int = 1, max_frames: int | None = None):
        base = Path(root)
        folders = [base] if is_sequence(base) else sorted(p for p in base.iterdir() if p.is_dir() and is_sequence(p))
        if not folders:
            raise DepthforgeError(f"{base}: no TUM RGB-D sequence (rgb.txt and depth.txt) found")
        if int(stride) < 1 or (max_frames is not None and int(max_frames) < 1):
            raise DepthforgeError(f"tum: stride and max_frames must be >= 1, got {stride}, {max_frames}")
        self.items: list[tuple[Path, Path, np.ndarray | None, np.ndarray | None, str]] = []
        self.clips: dict[str, list[int]] = {}
        for folder in folders:
            frames = self._frames(folder, calibration(folder, intrinsics), float(max_difference))
            frames = frames[::int(stride)][:max_frames]
            start = len(self.items)
            self.items += frames
            self.clips[folder.name] = list(range(start, len(self.items)))

    @staticmethod
    def _frames(folder: Path, k, max_difference: float) -> list:
        rgb = read_stamped(folder / "rgb.txt", 1)
        depth = read_stamped(folder / "depth.txt", 1)
        pairs = associate([r[0] for r in rgb], [d[0] for d in depth], max_difference)
        poses: dict[int, np.ndarray] = {}
        gt_file = folder / "groundtruth.txt"
        if gt_file.is_file():
            gt = read_stamped(gt_file, 7)
            matched = associate([rgb[i][0] for i, _ in pairs], [g[0] for g in gt], max_difference)
            poses = {pairs[i][0]: parse_pose(gt[j][1], f"{gt_file}:{gt[j][2]}") for i, j in matched}
            if len(poses) < len(pairs):
                log.info("%s: %d of %d frames have no ground-truth pose within %g s and are left out", folder,
                         len(pairs) - len(poses), len(pairs), max_difference)
            pairs = [(i, j) for i, j in pairs if i in poses]
        return [(folder / rgb[i][1][0], folder / depth[j][1][0], k, poses.get(i),
                 f"{folder.name}-{rgb[i][0]:.6f}") for i, j in pairs]

    def sequences(self) -> dict[str, list[int]]:
        return {name: list(ix) for name, ix in self.clips.items() if ix}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        rgb, depth_path, k, pose, name = self.items[i]
        image = read_image(rgb)
        depth = read_depth(depth_path, "tum5000")
        check_same_size(depth_path, image, depth)
        return make_sample(image, depth, name, k, pose)


__all__ = ["TumRGBD", "CALIBRATION"]
