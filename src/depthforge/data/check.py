"""``depthforge data check``: what a dataset holds, and every file in it that training would skip.

``check_dataset`` loads every sample of each split once and reports counts, image sizes, the depth range and
the share of valid pixels, and lists (never raises on) each sample whose files are missing, unreadable, of the
wrong size or all-invalid — the samples SkipBad would skip in training. ``format_report`` renders it as text.
"""
from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..errors import DepthforgeError
from .base import build_dataset
from .io import ENCODING_TEXT, encoding_doubt


def problem_kind(error: BaseException) -> str:
    """'missing', 'wrong size', 'unreadable' (the ``kind`` the loaders set on a file's error, see
    ``io.file_error``) or 'error'."""
    return getattr(error, "kind", "error")


@dataclass
class Problem:
    index: int
    kind: str  # missing | unreadable | wrong size | all-invalid | error
    message: str  # names the file
    skipped: bool = True  # whether SkipBad skips it in training (a frame of an unexpected size still loads)


@dataclass
class SplitReport:
    split: str
    count: int = 0
    checked: int = 0
    no_gt: int = 0  # listed without ground truth (e.g. KITTI 'None'): skipped in training, not a problem
    sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> samples
    depth_min: float | None = None  # metres, over valid pixels
    depth_max: float | None = None
    valid_share: float | None = None  # mean over samples with ground truth
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None  # the split could not be opened at all
    encoding: str | None = None  # how the depth files were read (io.DEPTH_ENCODINGS), when the reader says
    warnings: list[str] = field(default_factory=list)  # e.g. a depth range implausible for the encoding

    @property
    def skipped(self) -> int:
        """Samples SkipBad would skip in training."""
        return sum(p.skipped for p in self.problems) + self.no_gt


