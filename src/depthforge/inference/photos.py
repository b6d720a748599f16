"""``depthforge predict`` for photos and folders of them (videos and webcams: ``video.py``); the files are
rendered by ``results.result_files``, as the web service's.

Per image it writes NAME_color.png (plasma, near = bright), the depth as a 16-bit PNG, NAME.npy (float32
metres), with ground truth the seed's panel NAME_panel.png (image | prediction | ground truth | error, titled,
with colour bars in metres and AbsRel/δ1: ``viz.panels``), and with
``--ply`` a coloured point cloud NAME.ply. The 16-bit PNG is NAME_depth.png in millimetres when the model's
``max_depth`` fits (up to 65.535 m), else NAME_depth_kitti256.png in metres x 256 (KITTI's encoding, up to
256 m, e.g. the KITTI recipe's 80 m); read it back with ``--gt-encoding mm`` or ``kitti256`` respectively.
Point clouds use ``--intrinsics``, else a dataset folder's ``intrinsics.txt`` (rgb/ layout), else the model's
estimate of the camera (a model whose contract has ``camera``, e.g. Depth Pro), else a 60° field of view; a log
line says which. ``--prompt-depth`` gives a model that takes one its depth prompt (``inference.prompt``).
"""
from __future__ import annotations

import glob
import logging
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..data.folder import FolderDataset, rgb_dir
from ..data.io import check_regular, is_image_file, read_depth, read_image
from ..encode import depth_png_name, png16_encoding
from ..files import write_bytes
from ..data.sample import check_same_size
from ..errors import DepthforgeError
from .results import result_files

log = logging.getLogger(__name__)


OUTPUT_SUFFIXES = ("_color.png", "_panel.png", "_depth.png", "_depth_kitti256.png")  # the images written here


class Item(NamedTuple):
    image: Path
    gt: Path | None = None  # ground-truth depth found beside it (dataset folder)
    intrinsics: np.ndarray | None = None  # (3,3) from the dataset folder's intrinsics.txt


def collect_inputs(inputs: list[str], exclude: str | os.PathLike | None = None) -> list[Item]:
    """Images to predict, each file once. A dataset folder (rgb/ + depth/ + intrinsics.txt, read by
    ``data.folder``) brings each image's ground truth and the camera; a single file or a plain folder brings
    neither. What a folder holds besides images (other files, named pipes, devices, broken links, symlink loops)
    is skipped with a warning, and so are the pictures this command writes, found in ``exclude`` (the output
    folder: a second run into the same folder must not take its own outputs for photos). A file given twice, by
    any spelling or through a link, is predicted once."""
    skip = Path(os.path.realpath(exclude)) if exclude is not None else None

    def ours(f: Path) -> bool:  # an output of an earlier run into the same folder
        return skip is not None and Path(os.path.realpath(f)).parent == skip and f.name.endswith(OUTPUT_SUFFIXES)

    items: list[Item] = []
    for arg in inputs:
        path = Path(arg)
        if not path.is_dir():  # is_dir() is False for a symlink loop too, which check_regular names
            check_regular(path)
            items.append(Item(path))
            continue
        rgb = rgb_dir(path)
        if rgb is not None:
            for f in sorted(rgb.iterdir()):  # the dataset reader lists the images; a pipe among them fails to read
                if f.is_file() and not is_image_file(f):
                    log.warning("%s: not an image, skipped", f)
            ds = FolderDataset(root=str(path), split="")
            # a depth map that is there but no regular file (a pipe, a broken link) is an error for its image
            found = [Item(r, d if d is not None and os.path.lexists(d) else None, ds.intrinsics)
                     for r, d, _ in ds.items]
        else:
            found = []
            for f in sorted(path.iterdir()):
                image = _regular_image(f)
                if image:
                    found.append(Item(f))
                elif image is False:
                    log.warning("%s: not an image, skipped", f)
        items += [i for i in found if not ours(i.image)]
    return distinct(items, key=lambda item: item.image)


def _regular_image(f: Path) -> bool | None:
    """True for a regular image file, None for a folder, False for anything else; warns of what cannot be
    read at all (a broken link, a symlink loop), and never opens the file (a named pipe would block)."""
    try:
        mode = os.stat(f).st_mode
    except OSError as e:
        log.warning("%s: cannot read (%s), skipped", f, e.strerror or e)
        return None
    if stat.S_ISDIR(mode):
        return None
    if not stat.S_ISREG(mode):
        log.warning("%s: not a regular file, skipped", f)
        return None
    return is_image_file(f)


def distinct(inputs: list, key=lambda x: x) -> list:
    """``inputs`` with repeats of one file dropped (the same real path, however spelled); warns how many."""
    seen: dict[str, Any] = {}
    for x in inputs:
        seen.setdefault(os.path.realpath(key(x)), x)
    if len(seen) < len(inputs):
        log.warning("%d input(s) given more than once: each file is predicted once", len(inputs) - len(seen))
    return list(seen.values())


