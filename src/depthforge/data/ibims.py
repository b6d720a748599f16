"""iBims-1 (Koch et al., ECCV-W 2018): 100 indoor 480x640 images with laser-scanned depth and the annotations that
the failure-mode metrics (``evaluation.failure``) need.

Layout (the official ``ibims1_core_mat`` download, read as T. Koch's evaluation script reads it): ``imagelist.txt``
names the images, one per line; each ``NAME.mat`` (MATLAB v5, ``scipy.io.loadmat``) holds a struct ``data`` with
``rgb`` (480x640x3 uint8), ``depth`` (metres, 0 = missing), ``edges`` (annotated depth boundaries), ``calib`` (3x3),
``mask_invalid`` and ``mask_transp`` (1 = usable pixel, 0 = invalid resp. transparent), and ``mask_wall`` /
``mask_table`` / ``mask_floor`` (plane labels: plane j where the mask is j+1) with ``mask_*_paras`` (one row per
plane, the unit normal at [4:7] in the frame x right, y forward, z up; empty when there is none).
The .mat files may sit beside the list or in ``ibims1_core_mat/`` under it (BS-Net's layout).

Sample dict (``make_sample`` plus the masks; everything collates for batch size 1, plane params also when empty):
- "depth": the script's ``depth·mask_valid`` with mask_valid = mask_invalid·mask_transp·(depth ≠ 0), so "valid"
  excludes invalid, transparent and missing pixels exactly as the script (the prediction's own zeros are excluded
  at evaluation);
- "intrinsics": [3,3] in 0-based pixel coordinates. ``calib`` is stored transposed (MATLAB's camera matrix
  convention): fx = calib[0,0], fy = calib[1,1], cx = calib[2,0], cy = calib[2,1], and the script back-projects
  with a 1-based pixel grid, so cx − 1 and cy − 1 here;
- "edges": [1,H,W] bool; "transparent": [1,H,W] bool (mask_transp == 0; no gt there, so metrics inside it are NaN);
- "plane_wall", "plane_table", "plane_floor": [1,H,W] int64 labels; "plane_*_params": [K,C] float32 (K ≥ 0; an
  empty MATLAB ``[]`` becomes [0,7]).

Protocol: the official script evaluates the full 480x640 image with NO depth cap (only gt ≠ 0, pred ≠ 0):
protocol ``ibims1-official``. Zero-shot tables in the ZoeDepth line (its dataset config for ibims) cap gt at 10 m and
use the Eigen crop: protocol ``ibims1-zoedepth``. protocol ``ibims1`` (the dataset's default; all three are
registered with it below) is the full image with a 10 m cap: no crop as the script, and a finite cap, which code
that normalises by the cap needs.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import file_error
from .sample import intrinsics_matrix, make_sample

IBIMS_SIZE = (480, 640)  # H, W
LIST_NAME = "imagelist.txt"
MAT_DIR = "ibims1_core_mat"
PLANES = ("wall", "table", "floor")
FIELDS = ("rgb", "depth", "edges", "calib", "mask_invalid", "mask_transp",
          *(f"mask_{p}" for p in PLANES), *(f"mask_{p}_paras" for p in PLANES))


def read_names(path: Path) -> list[str]:
    """imagelist.txt -> image names (blank lines skipped; a trailing .mat is dropped)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise DepthforgeError(f"{path}: unreadable ({e.strerror or e})") from None
    names = [n.strip() for n in lines if n.strip()]
    return [n[:-4] if n.lower().endswith(".mat") else n for n in names]


def _mat_dir(root: Path, names: list[str]) -> Path | None:
    """The folder holding the .mat files of ``names`` (root or root/ibims1_core_mat), judged by the first name."""
    for folder in (root, root / MAT_DIR):
        if names and (folder / f"{names[0]}.mat").is_file():
            return folder
    return None


def _detect(path: Path) -> bool:
    if path.is_file() and path.name == LIST_NAME:
        path = path.parent
    if not path.is_dir() or not (path / LIST_NAME).is_file():
        return False
    try:
        names = read_names(path / LIST_NAME)[:1]
    except DepthforgeError:
        return False
    return _mat_dir(path, names) is not None


