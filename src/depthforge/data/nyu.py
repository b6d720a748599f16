"""NYU-Depth v2 in the three forms people have it, as 480x640 samples in metres with the Kinect intrinsics.

``layout`` (detected from ``root`` when ``auto``):

- ``densedepth``: DenseDepth's ``nyu_data.zip`` (read inside the zip) or its extracted folder:
  ``data/nyu2_{train,test}.csv`` list ``rgb,depth`` paths relative to the zip root. Training depth is 8-bit PNG,
  255 = 10 m (inpainted); test depth is 16-bit PNG in millimetres. The encoding is chosen per file from its
  bit depth unless ``depth_encoding`` says otherwise.
- ``mat``: the official labelled set ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5; ``images`` [N,3,640,480]
  uint8 and ``depths`` [N,640,480] metres, stored transposed) with ``splits.mat`` (1-based ``trainNdxs`` 795 /
  ``testNdxs`` 654; MATLAB v5 or v7.3). One sample is one lazy HDF5 slice, never the whole file.
- ``bts``: the BTS/AdaBins layout: ``ROOT/sync/<scene>/rgb_N.jpg`` + ``sync_depth_N.png`` (16-bit mm, raw
  projected) for training, ``ROOT/official_splits/test/<scene>/...`` for testing, and the lists
  ``nyudepthv2_{train,test}_files_with_gt.txt`` (``rgb depth focal`` per line). Intrinsics use the list's focal.

Datasets hold paths only and open files lazily in each process, so they pickle to DataLoader workers.
"""
from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch.utils.data import Dataset

from ..errors import DepthforgeError
from .base import register
from .io import ZipReader, check_encoding, decode_depth, file_error, find_list, parse_list, read_depth, read_depth_raw, read_image, read_list, safe_name
from .sample import NYU_INTRINSICS_640, check_same_size, make_sample, with_focal

NYU_SIZE = (480, 640)  # H, W of every NYU-Depth v2 frame
MAT_NAME = "nyu_depth_v2_labeled.mat"
ZIP_NAME = "nyu_data.zip"
BTS_LISTS = {"train": "nyudepthv2_train_files_with_gt.txt", "test": "nyudepthv2_test_files_with_gt.txt"}
LAYOUTS = ("densedepth", "mat", "bts")


class PerProcess:
    """A handle (zip, HDF5 file) opened on first use in each process: DataLoader workers must not share the
    parent's file offset or HDF5 state, so the handle is reopened after a fork and dropped when pickled."""

    def __init__(self, opener: Callable[[], Any]):
        self.opener, self._handle, self._pid = opener, None, None

    def get(self) -> Any:
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = self.opener(), os.getpid()
        return self._handle

    def __getstate__(self):
        return {"opener": self.opener, "_handle": None, "_pid": None}


def _check_split(split: str, allowed: tuple[str, ...] = ("train", "test")) -> None:
    if split not in allowed:
        raise DepthforgeError(f"NYU-Depth v2: unknown split {split!r}; known: {', '.join(allowed)}")


# --- layout detection -------------------------------------------------------------------------------------

def _densedepth_base(path: Path) -> tuple[Path, str] | None:
    """(base, 'zip'|'dir') for DenseDepth's data; base is the zip or the folder the CSV paths are relative to."""
    if path.is_file():
        if path.suffix.lower() != ".zip":
            return None
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
        except (OSError, zipfile.BadZipFile):
            return None
        return (path, "zip") if {"data/nyu2_train.csv", "data/nyu2_test.csv"} & names else None
    if not path.is_dir():
        return None
    if (path / ZIP_NAME).is_file():
        return _densedepth_base(path / ZIP_NAME)
    for base in (path, path.parent) if path.name == "data" else (path,):
        if any((base / "data" / f"nyu2_{s}.csv").is_file() for s in ("train", "test")):
            return base, "dir"
    return None


def _mat_path(path: Path) -> Path | None:
    if path.is_dir():
        path = path / MAT_NAME
    if not path.is_file() or path.suffix.lower() != ".mat":
        return None
    import h5py
    try:
        if not h5py.is_hdf5(path):
            return None
        with h5py.File(path, "r") as f:
            return path if "images" in f and "depths" in f else None
    except OSError:
        return None


def _is_bts(path: Path) -> bool:
    return path.is_dir() and ((path / "sync").is_dir() or (path / "official_splits" / "test").is_dir()
                              or any((path / n).is_file() for n in BTS_LISTS.values()))


def detect_layout(path: str | os.PathLike) -> str | None:
    """Which NYU layout ``path`` holds ('densedepth', 'mat', 'bts'), or None."""
    path = Path(path)
    if _densedepth_base(path) is not None:
        return "densedepth"
    if _mat_path(path) is not None:
        return "mat"
    if _is_bts(path):
        return "bts"
    return None


def _detect(path: Path) -> bool:
    return detect_layout(path) is not None