def output_names(paths: list[Path]) -> list[str]:
    """A distinct output name per input, always a plain file name (never a path): its stem, or where stems
    collide (``a.jpg``/``a.png``, or the same name in two folders) enough of its folders to tell them apart
    (``a_jpg``, ``left_a_jpg``); the same path given twice gets ``_1``, ``_2`` (``distinct`` drops those)."""
    names = [Path(p).stem for p in paths]
    folders = [Path(os.path.abspath(p)).parent.parts[1:] for p in paths]  # [1:]: never the root ('/', 'C:\\')
    for depth in range(1 + max((len(f) for f in folders), default=0)):
        dup = {n for n in names if names.count(n) > 1}
        if not dup:
            return names
        names = [_tail(Path(p), f, depth) if n in dup else n for n, p, f in zip(names, paths, folders)]
    taken, counts = set(names), Counter(names)
    for i, n in enumerate(names):
        if counts[n] > 1:
            k = 1
            while f"{n}_{k}" in taken:
                k += 1
            names[i] = f"{n}_{k}"
            taken.add(names[i])
    return names


def _tail(path: Path, folders: tuple[str, ...], depth: int) -> str:
    """``stem_ext`` preceded by the last ``depth`` of ``folders``."""
    return "_".join([*folders[max(0, len(folders) - depth):], path.stem, path.suffix.lstrip(".")]) if depth else \
        f"{path.stem}_{path.suffix.lstrip('.')}"


def _gt_for(image: Path, auto: Path | None, gt: str | None) -> Path | None:
    if gt is None:
        return auto
    g = Path(gt)
    if g.is_dir():
        return next((p for p in g.glob(f"{glob.escape(image.stem)}.*")), None)
    return g


def predict_images(predictor, items: list[Item], out: Path, gt: str | None = None, gt_encoding: str = "mm",
                   ply: bool = False, intrinsics: np.ndarray | None = None, progress: bool = True,
                   prompt: str | None = None) -> tuple[int, int]:
    """Predict and write every output; returns (written, failed). A bad file costs one warning line and writes
    nothing for its image: every input of an image (photo, ground truth, camera, prompt) is read and checked, and
    every output encoded, before its first file is written.

    ``items``: from ``collect_inputs`` (or (image, gt[, intrinsics]) tuples); ``intrinsics`` (3,3), when
    given, replaces each item's own for ``ply``. ``prompt``: a depth prompt file, or a folder of them matched by
    file stem (``inference.prompt``)."""
    from .prompt import fit_prompt, read_prompt

    from tqdm import tqdm

    from ..viz.panels import panel

    encoding = png16_encoding(predictor.max_depth)
    items = [Item(*item) for item in items]
    done = failed = 0
    names = output_names([item.image for item in items])
    for item, name in tqdm(list(zip(items, names)), desc="predicting", unit="img",
                           disable=not progress or len(items) < 2):
        try:
            image = read_image(item.image)
            gt_path = _gt_for(item.image, item.gt, gt)
            gt_depth = None
            if gt_path is not None:
                gt_depth = read_depth(gt_path, gt_encoding)
                check_same_size(gt_path, image, gt_depth)
            depth_prompt = None
            if prompt is not None:
                prompt_path = _gt_for(item.image, None, prompt)
                if prompt_path is None:
                    raise DepthforgeError(f"{item.image}: no depth prompt named {item.image.stem}.* in {prompt}")
                depth_prompt = fit_prompt(read_prompt(prompt_path), image.shape[:2], str(prompt_path))
            result = predictor.predict(image, prompt=depth_prompt)
            depth = result.depth
            k = item.intrinsics if intrinsics is None else intrinsics
            if ply and k is not None:
                log.info("%s: point cloud with the given camera intrinsics (fx %.1f px)", item.image, k[0][0])
            elif ply and result.intrinsics is not None:
                k = result.intrinsics
                log.info("%s: point cloud with the model's estimate of the camera: horizontal field of view "
                         "%.1f°, fx = %.1f, fy = %.1f px", item.image, result.fov, k[0, 0], k[1, 1])
            rendered = result_files(depth, encoding, image, ply, k)
            names = {"color.png": f"{name}_color.png", "depth.png": depth_png_name(f"{name}_depth", encoding),
                     "depth.npy": f"{name}.npy", "cloud.ply": f"{name}.ply"}
            files = {names[key]: data for key, data in rendered.items()}
            if gt_depth is not None:
                files[f"{name}_panel.png"] = panel(depth, image, gt_depth, item.image.name)
            for file, data in files.items():
                write_bytes(out / file, data)
            done += 1
        except DepthforgeError as e:
            log.warning("%s", e)
            failed += 1
    return done, failed
