"""Hypersim (Roberts et al., ICCV 2021): photorealistic synthetic indoor scenes, read from the raw HDF5 download
and converted as Marigold's preprocessing converts it (prs-eth/Marigold
``script/depth/dataset_preprocess/hypersim/{preprocess_hypersim,hypersim_util}.py``; its evaluation range from
``src/dataset/hypersim_dataset.py``).

Layout (apple/ml-hypersim's download script; ROOT holds the scenes)::

    ROOT/metadata_images_split_scene_v1.csv     optional: ml-hypersim's split (scene_name, camera_name, frame_id,
                                                included_in_public_release, split_partition_name)
    ROOT/ai_001_010/images/scene_cam_00_final_hdf5/frame.0000.color.hdf5               linear HDR RGB (768,1024,3)
    ROOT/ai_001_010/images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5     distance to the camera centre
    ROOT/ai_001_010/images/scene_cam_00_geometry_hdf5/frame.0000.render_entity_id.hdf5 -1 where nothing was hit
    ROOT/ai_001_010/_detail/metadata_scene.csv                 optional: meters_per_asset_unit
    ROOT/ai_001_010/_detail/cam_00/camera_keyframe_{orientations,positions}.hdf5       optional: the camera path

Conversion (each array is the HDF5 dataset ``dataset``), as Marigold's preprocessing:

- depth: Hypersim stores the Euclidean distance from the camera centre; planar depth is
  distance · f / ‖(u − (W−1)/2, v − (H−1)/2, f)‖ with f = 886.81 px at 1024 wide (a 60° horizontal field of
  view; scaled with the width for other sizes); invalid where render_entity_id == −1 or the distance is not finite;
- image: ml-hypersim's tone map: scale so that the 90th percentile of the brightness 0.3R + 0.59G + 0.11B over
  valid pixels becomes 0.8 after the gamma 1/2.2, then (scale·rgb)^(1/2.2) clipped to [0, 1], and quantised to
  8 bits as Marigold's PNGs are (⌊255·v⌋/255);
- intrinsics: f, f, (W−1)/2, (H−1)/2; pose (when ``_detail`` is there): the keyframe of ``frame_id``, Hypersim's
  camera (y up, z backward) turned to x right, y down, z forward, positions in metres (meters_per_asset_unit).

Frames: split ``test``/``val``/``train`` from the split CSV (public-release rows); Marigold's filtered lists
(``filename_list_<split>_filtered.txt``, rows like ``ai_001_010/rgb_cam_00_fr0000.png ...``) in ROOT or as the
option ``lists`` select their frames instead. Without either, every frame found is read.

Protocol ``hypersim``: the full image, 1e-5 < gt < 65 m (Marigold's Hypersim range). Deviation: Hypersim's
per-scene tilt-shift cameras (``metadata_camera_parameters.csv``) are ignored, as Marigold ignores them.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import file_error, read_columns, read_h5
from .sample import intrinsics_matrix, make_sample

SPLIT_CSV = "metadata_images_split_scene_v1.csv"
FOCAL_1024 = 886.81  # px at 1024 wide: Hypersim's 60° horizontal field of view
SPLITS = ("train", "val", "test")
_COLOR = re.compile(r"frame\.(\d+)\.color\.hdf5$")
_MARIGOLD_ROW = re.compile(r"(ai_\d+_\d+)/rgb_(cam_\d+)_fr(\d+)\.png$")


def planar_depth(distance: np.ndarray, focal: float) -> np.ndarray:
    """Distance from the camera centre (H,W) -> depth along the optical axis, for a centred pinhole of ``focal``
    pixels."""
    h, w = distance.shape
    u = np.arange(w, dtype=np.float64) - (w - 1) / 2
    v = np.arange(h, dtype=np.float64) - (h - 1) / 2
    ray = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2 + focal**2)
    return (distance * (focal / ray)).astype(np.float32)


def tone_map(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear HDR RGB (H,W,3) -> display RGB in [0,1] (see the module docstring), quantised to 8 bits."""
    rgb = rgb.astype(np.float64)
    scale = 1.0
    if valid.any():
        brightness = 0.3 * rgb[..., 0] + 0.59 * rgb[..., 1] + 0.11 * rgb[..., 2]
        p90 = np.percentile(brightness[valid], 90)
        scale = 0.0 if p90 < 1e-4 else 0.8**2.2 / p90
    out = np.clip(np.power(np.maximum(scale * rgb, 0), 1 / 2.2), 0, 1)
    return (np.floor(out * 255) / 255).astype(np.float32)


def _frames_from_csv(path: Path, split: str) -> list[tuple[str, str, int]]:
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        return [(r["scene_name"], r["camera_name"], int(r["frame_id"])) for r in rows
                if r.get("included_in_public_release", "True").strip().lower() == "true"
                and r["split_partition_name"] == split]
    except (OSError, KeyError, ValueError, csv.Error) as e:
        raise DepthforgeError(f"{path}: not a readable Hypersim split file ({e})") from None


def _frames_from_list(path: Path) -> list[tuple[str, str, int]]:
    out = []
    for row in read_columns(path, 1):
        m = _MARIGOLD_ROW.search(row[0])
        if m is None:
            raise DepthforgeError(f"{path}: {row[0]!r} is not a Marigold Hypersim row "
                                  "(ai_XXX_XXX/rgb_cam_XX_frXXXX.png)")
        out.append((m[1], m[2], int(m[3])))
    return out


