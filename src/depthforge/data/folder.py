"""Your own RGB-D data: images and depth maps matched by name, or listed in a CSV/TXT file.

Layouts of ``root`` (``ROOT/SPLIT`` is used instead when that folder exists):

- folders: ``rgb/NAME.ext`` + ``depth/NAME.png|.npy|...`` matched by stem (``image/``, ``images/`` also accepted).
  An image whose depth map is absent while ``depth/`` holds others is a missing file (``data check`` lists it,
  training skips it); without a ``depth/`` folder the images have no ground truth (prediction only);
- a list: ``rgb,depth`` or ``rgb depth [focal]`` per line, paths relative to the list's folder (``None`` = no
  ground truth; a header row is skipped). Given as the option ``lists``, as ``root`` itself, or found as
  ``ROOT/SPLIT.csv`` / ``ROOT/SPLIT.txt``;
- flat: one folder of files named with a role word: ``rgb_1.png`` + ``depth_1.png``, ``0001_colors.png`` +
  ``0001_depth.png``, ``rgb.jpg`` + ``depth.png``.

The depth encoding is given once (``depth_encoding``: mm, kitti256, tum5000, sunrgbd, nyu8bit, metres; float
files — ``.npy``, ``.exr``, float TIFF — are metres whatever it says). Intrinsics: the option ``intrinsics``
(fx fy cx cy, or a file holding them), else ``intrinsics.txt`` beside the data; a list line's focal replaces
fx and fy (cx, cy then come from the intrinsics, or the image centre).
"""
from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import DEPTH_SUFFIXES, ENCODING_TEXT, check_encoding, encoding_doubt, find_list, is_image_file, parse_list, read_depth, read_image, read_list, safe_name
from .sample import check_same_size, intrinsics_matrix, make_sample, with_focal

log = logging.getLogger(__name__)
TOLD: set[tuple[str, str]] = set()  # (folder, encoding) already said in this process

RGB_DIRS = ("rgb", "image", "images")
LIST_SUFFIXES = (".csv", ".txt")
# A role word in a file stem, between separators: rgb_1 / depth_1, 0001_colors / 0001_depth, rgb / depth.
_ROLE = re.compile(r"(?:^|(?<=[_\-. ]))(sync_depth|depth|rgb|colou?rs?|image|img)(?=$|[_\-. ])", re.I)

Item = tuple[Path, "Path | None", "float | None"]  # rgb, depth (None: no ground truth), focal


# --- pairing by name ------------------------------------------------------------------------------------

def _visible(folder: Path) -> list[Path]:
    """The folder's entries, sorted, without hidden ones: a killed writer's temp files (``.NAME.XXXXXXXX.png`` of
    ``files.atomic_path``) and macOS's ``._NAME`` companions are not samples."""
    return [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]


def rgb_dir(root: Path) -> Path | None:
    return next((root / d for d in RGB_DIRS if (root / d).is_dir()), None)


def _role(path: Path) -> tuple[str, str] | None:
    """('rgb'|'depth', key) from a file name with a role word; files of one pair share the key."""
    m = _ROLE.search(path.stem)
    if m is None:
        return None
    role = "depth" if "depth" in m.group(1).lower() else "rgb"
    if (role == "rgb" and not is_image_file(path)) or (role == "depth" and path.suffix.lower() not in DEPTH_SUFFIXES):
        return None
    return role, (path.stem[:m.start()] + path.stem[m.end():]).strip("_-. ").lower()


def flat_pairs(folder: Path) -> list[tuple[Path, Path | None]]:
    """(rgb, depth or None) for files named with role words in one folder, sorted by rgb name."""
    rgb, depth = {}, {}
    for p in _visible(folder):
        found = _role(p) if p.is_file() else None
        if found:
            (rgb if found[0] == "rgb" else depth).setdefault(found[1], p)
    return [(p, depth.get(key)) for key, p in sorted(rgb.items(), key=lambda kv: kv[1].name)]


def _list_file_ok(path: Path) -> bool:
    if path.suffix.lower() not in LIST_SUFFIXES or not path.is_file():
        return False
    try:
        with open(path, errors="replace") as f:
            head = f.read(4096)
        return bool(parse_list(head.rsplit("\n", 1)[0] if len(head) == 4096 else head, str(path)))
    except (OSError, DepthforgeError):
        return False


def _detect(path: Path) -> bool:
    if path.is_file():
        return _list_file_ok(path)
    if not path.is_dir():
        return False
    roots = [path] + [p for p in path.iterdir() if p.is_dir()]
    if any(rgb_dir(r) is not None and (r / "depth").is_dir() for r in roots):
        return True
    if any(_list_file_ok(path / f"{s}{x}") for s in ("train", "val", "test") for x in LIST_SUFFIXES):
        return True
    return any(d is not None for _, d in flat_pairs(path))


def read_intrinsics_txt(path: Path) -> np.ndarray:
    try:
        values = [float(v) for v in path.read_text().split()]
    except (OSError, ValueError) as e:
        raise DepthforgeError(f"{path}: cannot read intrinsics 'fx fy cx cy' ({e})") from None
    if len(values) != 4:
        raise DepthforgeError(f"{path}: expected 4 numbers 'fx fy cx cy', got {len(values)}")
    return intrinsics_matrix(*values)


