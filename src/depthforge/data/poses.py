"""Camera poses as RGB-D video datasets write them: ``tx ty tz qx qy qz qw`` lines (TUM RGB-D's trajectory format,
also ``../shared/realdata/nyu/pose.txt``), turned into 4×4 camera-to-world matrices (``sample.make_sample``)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import DepthforgeError
from .io import data_lines


def pose_matrix(tx: float, ty: float, tz: float, qx: float, qy: float, qz: float, qw: float) -> np.ndarray:
    """(4,4) float64 from a translation and a unit quaternion (Hamilton, w last as TUM writes it; normalised
    here, since files round it)."""
    q = np.array([qw, qx, qy, qz], np.float64)
    n = float(np.linalg.norm(q))
    if not math.isfinite(n) or n < 1e-6:
        raise ValueError("quaternion of zero length")
    w, x, y, z = q / n
    out = np.eye(4)
    out[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                   [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                   [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    out[:3, 3] = tx, ty, tz
    return out


def pose_line(pose: np.ndarray) -> str:
    """(4,4) camera-to-world -> its ``tx ty tz qx qy qz qw`` line (``pose_matrix``'s inverse; w >= 0)."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(np.asarray(pose, np.float64)[:3, :3]).as_quat()  # x, y, z, w: TUM's order
    q = -q if q[3] < 0 else q
    return " ".join(f"{v:.9f}" for v in (*np.asarray(pose, np.float64)[:3, 3], *q))


def parse_pose(fields: list[str], where: str) -> np.ndarray:
    """``tx ty tz qx qy qz qw`` -> (4,4) camera-to-world; ``where`` (file:line) names a bad line."""
    try:
        values = [float(v) for v in fields]
        if len(values) != 7:
            raise ValueError(f"expected 7 numbers 'tx ty tz qx qy qz qw', got {len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError("a value is not finite")
        return pose_matrix(*values)
    except ValueError as e:
        raise DepthforgeError(f"{where}: pose does not parse ({e})") from None


def read_poses(path: Path) -> list[np.ndarray]:
    """One (4,4) camera-to-world pose per data line of a ``tx ty tz qx qy qz qw`` file, in file order."""
    return [parse_pose(fields, f"{path}:{n}") for n, fields in data_lines(path)]


def read_stamped(path: Path, width: int) -> list[tuple[float, list[str], int]]:
    """(timestamp, the other fields, line number) per data line of a TUM list (``rgb.txt``: ``stamp file``,
    ``groundtruth.txt``: ``stamp tx ty tz qx qy qz qw``); ``width``: fields per line besides the stamp."""
    out = []
    for n, fields in data_lines(path):
        try:
            stamp = float(fields[0])
        except ValueError:
            raise DepthforgeError(f"{path}:{n}: expected a timestamp first, got {fields[0]!r}") from None
        if len(fields) - 1 < width:
            raise DepthforgeError(f"{path}:{n}: expected {width + 1} fields, got {len(fields)}")
        out.append((stamp, fields[1:width + 1], n))
    return out


def associate(first: list[float], second: list[float], max_difference: float = 0.02,
              offset: float = 0.0) -> list[tuple[int, int]]:
    """Match two lists of timestamps as TUM RGB-D's ``associate.py`` does: every pair closer than
    ``max_difference`` seconds (after adding ``offset`` to the second) is a candidate; the closest pairs are taken
    first, each stamp at most once. Returns (index in first, index in second), sorted by the first."""
    a = np.asarray(first, np.float64)
    b = np.asarray(second, np.float64) + offset
    order = np.argsort(b)
    bs = b[order]
    candidates = []
    for i, t in enumerate(a):  # only the stamps within reach, found by bisection
        lo, hi = np.searchsorted(bs, t - max_difference), np.searchsorted(bs, t + max_difference, "right")
        candidates += [(abs(t - bs[j]), i, int(order[j])) for j in range(lo, hi) if abs(t - bs[j]) < max_difference]
    candidates.sort()
    used_a, used_b, matches = set(), set(), []
    for _, i, j in candidates:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            matches.append((i, j))
    return sorted(matches)


__all__ = ["pose_matrix", "parse_pose", "read_poses", "read_stamped", "associate"]
