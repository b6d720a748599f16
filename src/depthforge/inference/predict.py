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
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..data.folder import FolderDataset, _rgb_dir
from ..data.io import is_image_file, read_depth, read_image
from ..files import PNG16_SCALES, depth_png_name, png16_encoding, write_depth_png, write_image, write_npy
from ..data.sample import check_same_size
from ..errors import DepthforgeError

log = logging.getLogger(__name__)


OUTPUT_SUFFIXES = ("_color.png", "_panel.png", "_depth.png", "_depth_kitti256.png")  # the images written here


class Item(NamedTuple):
    image: Path
    gt: Path | None = None  # ground-truth depth found beside it (dataset folder)
    intrinsics: np.ndarray | None = None  # (3,3) from the dataset folder's intrinsics.txt


def collect_inputs(inputs: list[str], exclude: str | os.PathLike | None = None) -> list[Item]:
    """Images to predict. A dataset folder (rgb/ + depth/ + intrinsics.txt, read by ``data.folder``) brings each
    image's ground truth and the camera; a single file or a plain folder brings neither. Non-image files in a
    folder are skipped with a warning, and so are the pictures this command writes, found in ``exclude`` (the
    output folder: a second run into the same folder must not take its own outputs for photos)."""
    skip = Path(exclude).resolve() if exclude is not None else None

    def ours(f: Path) -> bool:  # an output of an earlier run into the same folder
        return skip is not None and f.resolve().parent == skip and f.name.endswith(OUTPUT_SUFFIXES)

    items: list[Item] = []
    for arg in inputs:
        path = Path(arg)
        if path.is_file():
            items.append(Item(path))
            continue
        if not path.is_dir():
            raise DepthforgeError(f"{path}: no such file or folder")
        rgb = _rgb_dir(path)
        if rgb is not None:
            for f in sorted(rgb.iterdir()):
                if f.is_file() and not is_image_file(f):
                    log.warning("%s: not an image, skipped", f)
            ds = FolderDataset(root=str(path), split="")
            found = [Item(r, d if d is not None and d.is_file() else None, ds.intrinsics) for r, d, _ in ds.items]
        else:
            found = []
            for f in sorted(path.iterdir()):
                if f.is_dir():
                    continue
                if not is_image_file(f):
                    log.warning("%s: not an image, skipped", f)
                    continue
                found.append(Item(f))
        items += [i for i in found if not ours(i.image)]
    return items


def output_names(paths: list[Path]) -> list[str]:
    """A distinct output name per input: its stem, or where stems collide (``a.jpg``/``a.png``, or the same name
    in two folders) enough of its path to tell them apart (``a_jpg``, ``left_a_jpg``)."""
    names = [p.stem for p in paths]
    for depth in range(64):
        dup = {n for n in names if names.count(n) > 1}
        if not dup:
            return names
        names = [_tail(p, depth) if n in dup else n for n, p in zip(names, paths)]
    return [f"{n}_{i}" for i, n in enumerate(names)]  # the same file given twice


def _tail(path: Path, depth: int) -> str:
    """``stem_ext`` preceded by the last ``depth`` folder names."""
    folders = path.resolve().parent.parts
    return "_".join([*folders[len(folders) - depth:], path.stem, path.suffix.lstrip(".")]) if depth else \
        f"{path.stem}_{path.suffix.lstrip('.')}"


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
    names = output_names([item.image for item in items])
    for item, name in tqdm(list(zip(items, names)), desc="predicting", unit="img",
                           disable=not progress or len(items) < 2):
        try:
            image = read_image(item.image)
            depth = predictor(image)
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
