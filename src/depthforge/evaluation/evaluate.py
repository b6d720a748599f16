"""Evaluation with the field's protocol, the seed's own two figures, failure-mode metrics (``failure.py``), and
the trivial baselines (a constant depth; the training set's per-pixel mean depth) on the same images.

``per_image`` is the one loop over a test set; ``evaluate`` (one model) and ``compare.compare`` (many) use it."""
from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data import DATA_ROOT_ENV, DATASETS, SkipBad, benchmark_spec, build_dataset, collate, default_protocol, \
    detect_format
from ..files import ensure_dir, write_bytes
from ..errors import DepthforgeError
from ..inference.load import Opened, open_model
from ..inference.prompt import PROMPT_ROWS, prompt_from_depth
from ..recipe import Recipe
from ..losses import build_loss
from .failure import (DISTANCE_NAMES, DISTANCE_TOP, distance_errors, failure_row, masked_metrics, occlusion_edges,
                      sample_masks)
from .report import markdown_table
from .sequences import is_video, markdown_clips, per_sequence, summarize_clips
from .metrics import ALIGN_MODES, Protocol, default_align, compute_metrics, edge_metrics, \
    get_protocol, mean_metrics, ordinal_error, soft_accuracy, to_metres

log = logging.getLogger(__name__)

# Images per failure-mode suite unless told: the glass suite renders with Mitsuba (seconds a scene, then cached).
SUITE_N = 20
FAILURE_SUITES = ("edges", "clutter", "glass")  # what "all" means
SUITES = FAILURE_SUITES + ("video",)  # video: clips of synthetic rooms (``data/synth/video.py``)
MAX_SUITE_N = 10_000  # a glass scene renders in seconds: more would take a day
# Per-image keys that are not metrics to average.
NOT_METRICS = ("name", "edges", "clutter", "overlaps", "pe_count", "by_distance")

# Published δ1 on the NYU-Depth v2 test split (Eigen crop, 10 m cap), to place a model's number among them.
NYU_ANCHORS = {"DenseDepth": 0.846, "BinsFormer": 0.925, "Depth Anything V2": 0.984}


def choose_protocol(dataset: str | None, recipe: Recipe | None, protocol: str | None = None,
                    max_depth: float | None = None) -> tuple[str, Protocol]:
    """(name, protocol) to evaluate registered dataset ``dataset`` with: ``protocol`` if given, else the
    dataset's own default (``data.default_protocol``), else the recipe's ``eval.protocol``, else "none". The depth
    cap is ``max_depth`` if given, else the recipe's ``eval.max_depth`` when the protocol is the one the model was
    validated with, else the protocol's own."""
    name = protocol or default_protocol(dataset) or (recipe.eval.protocol if recipe else "none")
    if max_depth is None and recipe is not None and name == recipe.eval.protocol:
        max_depth = recipe.eval.max_depth  # the cap the model was validated with
    return name, get_protocol(name, max_depth)


def protocol_for(spec: dict, dataset, recipe: Recipe | None, protocol: str | None = None,
                 max_depth: float | None = None) -> tuple[str, Protocol]:
    """``choose_protocol`` for ``dataset`` built from ``spec``; a folder of raw NYU-Depth v2 frames (480x640 with
    NYU's white border, ``data.nyu.has_nyu_border``) gets NYU's protocol (Eigen crop, 10 m) unless one is asked,
    and says so: scored whole, the border would count as a wall of wrong depth."""
    name, proto = choose_protocol(spec["name"], recipe, protocol, max_depth)
    if protocol is None and name != "nyu" and spec["name"] != "nyu" and len(dataset) > 0:
        from ..data.nyu import has_nyu_border

        try:
            image = dataset[0]["image"]
        except DepthforgeError:
            return name, proto
        if has_nyu_border(image.numpy() if hasattr(image, "numpy") else image):
            log.info("%s: 640x480 frames with NYU-Depth v2's white border: evaluated with the NYU protocol "
                     "(Eigen crop, 10 m cap); --protocol %s to score whole frames", spec.get("root", spec["name"]),
                     name)
            return choose_protocol(spec["name"], recipe, "nyu", max_depth)
    return name, proto