def _frames_found(root: Path) -> list[tuple[str, str, int]]:
    out = []
    for color in root.glob("*/images/scene_cam_*_final_hdf5/frame.*.color.hdf5"):
        m = _COLOR.search(color.name)
        if m:
            out.append((color.parents[2].name, color.parent.name[len("scene_"):-len("_final_hdf5")], int(m[1])))
    return sorted(out)


def _detect(path: Path) -> bool:
    return path.is_dir() and ((path / SPLIT_CSV).is_file() or
                              next(iter(path.glob("*/images/scene_cam_*_geometry_hdf5")), None) is not None)


def _meters_per_unit(scene: Path) -> float | None:
    try:
        for row in csv.reader((scene / "_detail" / "metadata_scene.csv").read_text().splitlines()):
            if len(row) == 2 and row[0].strip() == "meters_per_asset_unit":
                return float(row[1])
    except (OSError, ValueError, csv.Error):
        return None
    return None


# Hypersim's camera looks down −z with y up; depthforge's (as OpenCV's) looks down +z with y down.
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def read_pose(scene: Path, camera: str, frame: int) -> np.ndarray | None:
    """Camera-to-world 4x4 (metres, x right, y down, z forward) of one frame, or None without ``_detail``."""
    folder = scene / "_detail" / camera
    unit = _meters_per_unit(scene)
    if unit is None or not (folder / "camera_keyframe_positions.hdf5").is_file():
        return None
    rot = read_h5(folder / "camera_keyframe_orientations.hdf5")
    pos = read_h5(folder / "camera_keyframe_positions.hdf5")
    if rot.ndim != 3 or rot.shape[1:] != (3, 3) or pos.shape[1:] != (3,) or not 0 <= frame < min(len(rot), len(pos)):
        raise file_error(f"{folder}: no keyframe {frame} in camera_keyframe_*.hdf5 (shapes {rot.shape}, "
                         f"{pos.shape})", "unreadable")
    pose = np.eye(4)
    pose[:3, :3] = rot[frame] @ _FLIP_YZ
    pose[:3, 3] = pos[frame] * unit
    return pose


@register("hypersim", detect=_detect, protocols={"hypersim": ("none", 1e-5, 65.0)},
          benchmark={"folder": "hypersim", "split": "test"})
class Hypersim(Dataset):
    """Hypersim from its raw HDF5 files (see the module docstring). Options: ``root``; ``split``
    train|val|test; ``lists`` (a Marigold filtered list)."""

    protocol = "hypersim"

    def __init__(self, split: str = "test", root: str | None = None, lists: str | None = None):
        if root is None:
            raise DepthforgeError("hypersim: the option 'root' is required")
        if split not in SPLITS:
            raise DepthforgeError(f"hypersim: unknown split {split!r}; known: {', '.join(SPLITS)}")
        self.root = Path(root)
        marigold = self.root / f"filename_list_{split}_filtered.txt"
        if lists or marigold.is_file():
            self.frames = _frames_from_list(Path(lists) if lists else marigold)
        elif (self.root / SPLIT_CSV).is_file():
            self.frames = _frames_from_csv(self.root / SPLIT_CSV, split)
        else:
            self.frames = _frames_found(self.root)
        if not self.frames:
            raise DepthforgeError(f"{self.root}: no Hypersim frames of split {split!r} found")

    def __len__(self) -> int:
        return len(self.frames)

    def sequences(self) -> dict[str, list[int]]:
        """Camera trajectory (``<scene>_<camera>``) -> its sample indices in frame order."""
        order = sorted(range(len(self.frames)), key=lambda i: self.frames[i])
        out: dict[str, list[int]] = {}
        for i in order:
            out.setdefault(f"{self.frames[i][0]}_{self.frames[i][1]}", []).append(i)
        return out

    def __getitem__(self, i: int) -> dict:
        scene, cam, frame = self.frames[i]
        images = self.root / scene / "images"
        geometry = images / f"scene_{cam}_geometry_hdf5"
        distance = read_h5(geometry / f"frame.{frame:04d}.depth_meters.hdf5").astype(np.float64)
        entity = read_h5(geometry / f"frame.{frame:04d}.render_entity_id.hdf5")
        color_path = images / f"scene_{cam}_final_hdf5" / f"frame.{frame:04d}.color.hdf5"
        rgb = read_h5(color_path)
        if distance.ndim != 2 or entity.shape != distance.shape or rgb.shape != (*distance.shape, 3):
            raise file_error(f"{color_path}: color {rgb.shape}, distance {distance.shape} and render_entity_id "
                             f"{entity.shape} do not match", "wrong size")
        valid = (entity != -1) & np.isfinite(distance)
        h, w = distance.shape
        focal = FOCAL_1024 * w / 1024
        depth = np.where(valid, planar_depth(np.where(valid, distance, 0), focal), 0).astype(np.float32)
        k = intrinsics_matrix(focal, focal, (w - 1) / 2, (h - 1) / 2)
        pose = read_pose(self.root / scene, cam, frame)
        return make_sample(tone_map(rgb, valid), depth, f"{scene}_{cam}_{frame:04d}", k, pose)
