"""``depthforge predict``: depth for photos, folders, videos and webcams.

Per image it writes NAME_color.png (plasma, near = bright), the depth as a 16-bit PNG, NAME.npy (float32
metres), with ground truth the seed's panel NAME_panel.png (prediction | ground truth | image), and with
``--ply`` a coloured point cloud NAME.ply. The 16-bit PNG is NAME_depth.png in millimetres when the model's
``max_depth`` fits (up to 65.535 m), else NAME_depth_kitti256.png in metres x 256 (KITTI's encoding, up to
256 m, e.g. the KITTI recipe's 80 m); read it back with ``--gt-encoding mm`` or ``kitti256`` respectively.
Point clouds use ``--intrinsics``, else a dataset folder's ``intrinsics.txt`` (rgb/ layout), else a 60° field
of view.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..data.folder import _rgb_dir, read_intrinsics_txt
from ..data.io import DEPTH_SUFFIXES, is_image_file, read_depth, read_image
from ..files import PNG16_SCALES, depth_png_name, png16_encoding, write_depth_png, write_image, write_npy
from ..data.sample import check_same_size
from ..errors import DepthforgeError

log = logging.getLogger(__name__)


class Item(NamedTuple):
    image: Path
    gt: Path | None = None  # ground-truth depth found beside it (dataset folder)
    intrinsics: np.ndarray | None = None  # (3,3) from the dataset folder's intrinsics.txt


def collect_inputs(inputs: list[str]) -> list[Item]:
    """Images to predict. A dataset folder (rgb/, as ``data/folder.py``) brings its ``intrinsics.txt``, read
    once, and with depth/ each image's ground-truth depth (same stem); a single file or a flat folder brings
    neither. Non-image files in a folder are skipped with a warning."""
    items: list[Item] = []
    for arg in inputs:
        path = Path(arg)
        if path.is_file():
            items.append(Item(path))
            continue
        if not path.is_dir():
            raise DepthforgeError(f"{path}: no such file or folder")
        rgb, depth_dir, k = _rgb_dir(path), path / "depth", None
        depths: dict[str, Path] = {}
        if rgb is not None:
            if depth_dir.is_dir():
                depths = {p.stem: p for p in sorted(depth_dir.iterdir()) if p.suffix.lower() in DEPTH_SUFFIXES}
            if (path / "intrinsics.txt").is_file():
                k = read_intrinsics_txt(path / "intrinsics.txt")
        for f in sorted((rgb or path).iterdir()):
            if f.is_dir():
                continue
            if not is_image_file(f):
                log.warning("%s: not an image, skipped", f)
                continue
            items.append(Item(f, depths.get(f.stem), k))
    return items


def _gt_for(image: Path, auto: Path | None, gt: str | None) -> Path | None:
    if gt is None:
        return auto
    g = Path(gt)
    if g.is_dir():
        return next((p for p in g.glob(f"{image.stem}.*")), None)
    return g


def predict_images(predictor, items: list[Item], out: Path, gt: str | None = None, gt_encoding: str = "mm",
                   ply: bool = False, intrinsics: np.ndarray | None = None, progress: bool = True) -> tuple[int, int]:
    """Predict and write every output; returns (written, failed). A bad file costs one warning line.

    ``items``: from ``collect_inputs`` (or (image, gt[, intrinsics]) tuples); ``intrinsics`` (3,3), when
    given, replaces each item's own for ``ply``."""
    from tqdm import tqdm

    from ..viz.pointcloud import save_ply
    from ..viz.colors import colorize
    from ..viz.panels import panel

    encoding = png16_encoding(predictor.max_depth)
    items = [Item(*item) for item in items]
    done = failed = 0
    for item in tqdm(items, desc="predicting", unit="img", disable=not progress or len(items) < 2):
        try:
            image = read_image(item.image)
            depth = predictor(image)
            name = item.image.stem
            write_image(out / f"{name}_color.png", colorize(depth))
            write_depth_png(out / depth_png_name(f"{name}_depth", encoding), depth, PNG16_SCALES[encoding])
            write_npy(out / f"{name}.npy", depth)
            gt_path = _gt_for(item.image, item.gt, gt)
            if gt_path is not None:
                gt_depth = read_depth(gt_path, gt_encoding)
                check_same_size(gt_path, image, gt_depth)
                write_image(out / f"{name}_panel.png", panel(depth, image, gt_depth))
            if ply:
                save_ply(out / f"{name}.ply", depth, image, item.intrinsics if intrinsics is None else intrinsics)
            done += 1
        except DepthforgeError as e:
            log.warning("%s", e)
            failed += 1
    return done, failed
