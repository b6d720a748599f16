"""MoGe's processed evaluation sets (Wang et al., microsoft/MoGe ``docs/eval.md``): ten zero-shot benchmarks
(NYUv2, KITTI, ETH3D, iBims-1, GSO, Sintel, DDAD, DIODE, Spring, HAMMER) in one layout, the Hugging Face dataset
``Ruicheng/monocular-geometry-evaluation`` unzipped. Read as MoGe's ``moge/test/dataloader.py`` and
``moge/utils/io.py`` read it; the sets and which are metric from ``configs/eval/all_benchmarks.json``.

Layout (ROOT is MoGe's ``data/eval``, or one set's folder)::

    ROOT/<Set>/.index.txt                  one instance folder per line, relative to ROOT/<Set>
    ROOT/<Set>/<instance>/image.jpg
    ROOT/<Set>/<instance>/depth.png        16-bit, log-encoded: 0 unknown, 65535 infinite, else
                                           v = (d − 1)/65533, depth = near^(1−v)·far^v (PNG text 'near', 'far';
                                           times 'unit' when the PNG has that legacy field)
    ROOT/<Set>/<instance>/meta.json        {"intrinsics": 3x3 normalised: fx, cx as fractions of the width, ...}

Valid depth is finite and > 0 (unknown and infinite are not), and at most 1000 times its 1st percentile (MoGe's
``drop_max_depth``). Intrinsics are turned into pixels of the image: fx·W, fy·H, cx·W − 0.5, cy·H − 0.5 (MoGe's UV
coordinates put the image's edges at 0 and 1). Samples carry ``subset`` (the set's name); ``subsets()`` gives each
set's indices and ``METRIC_SETS`` the sets whose depth is in metres (MoGe's ``depth_unit``; the others, GSO, Sintel
and Spring, are scale-free and cannot be scored with the ``metric`` protocol).

Protocol ``moge``: the full image, no range beyond the above (1e-5 < gt < inf). Deviation: MoGe warps each image to a
fixed size and field of view centred on the principal point before evaluating (``_process_instance``); here samples
stay at the files' native size, and the drop rule is applied there. ``segmentation.png`` (its local-geometry
metrics) is not read.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import file_error, open_pil, read_image
from .sample import check_same_size, make_sample

INDEX = ".index.txt"
SETS = ("NYUv2", "KITTI", "ETH3D", "iBims-1", "GSO", "Sintel", "DDAD", "DIODE", "Spring", "HAMMER")
METRIC_SETS = frozenset({"NYUv2", "KITTI", "ETH3D", "iBims-1", "DDAD", "DIODE", "HAMMER"})
DROP_MAX_DEPTH = 1000.0  # times the 1st percentile of the valid depths


def read_moge_depth(path: str | Path) -> np.ndarray:
    """MoGe's log-encoded 16-bit depth PNG -> float32 (H,W), NaN where unknown, inf where infinite."""
    with open_pil(path, what="depth map") as im:
        info = dict(im.info)
        im.load()
        raw = np.asarray(im)
    if raw.dtype not in (np.uint16, np.int32) or raw.ndim != 2:
        raise file_error(f"{path}: not a 16-bit single-channel PNG (got {raw.dtype}, shape {raw.shape})",
                         "unreadable")
    try:
        near, far = float(info["near"]), float(info["far"])
        unit = float(info.get("unit", 1.0))
    except (KeyError, ValueError):
        raise file_error(f"{path}: no 'near'/'far' text fields: not a MoGe depth PNG", "unreadable") from None
    v = (raw.astype(np.float64) - 1) / 65533
    depth = near ** (1 - v) * far**v * unit
    depth[raw == 0] = np.nan
    depth[raw == 65535] = np.inf
    return depth.astype(np.float32)


def drop_far(depth: np.ndarray) -> np.ndarray:
    """Depth with unknown/infinite pixels and those beyond DROP_MAX_DEPTH x the 1st percentile set to 0."""
    valid = np.isfinite(depth) & (depth > 0)
    if valid.any():
        valid &= depth <= np.quantile(depth[valid], 0.01) * DROP_MAX_DEPTH
    return np.where(valid, depth, 0).astype(np.float32)


