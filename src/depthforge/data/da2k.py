"""DA-2K (Depth Anything V2, Yang et al. 2024): 1K images with 2K annotated point pairs, the closer point of each
marked, over eight scene types; the metric is the share of pairs whose order a model gets right
(``evaluation.metrics.pair_accuracy``). Read as ``DA-2K.md`` in DepthAnything/Depth-Anything-V2 describes it.

Layout (the Hugging Face download ``depth-anything/DA-2K`` extracted)::

    ROOT/annotations.json         {"images/indoor/xxx.jpg": [{"point1": [h, w], "point2": [h, w],
                                                              "closer_point": "point1"}, ...], ...}
    ROOT/images/<scene type>/xxx.jpg

Keys are image paths relative to ROOT; points are (row, column) pixels of the image as shown (its EXIF
orientation applied, as OpenCV reads it). The scene type is
the folder under ``images/``: indoor, outdoor, non_real, transparent_reflective, adverse_style, aerial,
underwater, object (DA-2K.md); the option ``category`` keeps one of them, as its ``visualize.py --scene-type``.

Sample: ``make_sample``'s with no ground truth (depth all invalid: evaluate it with ``pair_accuracy``, not the
depth metrics, and not through ``SkipBad``, which drops samples without valid depth), plus ``pairs`` int64 [P,4]
(y1, x1, y2, x2), ``closer`` int64 [P] (0: the first point is closer, 1: the second) and ``category`` (str).
DA-2K always puts the closer point first; ``closer`` still follows the file. ``categories()`` gives each scene
type's sample indices. Deviation: fractional coordinates, if a file has them, are rounded to the nearest pixel.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import file_error, read_image
from .sample import make_sample

ANNOTATIONS = "annotations.json"
CATEGORIES = ("indoor", "outdoor", "non_real", "transparent_reflective", "adverse_style", "aerial", "underwater",
              "object")
MAX_JSON_BYTES = 64 << 20  # the real file is well under 1 MB


def category_of(key: str) -> str:
    """The scene type of an annotation key: the folder under images/ (else the image's folder)."""
    parts = key.replace("\\", "/").split("/")
    known = [p for p in parts[:-1] if p in CATEGORIES]
    return known[0] if known else (parts[-2] if len(parts) > 1 else "")


def read_annotations(path: Path) -> dict[str, list[dict]]:
    """annotations.json -> {image key: [annotation, ...]}; one line naming the file when it is not DA-2K's form."""
    if not path.is_file():
        raise DepthforgeError(f"{path}: DA-2K annotations not found")
    if os.path.getsize(path) > MAX_JSON_BYTES:
        raise DepthforgeError(f"{path}: {os.path.getsize(path)} bytes, too large for DA-2K annotations")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DepthforgeError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DepthforgeError(f"{path}: expected {{image path: [annotations]}}")
    return data


def _pair(ann, where: str) -> tuple[list[int], int]:
    try:
        p1, p2 = ([int(round(float(c))) for c in ann[k]] for k in ("point1", "point2"))
        closer = {"point1": 0, "point2": 1}[ann["closer_point"]]
    except (KeyError, TypeError, ValueError):
        raise DepthforgeError(f"{where}: expected point1 [h, w], point2 [h, w] and closer_point point1|point2, "
                              f"got {str(ann)[:80]}") from None
    if len(p1) != 2 or len(p2) != 2:
        raise DepthforgeError(f"{where}: a point must be [h, w], got {ann['point1']}, {ann['point2']}")
    return p1 + p2, closer


def _detect(path: Path) -> bool:
    return path.is_dir() and (path / ANNOTATIONS).is_file() and (path / "images").is_dir()


@register("da2k", detect=_detect, benchmark={"folder": "da2k", "split": "test"})
class DA2K(Dataset):
    """DA-2K (see the module docstring). Options: ``root`` (the folder holding annotations.json), ``category``
    (one scene type, default all); ``split``: only ``test``."""

    metric = "pair_accuracy"  # not a depth-map protocol: see evaluation.metrics.pair_accuracy

    def __init__(self, split: str = "test", root: str | None = None, category: str | None = None):
        if root is None:
            raise DepthforgeError("da2k: the option 'root' (the folder holding annotations.json) is required")
        if split != "test":
            raise DepthforgeError(f"da2k: unknown split {split!r}; DA-2K has only 'test'")
        if category is not None and category not in CATEGORIES:
            raise DepthforgeError(f"da2k: unknown category {category!r}; known: {', '.join(CATEGORIES)}")
        self.root = Path(root)
        self.json = self.root / ANNOTATIONS
        self.items = []
        for key, anns in sorted(read_annotations(self.json).items()):
            if category is None or category_of(key) == category:
                where = f"{self.json}: {key}"
                pairs = [_pair(a, where) for a in anns]
                self.items.append((key, [p for p, _ in pairs], [c for _, c in pairs]))
        if not self.items:
            raise DepthforgeError(f"{self.json}: no annotated image"
                                  + (f" of category {category!r}" if category else ""))

    def __len__(self) -> int:
        return len(self.items)

    def categories(self) -> dict[str, list[int]]:
        """Scene type -> its sample indices."""
        out: dict[str, list[int]] = {}
        for i, (key, _, _) in enumerate(self.items):
            out.setdefault(category_of(key), []).append(i)
        return out

    def __getitem__(self, i: int) -> dict:
        key, pairs, closer = self.items[i]
        # points are of the image as shown, turned by its EXIF orientation (as OpenCV's imread reads it)
        image = read_image(self.root / key)
        h, w = image.shape[:2]
        coords = np.asarray(pairs, dtype=np.int64).reshape(-1, 4)
        ys, xs = coords[:, 0::2], coords[:, 1::2]
        if (ys < 0).any() or (ys >= h).any() or (xs < 0).any() or (xs >= w).any():
            raise file_error(f"{self.json}: {key}: a point lies outside the {w}x{h} image", "unreadable")
        name = Path(key).with_suffix("").as_posix().removeprefix("images/").replace("/", "_")
        sample = make_sample(image, None, name)
        sample["pairs"] = torch.from_numpy(coords)
        sample["closer"] = torch.tensor(closer, dtype=torch.int64)
        sample["category"] = category_of(key)
        return sample
