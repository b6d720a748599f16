"""Writing outputs: atomic writes (temp file + fsync + rename), output folders, hidden work folders beside an
output, and image / depth / array files every command shares (their bytes come from ``encode``). A crash leaves
either the old file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .encode import depth_to_png16, image_bytes, npy_bytes
from .errors import DepthforgeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's 0600 would make every output private


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is flushed to disk and replaces ``path`` in one
    rename, so a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    except OSError as e:
        raise DepthforgeError(f"{path.parent}: cannot write there ({e.strerror or e})") from None
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ``atomic_path``'s temp names: "." + target name + "." + mkstemp's 8 random characters + the target's suffix
_TEMP = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)")


def partial_write_of(path: str | os.PathLike) -> str | None:
    """The target file name when ``path`` is the temp file of an ``atomic_path`` write (one a killed process can
    leave), else None."""
    m = _TEMP.fullmatch(Path(path).name)
    return m["name"] if m is not None and m["suffix"] == (Path(m["name"]).suffix or ".tmp") else None


def remove_partial_writes(folder: str | os.PathLike, names: Iterable[str] | None = None) -> int:
    """Remove the temp files of ``atomic_path`` writes that a killed run left in ``folder`` (not below it): of the
    target file ``names`` only, or of any name. Other files are never touched. Returns how many were removed."""
    names = None if names is None else set(names)
    removed = 0
    with contextlib.suppress(OSError):
        for p in Path(folder).iterdir():
            target = partial_write_of(p)
            if target is not None and (names is None or target in names) and p.is_file() and not p.is_symlink():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid: leave it
    return True


def work_dir(dst: Path, tag: str) -> tempfile.TemporaryDirectory:
    """A hidden work folder beside ``dst`` (``.NAME.TAG-PID-XXXX``), removed at the end; those of killed runs
    (their process gone) are removed first, so a kill -9 leaves nothing behind for long. Beside the output rather
    than in /tmp: the model copies in it are as large as the model, and the user chose that disk for it."""
    stale = re.compile(rf"\.{re.escape(dst.name)}\.{tag}-(\d+)-\w+")
    with contextlib.suppress(OSError):
        for p in dst.parent.iterdir():
            m = stale.fullmatch(p.name)
            if m and p.is_dir() and not p.is_symlink() and not _alive(int(m[1])):
                shutil.rmtree(p, ignore_errors=True)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=f".{dst.name}.{tag}-{os.getpid()}-", dir=dst.parent)
    except OSError as e:
        raise DepthforgeError(f"{dst.parent}: cannot write there ({e.strerror or e})") from None


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create an output folder (and parents) and check it is writable; one-line DepthforgeError otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DepthforgeError(f"{path}: cannot write there ({e.strerror or e})") from None
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write RGB (H,W,3) float in [0,1] or uint8, atomically; JPEG for .jpg/.jpeg, else PNG."""
    fmt = "jpeg" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "png"
    write_bytes(path, image_bytes(image, fmt))


def write_depth_png(path: str | os.PathLike, depth: np.ndarray, scale: float = 1000.0) -> None:
    """Write depth (metres) as a 16-bit PNG, millimetres by default, atomically (see ``depth_to_png16``)."""
    write_bytes(path, depth_to_png16(depth, scale))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as float32 ``.npy`` (depth in metres), atomically."""
    write_bytes(path, npy_bytes(array))