def suite_spec(suite: str, size: tuple[int, int], n: int = SUITE_N) -> dict[str, Any]:
    """The test split of a failure-mode suite of synthetic rooms (``data/synth/suites.py``) at (H, W); for
    "video", ``n`` clips of the video suite (``data/synth/video.py``)."""
    if suite not in SUITES:
        raise DepthforgeError(f"suite {suite!r}: choose from {', '.join(SUITES)}")
    if not 1 <= n <= MAX_SUITE_N:
        raise DepthforgeError(f"suite-n {n}: scenes per suite must be 1..{MAX_SUITE_N}")
    if suite == "video":
        return {"name": "synth-video", "n": int(n), "size": tuple(size)}
    return {"name": "synth", "suite": suite, "n": int(n), "size": tuple(size)}


def dataset_spec(recipe: Recipe | None, data: str | None) -> dict[str, Any]:
    """The dataset to evaluate on: ``--data`` (a registered name or a dataset path) or the recipe's test set."""
    if data is None:
        if recipe is None:
            raise DepthforgeError("this model has no recipe to take test data from; pass --data")
        return recipe.test_spec()
    size = recipe.size if recipe else (240, 320)
    test = recipe.test_data if recipe else None
    if data in DATASETS:  # by name: the recipe's own test options when it names the same dataset
        if test is not None and test.name == data:
            return test.spec(size)
        if DATASETS.info[data].get("benchmark") and os.environ.get(DATA_ROOT_ENV):
            # a benchmark set by name, where ``depthforge benchmark`` finds it (so compare puts it beside suites)
            return {**benchmark_spec(data, os.environ[DATA_ROOT_ENV])[0], "size": size}
        return {"name": data, "size": size}
    return {"name": detect_format(data), "root": data, "size": size}


def open_for_eval(source: str | Path, device: str | None, flip: bool) -> Opened:
    """``inference.load.open_model`` with the recipe's test-time settings (flip averaging, full frames for
    crop-trained models)."""
    opened = open_model(source, device=device, resize="train", flip=flip)
    if opened.recipe is not None:
        opened.predictor.resize, opened.predictor.flip = opened.recipe.eval.resize, flip or opened.recipe.eval.flip
    return opened


def image_row(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, protocol: Protocol, seed_loss,
              masks: dict | None = None) -> dict[str, Any]:
    """All columns for one image: pred, gt metres (H,W) at gt's size; mask: the protocol's pixels
    (``protocol.mask``), which every column uses; masks: the sample's (``failure.sample_masks``).

    Failure modes (``failure.failure_row``): DDE and WHDR always; DBE against the sample's exact ``edges``, else
    against edges derived from gt's depth discontinuities (``failure.occlusion_edges``) — "edges" says which;
    ``glass/...`` and ``rest/...`` inside and outside a ``glass`` mask."""
    cap = protocol.max_depth
    row: dict[str, Any] = compute_metrics(pred, gt, protocol, valid=mask)
    # the seed's two figures are in units of the cap (depth / max_depth): none without a finite cap
    # (ibims1-official), and iBims-1's distance bands then reach 20 m, as its newer script's; none either for an
    # image smaller than the seed's 11×11 SSIM window
    row["seed_loss"] = row["seed_acc"] = math.nan
    if seed_loss is not None and mask.any() and min(gt.shape) >= 11:
        p = torch.from_numpy(np.clip(pred, 0, cap))[None, None].float()
        row["seed_loss"] = float(seed_loss(p, torch.from_numpy(gt)[None, None].float(),
                                           torch.from_numpy(mask)[None, None]))
        row["seed_acc"] = soft_accuracy(pred, gt, mask, cap)
    row["ordinal_err"] = ordinal_error(pred, gt, mask)
    row["edge_f1"] = edge_metrics(pred, gt, mask)["f1"]
    masks = dict(masks or {})
    row["edges"] = "exact" if masks.get("edges") is not None else "derived"
    if masks.get("edges") is None:
        masks["edges"] = occlusion_edges(gt, mask)
    row.update(failure_row(pred, gt, mask, masks, protocol=protocol))
    bands = distance_errors(pred, gt, mask, top=math.ceil(cap) if math.isfinite(cap) else DISTANCE_TOP)
    row["by_distance"] = {k: v.tolist() for k, v in bands.items()}
    return row


