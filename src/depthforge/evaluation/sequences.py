"""The loop over a video test set: any dataset with ``sequences() -> {clip: [indices in time order]}`` whose
samples carry ``intrinsics`` and ``pose`` (the ``synth-video`` suite, TUM RGB-D, a folder of frames with poses,
ScanNet, Sintel). Each clip is predicted frame by frame, aligned ONCE for the whole clip and scored with
``temporal.clip_metrics``; ``evaluate.evaluate`` and ``compare.compare`` use ``per_sequence``."""
from __future__ import annotations

import logging
import math
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from ..data import SkipBad
from .metrics import Protocol, compute_metrics, mean_metrics, to_metres
from .temporal import align_sequence, clip_metrics

log = logging.getLogger(__name__)

# The columns of a video test set: per-sequence aligned accuracy, then the temporal figures, then the per-frame
# aligned AbsRel that a video metric must not be (it hides a per-frame rescaling), for contrast.
VIDEO_COLUMNS = ["abs_rel", "d1", "tae", "flicker", "rmse", "frame_fit/abs_rel", "tae_gt"]
PER_CLIP = ("clip", "frames", "skipped", "tae_per_pair", "flicker_per_pair", "names")


def is_video(dataset) -> bool:
    """Whether a dataset is a set of clips (has ``sequences()``)."""
    return callable(getattr(dataset, "sequences", None))


def clip_names(dataset, limit: int | None = None) -> list[tuple[str, list[int]]]:
    """(clip, indices) of a video dataset, the first ``limit`` clips."""
    seqs = list(dataset.sequences().items())
    return seqs if limit is None else seqs[:limit]


def per_sequence(predictor, dataset, proto: Protocol, align_mode: str, limit: int | None = None,
                 progress: bool = True, keep: Callable | None = None, desc: str = "evaluating") -> list[dict]:
    """One row per clip (``temporal.clip_metrics`` plus "clip", "skipped" frames and "frame_fit/abs_rel": AbsRel
    with a fit per frame). ``limit``: the first N clips. Frames that fail to load are skipped and counted (as
    ``data.SkipBad`` does for images); a clip with no frame left is left out. Without every frame's intrinsics
    and pose a clip has no TAE (NaN), and its flicker comes from optical flow. ``keep(clip, frames)`` receives the
    clip's frames as dicts {"name", "image", "gt", "pred" (aligned metres)} for pictures.

    ``predictor``: ``.output`` ("metric" | "relative" | "disparity") and ``predict_tensor([1,3,H,W]) ->
    [1,1,H,W]``, called on each clip's frames in time order; a stateful one (temporal stabilisation) may have
    ``reset()``, called before each clip."""
    safe = SkipBad(dataset)
    exact = bool(getattr(dataset, "exact_depth", False))
    seqs = clip_names(dataset, limit)
    rows = []
    bar = tqdm(total=sum(len(ix) for _, ix in seqs), desc=desc, disable=not progress, unit="frame")
    for clip, indices in seqs:
        if callable(getattr(predictor, "reset", None)):
            predictor.reset()  # a stateful (stabilised, streaming) predictor starts each clip afresh
        frames = []
        for i in indices:
            sample = safe[i]
            bar.update(1)
            if sample is None:
                continue
            gt, valid = sample["depth"][0].numpy(), sample["valid"][0].numpy()
            raw = predictor.predict_tensor(sample["image"][None])[0, 0].cpu().numpy()
            moving = sample.get("moving")
            frames.append({"name": sample["name"], "raw": raw, "gt": gt.astype(np.float64),
                           "mask": proto.mask(gt, valid), "k": sample.get("intrinsics"), "pose": sample.get("pose"),
                           "image": sample["image"].permute(1, 2, 0).numpy(),
                           "static": None if moving is None else ~moving[0].numpy()})
        skipped = len(indices) - len(frames)
        if skipped:
            log.warning("%s: %d of %d frames could not be read and were skipped", clip, skipped, len(indices))
        if not frames or not any(f["mask"].any() for f in frames):
            continue
        gts, masks = [f["gt"] for f in frames], [f["mask"] for f in frames]
        depths = align_sequence([f["raw"] for f in frames], gts, masks, predictor.output, align_mode)
        row: dict[str, Any] = {"clip": clip, "skipped": skipped, "names": [f["name"] for f in frames]}
        posed = all(f["k"] is not None and f["pose"] is not None for f in frames)  # else no TAE, flow flicker
        row.update(clip_metrics(depths, gts, masks, proto, [f["k"].numpy() for f in frames] if posed else None,
                                [f["pose"].numpy() for f in frames] if posed else None,
                                [f["static"] for f in frames], [f["image"] for f in frames], exact=exact))
        per_frame = [compute_metrics(to_metres(f["raw"], f["gt"], f["mask"], predictor.output, align_mode),
                                     f["gt"], proto, valid=f["mask"])["abs_rel"] for f in frames]
        row["frame_fit/abs_rel"] = mean_metrics([{"a": a} for a in per_frame])["a"]
        rows.append(row)
        if keep is not None:
            keep(clip, [{"name": f["name"], "image": f["image"], "gt": np.where(f["mask"], f["gt"], 0.0),
                         "pred": d.astype(np.float32)} for f, d in zip(frames, depths)])
    bar.close()
    return rows


def summarize_clips(rows: list[dict]) -> dict[str, float]:
    """Means over clips of every per-clip figure (NaN ignored), plus "clips", "frames" and "skipped" counts."""
    means = mean_metrics([{k: v for k, v in r.items() if k not in PER_CLIP} for r in rows])
    means.update(clips=float(len(rows)), frames=float(sum(r["frames"] for r in rows)),
                 skipped=float(sum(r["skipped"] for r in rows)))
    return means


def markdown_clips(results: dict) -> str:
    """metrics.md of a video evaluation: the summary, then one line per clip."""
    cols = VIDEO_COLUMNS
    fmt = lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"  # noqa: E731
    lines = [f"# {results['checkpoint']} on {results['data']}", "",
             f"protocol {results['protocol']} (cap {results['max_depth']:g} m), output {results['output']}, "
             f"aligned once per clip ({results['align']}); TAE and flicker ×100, lower is better; "
             f"frame_fit/abs_rel: AbsRel with a fit per frame (hides flicker, for contrast); tae_gt: the ground "
             "truth's own TAE, the floor of the measurement.", "",
             "| clip | frames | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for r in results["per_clip"]:
        lines.append(f"| {r['clip']} | {r['frames']} | " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    m = results["model"]
    lines.append(f"| **mean** | {int(m['frames'])} | " + " | ".join(fmt(m.get(c)) for c in cols) + " |")
    if results.get("stabilize_ms") is not None:
        ms, st = results["model_ms"], results["stabilize_ms"]
        lines += ["", f"Stabilised: model {ms:.1f} ms a frame, stabiliser {st:.1f} ms a frame "
                      f"({100 * st / max(ms, 1e-9):.1f} % of the model's time)."]
    if m.get("skipped"):
        lines += ["", f"{int(m['skipped'])} frames could not be read and were skipped."]
    return "\n".join(lines) + "\n"


__all__ = ["VIDEO_COLUMNS", "is_video", "per_sequence", "summarize_clips", "markdown_clips"]