def pixel_intrinsics(k_norm, h: int, w: int, where: str) -> np.ndarray:
    """MoGe's normalised 3x3 intrinsics -> pixels of an (h, w) image, 0-based pixel centres."""
    k = np.asarray(k_norm, dtype=np.float64)
    if k.shape != (3, 3) or not np.isfinite(k).all():
        raise file_error(f"{where}: 'intrinsics' must be a finite 3x3 matrix", "unreadable")
    out = np.eye(3, dtype=np.float32)
    out[0, 0], out[1, 1] = k[0, 0] * w, k[1, 1] * h
    out[0, 2], out[1, 2] = k[0, 2] * w - 0.5, k[1, 2] * h - 0.5
    return out


def _set_dirs(path: Path) -> list[Path]:
    if (path / INDEX).is_file():
        return [path]
    found = [d for d in path.iterdir() if d.is_dir() and (d / INDEX).is_file()] if path.is_dir() else []
    order = {s: i for i, s in enumerate(SETS)}
    return sorted(found, key=lambda d: (order.get(d.name, len(SETS)), d.name))


def _detect(path: Path) -> bool:
    return bool(_set_dirs(path))


@register("moge", detect=_detect, protocols={"moge": ("none", 1e-5, float("inf"))},
          benchmark={"folder": "moge", "split": "test"})
class MoGeEval(Dataset):
    """MoGe's evaluation sets (see the module docstring). Options: ``root``; ``sets`` (names to keep, default
    every set found); ``split``: only ``test``."""

    protocol = "moge"

    def __init__(self, split: str = "test", root: str | None = None, sets: list[str] | str | None = None):
        if root is None:
            raise DepthforgeError("moge: the option 'root' (MoGe's data/eval folder or one set's) is required")
        if split != "test":
            raise DepthforgeError(f"moge: unknown split {split!r}; MoGe's sets have only 'test'")
        dirs = _set_dirs(Path(root))
        if not dirs:
            raise DepthforgeError(f"{root}: no MoGe evaluation set (a folder with {INDEX}) found")
        if sets is not None:
            wanted = [sets] if isinstance(sets, str) else list(sets)
            unknown = [s for s in wanted if s not in {d.name for d in dirs}]
            if unknown:
                raise DepthforgeError(f"moge: set {unknown[0]!r} not found under {root} (found: "
                                      f"{', '.join(d.name for d in dirs)})")
            dirs = [d for d in dirs if d.name in wanted]
        self.items: list[tuple[str, Path, str]] = []  # (set, its folder, instance path relative to it)
        for d in dirs:
            try:
                lines = (d / INDEX).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise DepthforgeError(f"{d / INDEX}: unreadable ({e})") from None
            self.items += [(d.name, d, line.strip()) for line in lines if line.strip()]
        if not self.items:
            raise DepthforgeError(f"{root}: the {INDEX} files list no instance")

    def __len__(self) -> int:
        return len(self.items)

    def subsets(self) -> dict[str, list[int]]:
        """Set name -> its sample indices."""
        out: dict[str, list[int]] = {}
        for i, (name, _, _) in enumerate(self.items):
            out.setdefault(name, []).append(i)
        return out

    def __getitem__(self, i: int) -> dict:
        name, set_dir, rel = self.items[i]
        folder = set_dir / rel
        image = read_image(folder / "image.jpg")
        depth = drop_far(read_moge_depth(folder / "depth.png"))
        check_same_size(folder / "depth.png", image, depth)
        meta = folder / "meta.json"
        try:
            k_norm = json.loads(meta.read_text(encoding="utf-8"))["intrinsics"]
        except FileNotFoundError:
            raise file_error(f"{meta}: file not found", "missing") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise file_error(f"{meta}: no readable 'intrinsics' ({e})", "unreadable") from None
        k = pixel_intrinsics(k_norm, *image.shape[:2], str(meta))
        sample = make_sample(image, depth, f"{name}_{rel.strip('/').replace('/', '_')}", k)
        sample["subset"] = name
        return sample