def paired_glass(row: dict, twin_raw: np.ndarray, twin_gt: np.ndarray, glass: np.ndarray, proto: Protocol,
                 output: str, align_mode: str) -> dict[str, float]:
    """What the glass costs a model, with the renderer's look cancelled: its metrics on the scene's twin rendered
    without glass ("twin/..." inside the glass mask, "twin_rest/..." outside), and "glass_gap/abs_rel",
    "glass_gap/d1": the glass image's figure inside the mask (``row``'s "glass/...") minus the twin's there.

    twin_raw: the model's raw output on the twin (H,W); twin_gt: the twin's depth, metres (H,W); glass: the mask."""
    mask = proto.mask(twin_gt, twin_gt > 0)
    depth = to_metres(twin_raw, twin_gt, mask, output, align_mode)
    out = masked_metrics(depth, twin_gt, mask, glass, proto, name="twin", rest="twin_rest")
    for metric in ("abs_rel", "d1"):
        out[f"glass_gap/{metric}"] = row[f"glass/{metric}"] - out[f"twin/{metric}"]
    return out


def by_distance(rows: list[dict]) -> dict[str, list]:
    """iBims-1's distance-related errors over a test set (``failure.distance_errors``, 1-m bands to the cap): each
    band's mean over the images with pixels in it, {"band_m": [[0, 1], [1, 2], ...], "images": [...], "abs_rel",
    "rmse", "log10": [...]}; None where no image reaches a band."""
    tables = {k: np.array([r["by_distance"][k] for r in rows], dtype=float) for k in DISTANCE_NAMES}
    present = np.isfinite(tables["abs_rel"])
    counts = present.sum(0)
    out: dict[str, list] = {"band_m": [[k, k + 1] for k in range(len(counts))], "images": counts.tolist()}
    for k, t in tables.items():
        means = np.where(present, t, 0.0).sum(0) / np.maximum(counts, 1)
        out[k] = [float(m) if n else None for m, n in zip(means, counts)]
    return out


def summarize(rows: list[dict]) -> dict[str, float]:
    """Means of the per-image metrics (``nanmean``), plus "whdr_cluttered": WHDR over the cluttered half of the
    images (clutter score ≥ its median) when the rows carry the clutter suite's scores."""
    means = mean_metrics([{k: v for k, v in row.items() if k not in NOT_METRICS} for row in rows])
    subset = cluttered(rows)
    if subset:
        means["whdr_cluttered"] = mean_metrics([{"whdr": r["whdr"]} for r in subset])["whdr"]
    return means


def cluttered(rows: list[dict]) -> list[dict]:
    """The rows whose clutter score (visible pieces) is at least the median of those that have one."""
    scores = [r["clutter"] for r in rows if "clutter" in r]
    return [r for r in rows if r.get("clutter", -1) >= np.median(scores)] if scores else []


def edges_used(rows: list[dict]) -> str:
    """"exact", "derived" or "mixed": the ground-truth edges DBE was measured against."""
    kinds = {r.get("edges", "derived") for r in rows}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def align_for(predictor, recipe: Recipe | None, align_mode: str | None = None) -> str:
    """The alignment to use: as asked, else the recipe's, else the default for the model's output kind."""
    mode = align_mode or (recipe.eval.align if recipe and recipe.eval.align else default_align(predictor.contract))
    if mode not in ALIGN_MODES:
        raise DepthforgeError(f"--align {mode!r}: choose from {', '.join(ALIGN_MODES)}")
    return mode


def check_limit(limit: int | None) -> None:
    """``limit`` (images per test set) is None (all) or at least 1."""
    if limit is not None and limit < 1:
        raise DepthforgeError(f"limit {limit}: evaluate at least 1 image (leave it out for all)")