@register("folder", detect=_detect)
class FolderDataset(Dataset):
    """Your own data (see the module docstring).

    Options: ``root`` (folder or list file), ``split`` (subfolder or list name), ``depth_encoding`` (default mm),
    ``intrinsics`` ([fx, fy, cx, cy] or a file), ``lists`` (a list file, a folder holding ``SPLIT.csv|.txt``,
    or {split: file}).
    """

    def __init__(self, root: str | None = None, split: str = "test", depth_encoding: str | None = None,
                 intrinsics: list[float] | str | None = None, lists: Any = None):
        assumed = depth_encoding is None
        depth_encoding = depth_encoding or "mm"
        if root is None and lists is None:
            raise DepthforgeError("folder: give 'root' (a folder or list file) or 'lists'")
        check_encoding(depth_encoding, "folder option 'depth_encoding'")
        self.encoding = depth_encoding
        root_p = Path(root) if root is not None else None
        list_path = self._list_path(root_p, split, lists)
        if list_path is not None:
            base = list_path.parent
            rows = read_list(list_path)
            self.items: list[Item] = [(base / r, base / d if d else None, f) for r, d, f in rows]
            stems = [Path(r).stem for r, _, _ in rows]
            self.names = stems if len(set(stems)) == len(stems) else [safe_name(r) for r, _, _ in rows]
        else:
            assert root_p is not None
            base = root_p / split if (root_p / split).is_dir() else root_p
            rgb = rgb_dir(base)
            if rgb is not None:
                depth_dir = base / "depth"
                depths = {p.stem: p for p in _visible(depth_dir) if p.suffix.lower() in DEPTH_SUFFIXES} \
                    if depth_dir.is_dir() else {}
                images = [p for p in _visible(rgb) if is_image_file(p)]
                if depths:  # the path it should have, so that reading it reports the file as missing
                    suffix = Counter(p.suffix for p in depths.values()).most_common(1)[0][0]
                    pairs = [(p, depths.get(p.stem, depth_dir / f"{p.stem}{suffix}")) for p in images]
                else:
                    pairs = [(p, None) for p in images]
            else:
                pairs = flat_pairs(base) if base.is_dir() else []
                if not any(d is not None for _, d in pairs):
                    raise DepthforgeError(f"{base}: no rgb/ folder, no {split}.csv/.txt list and no rgb_*/depth_* "
                                          "file pairs")
            self.items = [(r, d, None) for r, d in pairs]
            self.names = [r.stem for r, _ in pairs]
            if not self.items:
                raise DepthforgeError(f"{rgb}: no images")
        self.root = base
        self._say_encoding(assumed)
        if isinstance(intrinsics, (str, os.PathLike)):
            self.intrinsics = read_intrinsics_txt(Path(intrinsics))
        elif intrinsics is not None:
            if len(intrinsics) != 4:
                raise DepthforgeError(f"folder: intrinsics must be [fx, fy, cx, cy], got {intrinsics!r}")
            self.intrinsics = intrinsics_matrix(*intrinsics)
        elif (base / "intrinsics.txt").exists():
            self.intrinsics = read_intrinsics_txt(base / "intrinsics.txt")
        else:
            self.intrinsics = None

    def _say_encoding(self, assumed: bool) -> None:
        """Log the depth encoding (when assumed, not given) and warn, once per folder, when the first depth map's
        range is implausible for it (``io.encoding_doubt``): a KITTI folder read as millimetres looks fine."""
        first = next((d for _, d, _ in self.items if d is not None and d.is_file()), None)
        key = (str(self.root), self.encoding)
        if first is None or key in TOLD:
            return
        TOLD.add(key)
        if assumed:
            log.info("%s: depth files read as %s (the folder default; set depth_encoding / --encoding to change)",
                     self.root, ENCODING_TEXT[self.encoding])
        try:
            depth = read_depth(first, self.encoding)
        except DepthforgeError:
            return  # reading it again reports it, for its sample
        valid = depth[np.isfinite(depth) & (depth > 0)]
        doubt = encoding_doubt(self.encoding, float(valid.max())) if valid.size else None
        if doubt:
            log.warning("%s: %s", first, doubt)

    @staticmethod
    def _list_path(root: Path | None, split: str, lists: Any) -> Path | None:
        names = [f"{split}{x}" for x in LIST_SUFFIXES]
        if lists is not None:
            return find_list(lists, split, names, [])
        if root is None or not root.exists():
            raise DepthforgeError(f"{root}: dataset not found")
        if root.is_file():
            return root
        if rgb_dir(root / split) is not None or rgb_dir(root) is not None:
            return None
        return next((root / n for n in names if (root / n).is_file()), None)

    def __len__(self) -> int:
        return len(self.items)

    def has_gt(self, i: int) -> bool:
        return self.items[i][1] is not None

    def __getitem__(self, i: int) -> dict:
        rgb_path, depth_path, focal = self.items[i]
        image = read_image(rgb_path)
        depth = None if depth_path is None else read_depth(depth_path, self.encoding)
        check_same_size(depth_path, image, depth)
        k = with_focal(self.intrinsics, focal, *image.shape[:2])
        return make_sample(image, depth, self.names[i], k)