def has_nyu_border(image: np.ndarray) -> bool:
    """Whether an RGB image (H,W,3 or 3,H,W, in [0,1]) is a raw NYU-Depth v2 frame: 480x640 with the white
    undistortion border NYU's frames keep (the Eigen crop removes it; scored, it is a wall of wrong depth)."""
    a = np.asarray(image, np.float32)
    if a.ndim == 3 and a.shape[0] == 3:
        a = a.transpose(1, 2, 0)
    if a.shape[:2] != (480, 640):
        return False
    white = a.min(-1) > 0.9
    frame = np.concatenate([white[:2].ravel(), white[-2:].ravel(), white[:, :2].ravel(), white[:, -2:].ravel()])
    return bool(frame.mean() > 0.95)


@register("nyu", detect=_detect, protocols={"nyu": ("eigen", 1e-3, 10.0)},
          benchmark={"folder": "nyu", "split": "test"})
def nyu(split: str = "test", root: str | None = None, layout: str = "auto", **options: Any) -> Dataset:
    """NYU-Depth v2 (see the module docstring for the layouts).

    Options: ``root`` (zip, folder or .mat); ``layout`` auto|densedepth|mat|bts; ``split`` train|test (mat: also
    ``all``). ``depth_encoding``: densedepth: auto (8-bit -> nyu8bit, 16-bit -> mm) or any DEPTH_ENCODINGS name;
    bts: auto = mm; mat: depth is stored in metres. mat: ``splits`` (path to splits.mat; default beside the .mat),
    ``indices`` (0-based frame indices, overrides ``split``), ``depth_key`` depths (inpainted, default) |
    rawDepths. bts: ``lists`` (a folder holding the two list files, or one list file; default: searched in ROOT,
    ROOT/.. and their train_test_inputs/), ``image_root`` (folder the list paths are relative to; default
    ROOT/sync for train, ROOT/official_splits/test for test). Other keys (e.g. a config's ``size``) are ignored.
    """
    if root is None:
        raise DepthforgeError("nyu: the option 'root' (nyu_data.zip, a folder or nyu_depth_v2_labeled.mat) is required")
    if layout not in ("auto", *LAYOUTS):
        raise DepthforgeError(f"nyu: unknown layout {layout!r}; known: auto, {', '.join(LAYOUTS)}")
    encoding = options.get("depth_encoding", "auto")
    if encoding != "auto":
        check_encoding(encoding, "nyu option 'depth_encoding' (auto or a fixed one)")
    path = Path(root)
    if not path.exists():
        raise DepthforgeError(f"{path}: dataset not found")
    # Each probe opens the zip or .mat: run each once, and hand what it found to the dataset.
    if layout in ("auto", "densedepth"):
        found = _densedepth_base(path)
        if found is not None:
            return NYUDenseDepth(*found, split, encoding)
        if layout == "densedepth":
            raise DepthforgeError(f"{path}: not DenseDepth's NYU layout (no data/nyu2_{split}.csv)")
    if layout in ("auto", "mat"):
        mat = _mat_path(path)
        if mat is not None:
            return NYUMat(mat, split, options.get("splits"), options.get("indices"), options.get("depth_key", "depths"))
        if layout == "mat":
            raise DepthforgeError(f"{path}: not an NYU labelled .mat (MATLAB v7.3 with 'images' and 'depths')")
    if layout == "bts" or _is_bts(path):
        return NYUList(path, split, options.get("lists"), options.get("image_root"),
                       "mm" if encoding == "auto" else encoding)
    raise DepthforgeError(f"{path}: no NYU-Depth v2 layout found (expected {ZIP_NAME} or data/nyu2_*.csv, "
                          f"{MAT_NAME}, or a BTS folder with sync/ and official_splits/)")


# --- DenseDepth --------------------------------------------------------------------------------------------

class NYUDenseDepth(Dataset):
    """DenseDepth's nyu_data.zip (or its extracted folder); see the module docstring."""

    size = NYU_SIZE

    def __init__(self, base: Path, kind: str, split: str = "test", depth_encoding: str = "auto"):
        """``base``, ``kind``: what ``_densedepth_base`` found (the zip, or the folder holding data/)."""
        _check_split(split)
        self.base, self.encoding = base, depth_encoding
        csv_name = f"data/nyu2_{split}.csv"
        if kind == "zip":
            self._zip: PerProcess | None = PerProcess(functools.partial(ZipReader, base))
            where = f"{base}!{csv_name}"
            items = parse_list(self._zip.get().read(csv_name).decode("utf-8", errors="replace"), where)
            if not items:
                raise DepthforgeError(f"{where}: the list is empty")
        else:
            self._zip = None
            items = read_list(base / csv_name)
        self.pairs = [(r, d) for r, d, _ in items]

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, member: str) -> tuple[str, bytes | None]:
        if self._zip is None:
            return str(self.base / member), None
        return f"{self.base}!{member}", self._zip.get().read(member)

    def __getitem__(self, i: int) -> dict:
        rgb, dep = self.pairs[i]
        if dep is None:
            raise DepthforgeError(f"{self.base}: line {i + 1} of the list has no depth map")
        rgb_name, rgb_data = self._read(rgb)
        image = read_image(rgb_name, rgb_data)
        dep_name, dep_data = self._read(dep)
        if self.encoding == "auto":
            raw = read_depth_raw(dep_name, dep_data)
            depth = decode_depth(raw, "nyu8bit" if raw.dtype == np.uint8 else "mm")
        else:
            depth = read_depth(dep_name, self.encoding, dep_data)
        check_same_size(dep_name, image, depth)
        name = "/".join(p for p in rgb.split("/") if p != "data" and not p.startswith("nyu2_"))
        return make_sample(image, depth, safe_name(name), NYU_INTRINSICS_640)