def per_image(predictor, dataset, proto: Protocol, align_mode: str, baselines: dict | None = None,
              limit: int | None = None, progress: bool = True, keep=None, desc: str = "evaluating"
              ) -> dict[str, list[dict]]:
    """The loop over a test set: {"model": rows, "constant": rows, "mean_map": rows} (baseline rows only with
    ``baselines``, aligned with ``align_mode`` as the model is), one ``image_row`` per image with a ground truth. A glass sample's rows also hold the metrics
    against its ``depth_through`` (the Kinect-like convention) under "through/...", and, where it has a twin
    rendered without glass, ``paired_glass``'s columns. ``keep(index, sample, depth, row)`` is called for every
    evaluated image (pictures)."""
    check_limit(limit)
    seed_loss = build_loss("seed", max_depth=proto.max_depth) if math.isfinite(proto.max_depth) else None
    n = len(dataset) if limit is None else min(limit, len(dataset))
    safe = SkipBad(torch.utils.data.Subset(dataset, range(n)))
    rows: dict[str, list[dict]] = {"model": [], "constant": [], "mean_map": []}
    loader = DataLoader(safe, batch_size=1, collate_fn=collate)
    # what the model takes and gives besides the image (a plain predictor-like object: neither)
    prompted = bool(getattr(getattr(predictor, "contract", None), "prompt", False))
    camera = bool(getattr(predictor, "estimates_camera", False))
    if prompted:
        log.info("%s takes a depth prompt: each image gets its ground truth downsampled to %d rows (nearest, holes "
                 "filled) as the prompt, as Prompt Depth Anything simulates a LiDAR", predictor.source or "the model",
                 PROMPT_ROWS)
    for index, sample in enumerate(tqdm(loader, total=n, desc=desc, disable=not progress, unit="img")):
        if sample is None:
            continue
        gt, valid = sample["depth"][0, 0].numpy(), sample["valid"][0, 0].numpy()
        mask = proto.mask(gt, valid)
        masks = sample_masks(sample)
        prompt = None
        if prompted:
            try:
                prompt = torch.from_numpy(prompt_from_depth(np.where(valid, gt, 0)))[None, None]
            except DepthforgeError as e:  # no usable ground truth to prompt with: no metrics either
                log.warning("%s: %s; skipped", sample["name"][0], e)
                continue
        extra = ({"prompt": prompt} if prompted else {}) | ({"camera": True} if camera else {})
        out = predictor.predict_tensor(sample["image"], **extra)
        raw = (out[0] if camera else out)[0, 0].cpu().numpy()
        depth = to_metres(raw, gt, mask, predictor.output, align_mode)
        row = image_row(depth, gt, mask, proto, seed_loss, masks)
        if camera and "intrinsics" in sample:
            # the focal-length error of the model's camera estimate: |f_pred - f_gt| / f_gt, on fx
            f_gt = float(sample["intrinsics"][0, 0, 0])
            row["focal_rel_err"] = abs(float(out[1][0, 0]) - f_gt) / f_gt
        if "depth_through" in sample:
            through = sample["depth_through"][0, 0].numpy()
            t_mask = proto.mask(through, through > 0)
            t_depth = to_metres(raw, through, t_mask, predictor.output, align_mode)
            row.update({f"through/{k}": v for k, v in image_row(t_depth, through, t_mask, proto, seed_loss,
                                                                  masks).items() if k not in NOT_METRICS})
        if "twin_image" in sample:
            twin_gt = sample["twin_depth"][0, 0].numpy()
            extra = {"prompt": torch.from_numpy(prompt_from_depth(twin_gt))[None, None]} if prompted else {}
            twin = predictor.predict_tensor(sample["twin_image"], **extra)[0, 0].cpu().numpy()
            row.update(paired_glass(row, twin, twin_gt, masks["glass"], proto,
                                    predictor.output, align_mode))
        tags = {"name": sample["name"][0]} | ({"clutter": float(sample["clutter"][0])} if "clutter" in sample else {})
        rows["model"].append(row | tags)
        if baselines:
            h, w = gt.shape
            mean_map = F.interpolate(baselines["mean_map"][None, None], size=(h, w), mode="bilinear",
                                     align_corners=False)[0, 0].numpy()
            for key, pred in (("constant", np.full((h, w), baselines["constant"], np.float32)),
                              ("mean_map", mean_map)):
                # aligned as the model is: a model fitted to each image must beat baselines fitted the same way
                depth = to_metres(pred, gt, mask, "metric", align_mode)
                brow = image_row(depth, gt, mask, proto, seed_loss, masks)
                if "twin_image" in sample:  # blind to the image: on the glass-free twin it predicts the same
                    brow.update(paired_glass(brow, pred, sample["twin_depth"][0, 0].numpy(), masks["glass"], proto,
                                             "metric", align_mode))
                rows[key].append(brow | tags)
        if keep is not None:
            keep(index, sample, depth, rows["model"][-1])
    return rows