@dataclass
class DatasetReport:
    dataset: str
    splits: list[SplitReport]

    @property
    def ok(self) -> bool:
        return all(s.error is None and not s.problems for s in self.splits)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Probe(Dataset):
    """Per sample: the numbers the report needs, or the error — so a DataLoader can fan the work out."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.has_gt = getattr(dataset, "has_gt", None)
        self.size = getattr(dataset, "size", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        has_gt = self.has_gt(i) if self.has_gt else True
        try:
            s = self.dataset[i]
        except DepthforgeError as e:
            return {"index": i, "error": str(e), "kind": problem_kind(e)}
        h, w = s["image"].shape[-2:]
        depth = s["depth"][s["valid"]]
        out = {"index": i, "name": s["name"], "size": f"{w}x{h}", "has_gt": has_gt,
               "valid": float(s["valid"].float().mean()), "n_valid": int(depth.numel())}
        if depth.numel():
            out["min"], out["max"] = float(depth.min()), float(depth.max())
        if self.size is not None and (h, w) != tuple(self.size):
            out["odd_size"] = f"{s['name']}: image is {w}x{h}, the dataset's frames are {self.size[1]}x{self.size[0]}"
        return out


def _as_is(x: Any) -> Any:
    return x


def _check_split(dataset: Dataset, split: str, workers: int, progress: bool, limit: int | None) -> SplitReport:
    report = SplitReport(split, count=len(dataset))
    probe = _Probe(dataset)
    if limit is not None and limit < len(probe):
        probe = torch.utils.data.Subset(probe, range(limit))
    report.checked = len(probe)
    loader = DataLoader(probe, batch_size=None, num_workers=workers, collate_fn=_as_is)
    sizes: Counter[str] = Counter()
    shares = []
    for r in tqdm(loader, total=len(probe), desc=f"check {split}", unit="sample", disable=not progress,
                  leave=False):
        if "error" in r:
            report.problems.append(Problem(r["index"], r["kind"], r["error"]))
            continue
        sizes[r["size"]] += 1
        if "odd_size" in r:
            report.problems.append(Problem(r["index"], "wrong size", r["odd_size"], skipped=False))
        if not r["has_gt"]:
            report.no_gt += 1
            continue
        if r["n_valid"] == 0:
            report.problems.append(Problem(r["index"], "all-invalid", f"{r['name']}: depth map has no valid pixel"))
            continue
        shares.append(r["valid"])
        report.depth_min = min(r["min"], report.depth_min if report.depth_min is not None else r["min"])
        report.depth_max = max(r["max"], report.depth_max if report.depth_max is not None else r["max"])
    report.encoding = getattr(dataset, "encoding", None)
    doubt = encoding_doubt(report.encoding, report.depth_max) if report.depth_max is not None and report.encoding \
        else None
    if doubt:
        report.warnings.append(doubt)
    report.sizes = dict(sizes.most_common())
    report.valid_share = sum(shares) / len(shares) if shares else None
    report.problems.sort(key=lambda p: p.index)
    return report


def check_dataset(spec: str | os.PathLike | dict[str, Any], splits: tuple[str, ...] = ("train", "test"),
                  workers: int = 0, progress: bool = True, limit: int | None = None) -> DatasetReport:
    """Load every sample of each split of ``spec`` (as ``build_dataset`` takes it: dict, name or path) once.

    Returns a DatasetReport: per split the sample count, image sizes, depth range (metres) and mean share of
    valid pixels, and every sample whose files are missing, unreadable, of the wrong size or all-invalid
    (listed, not raised). A split that cannot be opened gets ``error`` set. ``workers`` loads in parallel
    processes; ``limit`` checks only the first samples of each split; ``progress`` shows a bar per split.
    """
    label = str(spec.get("root") or spec.get("name")) if isinstance(spec, dict) else str(spec)
    reports = []
    for split in splits:
        try:
            dataset = build_dataset(spec, split=split)
        except DepthforgeError as e:
            reports.append(SplitReport(split, error=str(e)))
            continue
        reports.append(_check_split(dataset, split, workers, progress, limit))
    return DatasetReport(label, reports)


def format_report(report: DatasetReport, max_problems: int = 50) -> str:
    """The report as plain text: a table of the splits, then the problems (the first ``max_problems`` per split)."""
    table = Table(title=f"dataset {report.dataset}", title_justify="left")
    for col in ("split", "samples", "sizes (WxH)", "depth range (m)", "valid px", "no GT", "problems"):
        table.add_column(col, justify="left" if col in ("split", "sizes (WxH)") else "right")
    for s in report.splits:
        if s.error is not None:
            table.add_row(s.split, "-", "-", "-", "-", "-", "cannot open")
            continue
        sizes = ", ".join(f"{k} ({v})" if len(s.sizes) > 1 else k for k, v in list(s.sizes.items())[:3])
        if len(s.sizes) > 3:
            sizes += f", +{len(s.sizes) - 3} more"
        rng = f"{s.depth_min:.2f}-{s.depth_max:.2f}" if s.depth_min is not None else "-"
        share = f"{100 * s.valid_share:.1f} %" if s.valid_share is not None else "-"
        count = str(s.count) if s.checked == s.count else f"{s.checked} of {s.count}"
        table.add_row(s.split, count, sizes or "-", rng, share, str(s.no_gt), str(len(s.problems)))
    buf = io.StringIO()
    Console(file=buf, width=120, no_color=True, highlight=False).print(table)
    lines = [line.rstrip() for line in buf.getvalue().rstrip().splitlines()]
    encodings = {s.encoding for s in report.splits if s.encoding}
    for e in sorted(encodings):
        lines.append(f"depth files read as {ENCODING_TEXT.get(e, e)} (encoding {e}; --encoding to change)")
    for s in report.splits:
        lines += [f"warning: {s.split}: {w}" for w in s.warnings]
        if s.error is not None:
            lines.append(f"{s.split}: cannot open: {s.error}")
            continue
        if s.problems:
            kinds = Counter(p.kind for p in s.problems)
            lines.append(f"{s.split}: {len(s.problems)} bad samples ("
                         + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) + f"); training skips "
                         f"{s.skipped} of {s.count}")
            lines += [f"  [{p.kind}] #{p.index}: {p.message}" for p in s.problems[:max_problems]]
            if len(s.problems) > max_problems:
                lines.append(f"  ... and {len(s.problems) - max_problems} more")
    if report.ok:
        lines.append("no bad files found; see the warning above" if any(s.warnings for s in report.splits)
                     else "no problems found")
    return "\n".join(lines)