# --- the official labelled .mat ----------------------------------------------------------------------------

def _open_h5(path: Path):
    import h5py
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DepthforgeError(f"{path}: not a readable MATLAB v7.3/HDF5 file ({e})") from None


def read_splits(path: Path) -> dict[str, np.ndarray]:
    """splits.mat -> {'train': 0-based indices, 'test': ...}; MATLAB v5 (scipy) or v7.3 (HDF5)."""
    if not path.is_file():
        raise DepthforgeError(f"{path}: splits file not found (give 'splits', or 'indices' instead of 'split')")
    import h5py
    import scipy.io
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                raw = {k: np.asarray(f[k]) for k in ("trainNdxs", "testNdxs") if k in f}
        else:
            raw = scipy.io.loadmat(path, variable_names=["trainNdxs", "testNdxs"])
    except (OSError, ValueError, TypeError, KeyError, NotImplementedError, scipy.io.matlab.MatReadError) as e:
        raise DepthforgeError(f"{path}: not a readable splits.mat ({e})") from None
    out = {}
    for key, split in (("trainNdxs", "train"), ("testNdxs", "test")):
        if key not in raw:
            raise DepthforgeError(f"{path}: no {key!r} in the splits file")
        out[split] = np.asarray(raw[key]).astype(np.int64).ravel() - 1  # MATLAB is 1-based
    return out


class NYUMat(Dataset):
    """The labelled set ``nyu_depth_v2_labeled.mat`` (1449 frames); see the module docstring."""

    size = NYU_SIZE

    def __init__(self, path: Path, split: str = "test", splits: str | None = None,
                 indices: list[int] | None = None, depth_key: str = "depths"):
        """``path``: the .mat file, as ``_mat_path`` found it."""
        self.path, self.depth_key = path, depth_key
        with _open_h5(path) as f:
            if depth_key not in f:
                raise DepthforgeError(f"{path}: no {depth_key!r} array (use depths or rawDepths)")
            n = f["images"].shape[0]
            if f["images"].ndim != 4 or f["images"].shape[1] != 3 or f[depth_key].shape[0] != n:
                raise DepthforgeError(f"{path}: unexpected shapes images {f['images'].shape}, "
                                      f"{depth_key} {f[depth_key].shape}")
        if indices is not None:
            idx = np.asarray(indices, dtype=np.int64).ravel()
        elif split == "all":
            idx = np.arange(n)
        else:
            _check_split(split, ("train", "test", "all"))
            idx = read_splits(Path(splits) if splits else path.parent / "splits.mat")[split]
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise DepthforgeError(f"{path}: frame index {int(bad[0])} out of range (the file holds {n} frames)")
        self.indices = idx.tolist()
        self._h5 = PerProcess(functools.partial(_open_h5, path))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        j = self.indices[i]
        f = self._h5.get()
        try:
            image = np.asarray(f["images"][j]).transpose(2, 1, 0)  # [3,W,H] -> [H,W,3]
            depth = np.asarray(f[self.depth_key][j], dtype=np.float32).T  # [W,H] -> [H,W]
        except (OSError, ValueError, KeyError) as e:
            raise file_error(f"{self.path}: frame {j + 1} unreadable ({e})", "unreadable") from None
        return make_sample(image.astype(np.float32) / 255.0, decode_depth(depth), f"{j + 1:04d}", NYU_INTRINSICS_640)


# --- BTS / AdaBins ----------------------------------------------------------------------------------------

class NYUList(Dataset):
    """The BTS/AdaBins layout; see the module docstring."""

    size = NYU_SIZE

    def __init__(self, root: Path, split: str = "test", lists: Any = None, image_root: str | None = None,
                 depth_encoding: str = "mm"):
        _check_split(split)
        self.encoding = depth_encoding
        search = [root, root / "train_test_inputs", root.parent, root.parent / "train_test_inputs"]
        self.list_path = find_list(lists, split, [BTS_LISTS[split]], search)
        self.items = read_list(self.list_path)
        if image_root is not None:
            self.base = Path(image_root)
        else:
            sub = root / "sync" if split == "train" else root / "official_splits" / "test"
            self.base = sub if sub.is_dir() else root

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        rgb, dep, focal = self.items[i]
        image = read_image(self.base / rgb.lstrip("/"))
        depth = None
        if dep is not None:
            dep_path = self.base / dep.lstrip("/")
            depth = read_depth(dep_path, self.encoding)
            check_same_size(dep_path, image, depth)
        k = with_focal(NYU_INTRINSICS_640, focal, *image.shape[:2])
        return make_sample(image, depth, safe_name(rgb), k)

    def has_gt(self, i: int) -> bool:
        return self.items[i][1] is not None