def read_mat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """One iBims-1 NAME.mat -> {field: array} for every field in ``FIELDS``, read as the official script does
    (``loadmat(path)['data'][field][0][0]``). One-line DepthforgeError naming the file when it is missing,
    unreadable or lacks a field."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise file_error(f"{path}: file not found", "missing")
    try:
        data = scipy.io.loadmat(path)["data"]
        missing = [f for f in FIELDS if f not in (data.dtype.names or ())]
        if missing:
            raise file_error(f"{path}: no field {missing[0]!r} in the iBims-1 struct 'data'", "unreadable")
        return {f: np.asarray(data[f][0][0]) for f in FIELDS}
    except KeyError:
        raise file_error(f"{path}: no struct 'data' (not an iBims-1 .mat file)", "unreadable") from None
    except (OSError, ValueError, TypeError, IndexError, NotImplementedError, scipy.io.matlab.MatReadError) as e:
        raise file_error(f"{path}: not a readable iBims-1 .mat file ({e})", "unreadable") from None


def calib_intrinsics(calib: np.ndarray) -> np.ndarray:
    """iBims-1 ``calib`` (3x3, transposed camera matrix, 1-based principal point) -> 3x3 intrinsics in 0-based
    pixel coordinates (the convention of the rest of depthforge)."""
    c = np.asarray(calib, dtype=np.float64)
    return intrinsics_matrix(c[0, 0], c[1, 1], c[2, 0] - 1.0, c[2, 1] - 1.0)


def _params(p: np.ndarray) -> torch.Tensor:
    p = np.asarray(p, dtype=np.float32)
    p = p.reshape(-1, p.shape[-1]) if p.size else np.zeros((0, 7), np.float32)
    return torch.from_numpy(np.ascontiguousarray(p))


def _mask(m: np.ndarray, dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(m).astype(dtype)))[None]


def make_ibims_sample(raw: dict[str, np.ndarray], name: str, where: str = "") -> dict:
    """``read_mat``'s arrays -> sample dict (see the module docstring)."""
    rgb = raw["rgb"]
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise file_error(f"{where}: rgb has shape {rgb.shape}, expected HxWx3", "unreadable")
    h, w = rgb.shape[:2]
    for key in ("depth", "edges", "mask_invalid", "mask_transp", *(f"mask_{p}" for p in PLANES)):
        if raw[key].shape != (h, w):
            raise file_error(f"{where}: {key} is {raw[key].shape}, rgb is {h}x{w}", "wrong size")
    if raw["calib"].shape != (3, 3):
        raise file_error(f"{where}: calib has shape {raw['calib'].shape}, expected 3x3", "unreadable")
    image = rgb[..., :3].astype(np.float32)
    if rgb.dtype == np.uint8:
        image /= 255.0
    depth = np.asarray(raw["depth"], dtype=np.float32)
    depth = np.where(np.isfinite(depth), depth, 0)
    usable = (raw["mask_invalid"] != 0) & (raw["mask_transp"] != 0) & (depth != 0)
    sample = make_sample(image, np.where(usable, depth, 0).astype(np.float32), name,
                         calib_intrinsics(raw["calib"]))
    sample["edges"] = _mask(raw["edges"] != 0, bool)
    sample["transparent"] = _mask(raw["mask_transp"] == 0, bool)
    for p in PLANES:
        sample[f"plane_{p}"] = _mask(raw[f"mask_{p}"], np.int64)
        sample[f"plane_{p}_params"] = _params(raw[f"mask_{p}_paras"])
    return sample


# the full 480x640 image; the official script caps nothing, ZoeDepth's tables cap at 10 m with the Eigen crop
@register("ibims1", detect=_detect, protocols={"ibims1": ("none", 1e-3, 10.0),
                                               "ibims1-official": ("none", 1e-3, float("inf")),
                                               "ibims1-zoedepth": ("eigen", 1e-3, 10.0)},
          benchmark={"folder": "ibims1", "split": "test"})
class IBIMS1(Dataset):
    """iBims-1 (see the module docstring). Options: ``root`` (the folder holding imagelist.txt, or that file),
    ``split`` (only ``test``: iBims-1 is an evaluation set). Other keys (e.g. a config's ``size``) are ignored;
    samples stay at 480x640, and the masks are not meant to be resized (evaluate at native size)."""

    size = IBIMS_SIZE
    protocol = "ibims1"  # its default, the first of its registered protocols

    def __init__(self, split: str = "test", root: str | None = None):
        if root is None:
            raise DepthforgeError("ibims1: the option 'root' (the folder holding imagelist.txt) is required")
        if split not in ("test", "all"):
            raise DepthforgeError(f"ibims1: unknown split {split!r}; iBims-1 has only 'test'")
        path = Path(root)
        if path.is_file() and path.name == LIST_NAME:
            path = path.parent
        if not (path / LIST_NAME).is_file():
            raise DepthforgeError(f"{path}: no {LIST_NAME} (not an iBims-1 folder)")
        self.names = read_names(path / LIST_NAME)
        if not self.names:
            raise DepthforgeError(f"{path / LIST_NAME}: the list is empty")
        self.folder = _mat_dir(path, self.names) or path

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict:
        name = self.names[i]
        path = self.folder / f"{name}.mat"
        return make_ibims_sample(read_mat(path), name, str(path))