def ranked(kept: list[tuple[float, dict]]) -> list[dict]:
    """The kept images (sorted by AbsRel, at most 3 best then 3 worst) with their row's "rank": "best 1" is the
    lowest AbsRel, "worst 1" the highest."""
    best = (len(kept) + 1) // 2 if len(kept) <= 6 else 3
    return [k | {"rank": f"best {i + 1}" if i < best else f"worst {len(kept) - i}"} for i, (_, k) in enumerate(kept)]


def default_out(source: str | Path) -> Path:
    """RUN/eval for a checkpoint of a training run (RUN/checkpoints/*.ckpt beside RUN/logs); otherwise
    ./eval-<name> in the working folder (a model file in /tmp or a hub id must not send the results elsewhere)."""
    path = Path(source)
    if path.is_file() and path.parent.name == "checkpoints" and (path.parent.parent / "logs").is_dir():
        return path.resolve().parent.parent / "eval"
    name = path.stem if path.exists() else str(source).rstrip("/").split("/")[-1]
    return Path("eval-" + (re.sub(r"[^\w.-]+", "_", name).strip("_") or "model"))


def check_fresh(out: str | Path) -> None:
    """One line when ``out`` holds an evaluation already (metrics.json): results are replaced only when asked."""
    if (Path(out) / "metrics.json").exists():
        raise DepthforgeError(f"{out}: holds an evaluation already (metrics.json); pass --overwrite to replace it "
                              "or --out for another folder")


def evaluate(source: str | Path, data: str | None = None, protocol: str | None = None,
             align_mode: str | None = None, flip: bool = False, max_depth: float | None = None,
             limit: int | None = None, out: str | Path | None = None, pictures: bool = True,
             progress: bool = True, device: str | None = None, suite: str | None = None,
             suite_n: int = SUITE_N, overwrite: bool = False, stabilize: bool = False) -> dict[str, Any]:
    """Evaluate a model (checkpoint, export, Hugging Face folder or hub id; see ``inference.load``); writes
    metrics.json, metrics.md and best_worst.png to ``out`` and returns the results dict: {"model": means,
    "baselines": {name: means}, "per_image": [...], "protocol": ..., "edges": ..., ...}.

    ``suite`` ("edges", "clutter", "glass") evaluates on ``suite_n`` scenes of that failure-mode suite at the
    model's training size instead of ``data``. ``out`` (default ``default_out``) must not hold an evaluation
    unless ``overwrite``. Relative and disparity outputs are aligned to the ground truth per
    image (``metrics.to_metres``; default per contract, ``default_align``), and the results say how.

    A video test set (``suite`` "video": ``suite_n`` clips; or ``data`` whose dataset has ``sequences()``) is
    evaluated per clip instead (``video_results``): aligned once per clip, with TAE and flicker; ``limit`` then
    counts clips; ``stabilize`` measures the prediction stabilised over each clip as ``predict`` makes it for
    videos (``inference.stabilize``)."""
    check_limit(limit)
    suite_spec(suite or SUITES[0], (8, 8), suite_n)  # before loading the model
    if stabilize and suite not in (None, "video"):
        raise DepthforgeError(f"--stabilize: a video test set only (--suite video, or --data with clips), not the "
                              f"{suite} suite")
    out = out or default_out(source)
    if not overwrite:
        check_fresh(out)
    predictor, recipe, baselines, _ = open_for_eval(source, device, flip)
    out = ensure_dir(out)
    if suite is not None:
        spec = suite_spec(suite, recipe.size if recipe else (240, 320), suite_n)
        baselines = baselines if recipe and tuple(spec["size"]) == recipe.size else None
    else:
        spec = dataset_spec(recipe, data)
    dataset = build_dataset(spec, split="test")
    protocol_name, proto = protocol_for(spec, dataset, recipe, protocol, max_depth)
    align_mode = align_for(predictor, recipe, align_mode)
    if not predictor.metric and align_mode == "none":
        log.warning("this model predicts %s; without --align its values are not metres", predictor.output)
    head = {"checkpoint": str(source), "data": str(suite and f"synth suite {suite}" or data or spec),
            "suite": suite, "protocol": protocol_name, "max_depth": proto.max_depth, "output": predictor.output,
            "align": align_mode, "flip": predictor.flip}
    if is_video(dataset):
        if stabilize:
            from ..inference.stabilize import Stabilized

            predictor, head["stabilized"] = Stabilized(predictor), True
        return video_results(predictor, dataset, proto, head, limit, out, pictures, progress)
    if stabilize:
        raise DepthforgeError("--stabilize: a video test set only (--suite video, or --data with clips)")

    kept: list[tuple[float, dict]] = []

    def keep(index, sample, depth, row):
        nonlocal kept
        masks = sample_masks(sample)
        kept.append((row["abs_rel"], {"pred": depth, "gt": np.where(sample["valid"][0, 0].numpy(),
                                                                    sample["depth"][0, 0].numpy(), 0),
                                      "image": sample["image"][0].permute(1, 2, 0).numpy(),
                                      "name": str(row["name"]), "abs_rel": row["abs_rel"], "d1": row["d1"],
                                      "masks": {k: masks[k] for k in ("glass", "transparent", "edges")
                                                if k in masks}}))
        kept = sorted(kept, key=lambda t: (math.isnan(t[0]), t[0]))
        kept = kept[:3] + kept[-3:] if len(kept) > 6 else kept

    rows = per_image(predictor, dataset, proto, align_mode, baselines, limit, progress, keep if pictures else None)
    if not rows["model"]:
        raise DepthforgeError(f"{data or spec['name']}: no sample with ground truth could be evaluated")
    results = {
        **head, "images": len(rows["model"]), "edges": edges_used(rows["model"]),
        "prompt": f"ground truth downsampled to {PROMPT_ROWS} rows" if predictor.contract.prompt else None,
        "model": summarize(rows["model"]),
        "baselines": {k: summarize(v) for k, v in rows.items() if k != "model" and v},
        "by_distance": by_distance(rows["model"]),
        "per_image": rows["model"],
    }
    if cluttered(rows["model"]):
        results["cluttered_images"] = len(cluttered(rows["model"]))
    if protocol_name == "nyu":
        results["anchors"] = dict(NYU_ANCHORS)
    write_bytes(out / "metrics.json", json.dumps(results, indent=2, default=float).encode())
    write_bytes(out / "metrics.md", markdown_table(results).encode())
    if pictures and kept:
        from ..viz.panels import best_worst_figure
        from ..viz.plots import save_png

        save_png(best_worst_figure(ranked(kept), f"{Path(str(source)).name}: best and worst images by AbsRel "
                                                 f"({len(rows['model'])} evaluated, protocol {protocol_name})"),
                 out / "best_worst.png")
    results["out"] = str(out)
    return results


