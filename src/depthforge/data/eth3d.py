"""ETH3D high-resolution multi-view benchmark (Schöps et al., CVPR 2017): DSLR photos with laser-scanned depth,
read as Marigold evaluates it zero-shot (prs-eth/Marigold ``src/dataset/eth3d_dataset.py``,
``config/dataset_depth/data_eth3d.yaml``, ``data_split/eth3d_depth/eth3d_filename_list.txt``: 454 images).

Layout (Marigold's ``eth3d.tar`` extracted; its list's paths are relative to this root)::

    ROOT/rgb/<scene>/images/dslr_images/DSC_0219.JPG
    ROOT/depth/<scene>_dslr_depth/<scene>/ground_truth_depth/dslr_images/DSC_0219.JPG

The depth "JPG" is no JPEG: it is a headerless little-endian float32 raster of the photo's size (6048x4032),
metres, ``inf`` where the scan has no return (ETH3D's documentation, "image formats"). The official per-scene
downloads extracted side by side (``ROOT/<scene>/images/dslr_images[_undistorted]/`` with
``ROOT/<scene>/ground_truth_depth/dslr_images/``) are read too. A Marigold list file in ROOT (or the option
``lists``) fixes the set and its order; without one every depth map found is paired with its photo, sorted.

Photos from ``images/dslr_images_undistorted/`` get their intrinsics and pose from the scene's
``dslr_calibration_undistorted/{cameras,images}.txt`` (COLMAP text: a PINHOLE camera ``fx fy cx cy`` with pixel
centres at +0.5, moved to 0-based centres here; per image the world-to-camera rotation as a quaternion
``qw qx qy qz`` and translation, inverted to camera-to-world).

Protocol ``eth3d``: the full image, 1e-5 < gt < inf, as Marigold's dataset class. Deviations: Marigold hard-codes
6048x4032; here the raster's size is the photo's (read from its header), and the file size must match it exactly.
Marigold's archive has no calibration, so its samples have no intrinsics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import image_size, read_columns, read_float32_raw, read_image
from .sample import check_same_size, intrinsics_matrix, make_sample

LIST_NAME = "eth3d_filename_list.txt"
MARIGOLD_DEPTH = "depth/*_dslr_depth/*/ground_truth_depth/dslr_images/*"
OFFICIAL_DEPTH = "*/ground_truth_depth/dslr_images/*"


def _official_image(depth: Path) -> Path:
    scene = depth.parents[2]
    for sub in ("dslr_images_undistorted", "dslr_images"):
        if (scene / "images" / sub / depth.name).is_file():
            return scene / "images" / sub / depth.name
    return scene / "images" / "dslr_images_undistorted" / depth.name


def find_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(photo, depth) pairs under ``root`` in either layout (see the module docstring), sorted."""
    pairs = []
    for depth in sorted(root.glob(MARIGOLD_DEPTH)):
        scene = depth.parents[2].name
        pairs.append((root / "rgb" / scene / "images" / "dslr_images" / depth.name, depth))
    for depth in sorted(root.glob(OFFICIAL_DEPTH)):
        pairs.append((_official_image(depth), depth))
    return pairs


def _quaternion_matrix(qw: float, qx: float, qy: float, qz: float) -> np.ndarray:
    w, x, y, z = np.array([qw, qx, qy, qz]) / np.linalg.norm([qw, qx, qy, qz])
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def read_calibration(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """COLMAP text ``cameras.txt`` + ``images.txt`` of an ETH3D scene -> {image file name: (3x3 intrinsics in
    0-based pixel centres, 4x4 camera-to-world)}; PINHOLE cameras only. Empty when absent or unreadable."""
    try:
        cams = {}
        for line in (folder / "cameras.txt").read_text().splitlines():
            f = line.split()
            if f and not f[0].startswith("#") and len(f) >= 8 and f[1] == "PINHOLE":
                fx, fy, cx, cy = map(float, f[4:8])
                cams[f[0]] = intrinsics_matrix(fx, fy, cx - 0.5, cy - 0.5)
        out = {}
        for line in (folder / "images.txt").read_text().splitlines():
            f = line.split()
            # an image line has 10 fields ending in a file name; its 2-D point lines come in threes of numbers
            if len(f) != 10 or f[0].startswith("#") or f[8] not in cams:
                continue
            world_to_cam = np.eye(4)
            world_to_cam[:3, :3] = _quaternion_matrix(*map(float, f[1:5]))
            world_to_cam[:3, 3] = [float(v) for v in f[5:8]]
            out[Path(f[9]).name] = (cams[f[8]], np.linalg.inv(world_to_cam))
        return out
    except (OSError, ValueError, np.linalg.LinAlgError):
        return {}


def _detect(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / LIST_NAME).is_file():
        return True
    return next(iter(path.glob(MARIGOLD_DEPTH)), None) is not None or \
        next(iter(path.glob(OFFICIAL_DEPTH)), None) is not None


@register("eth3d", detect=_detect, protocols={"eth3d": ("none", 1e-5, float("inf"))},
          benchmark={"folder": "eth3d", "split": "test"})
class ETH3D(Dataset):
    """ETH3D DSLR images with depth (see the module docstring). Options: ``root``; ``lists`` (a Marigold file list;
    default ROOT/eth3d_filename_list.txt when present); ``split``: only ``test``."""

    protocol = "eth3d"

    def __init__(self, split: str = "test", root: str | None = None, lists: str | None = None):
        if root is None:
            raise DepthforgeError("eth3d: the option 'root' is required")
        if split != "test":
            raise DepthforgeError(f"eth3d: unknown split {split!r}; ETH3D is evaluated as 'test' only")
        self.root = Path(root)
        listed = Path(lists) if lists else self.root / LIST_NAME
        if lists or listed.is_file():
            self.pairs = [(self.root / r[0], self.root / r[1]) for r in read_columns(listed)]
        else:
            self.pairs = find_pairs(self.root)
        if not self.pairs:
            raise DepthforgeError(f"{self.root}: no ETH3D depth maps found (looked for {MARIGOLD_DEPTH} and "
                                  f"{OFFICIAL_DEPTH})")
        self._calib: dict[Path, dict] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def _camera(self, rgb: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
        if rgb.parent.name != "dslr_images_undistorted":  # the calibration is of the undistorted photos only
            return None, None
        scene = rgb.parents[2]
        if scene not in self._calib:
            self._calib[scene] = read_calibration(scene / "dslr_calibration_undistorted")
        return self._calib[scene].get(rgb.name, (None, None))

    def __getitem__(self, i: int) -> dict:
        rgb, dep = self.pairs[i]
        h, w = image_size(rgb)
        depth = read_float32_raw(dep, h, w)  # size checked against the photo before the image is decoded
        image = read_image(rgb)
        check_same_size(dep, image, depth)  # a photo turned by its EXIF orientation would no longer match
        k, pose = self._camera(rgb)
        return make_sample(image, depth, f"{rgb.parents[2].name}_{rgb.stem}", k, pose)