def video_results(predictor, dataset, proto: Protocol, head: dict, limit: int | None, out: Path, pictures: bool,
                  progress: bool) -> dict[str, Any]:
    """``evaluate`` on a video test set: metrics.json {"model": means over clips, "per_clip": [...]}, metrics.md,
    and with ``pictures`` strip.png (input, depth, error of the first clip's frames) and tae.png (TAE per frame
    pair over time, one line per clip)."""
    shots: dict[str, list[dict]] = {}

    def keep(clip, frames):
        if not shots:
            shots[clip] = frames

    rows = per_sequence(predictor, dataset, proto, head["align"], limit, progress, keep if pictures else None)
    if not rows:
        raise DepthforgeError(f"{head['data']}: no clip with ground truth could be evaluated")
    results = {**head, "clips": len(rows), "model": summarize_clips(rows), "per_clip": rows}
    results.update(getattr(predictor, "timing", {}))  # a stabilised predictor: model and stabiliser ms per frame
    write_bytes(out / "metrics.json", json.dumps(results, indent=2, default=float).encode())
    write_bytes(out / "metrics.md", markdown_clips(results).encode())
    if pictures:
        from ..viz.video import strip_figure, tae_figure

        (clip, frames), = shots.items()
        strip_figure({Path(str(head["checkpoint"])).name: frames}, out / "strip.png",
                     f"{clip}: input, depth and error over time")
        tae_figure({r["clip"]: r["tae_per_pair"] for r in rows}, out / "tae.png",
                   f"TAE per frame pair ({head['checkpoint']})")
    results["out"] = str(out)
    return results
