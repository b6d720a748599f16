"""Evaluation with the field's protocol, the seed's own two figures, failure-mode metrics (``failure.py``), and
the trivial baselines (a constant depth; the training set's per-pixel mean depth) on the same images.

``per_image`` is the one loop over a test set; ``evaluate`` (one model) and ``compare.compare`` (many) use it."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data import DATASETS, SkipBad, build_dataset, collate, default_protocol, detect_format
from ..files import ensure_dir, write_bytes, write_image
from ..errors import DepthforgeError
from ..inference.load import Opened, open_model
from ..inference.prompt import PROMPT_ROWS, prompt_from_depth
from ..recipe import Recipe
from ..losses import build_loss
from .failure import DISTANCE_NAMES, DISTANCE_TOP, distance_errors, failure_row, occlusion_edges, sample_masks
from .report import markdown_table
from .metrics import ALIGN_MODES, DEFAULT_ALIGN, Protocol, compute_metrics, edge_metrics, \
    get_protocol, mean_metrics, ordinal_error, soft_accuracy, to_metres

log = logging.getLogger(__name__)

# Images per failure-mode suite unless told: the glass suite renders with Mitsuba (seconds a scene, then cached).
SUITE_N = 20
SUITES = ("edges", "clutter", "glass")
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


def suite_spec(suite: str, size: tuple[int, int], n: int = SUITE_N) -> dict[str, Any]:
    """The test split of a failure-mode suite of synthetic rooms (``data/synth/suites.py``) at (H, W)."""
    if suite not in SUITES:
        raise DepthforgeError(f"suite {suite!r}: choose from {', '.join(SUITES)}")
    if not 1 <= n <= MAX_SUITE_N:
        raise DepthforgeError(f"suite-n {n}: scenes per suite must be 1..{MAX_SUITE_N}")
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
        return test.spec(size) if test is not None and test.name == data else {"name": data, "size": size}
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
    # (ibims1-official), and iBims-1's distance bands then reach 20 m, as its newer script's
    row["seed_loss"] = row["seed_acc"] = math.nan
    if seed_loss is not None and mask.any():
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
    mode = align_mode or (recipe.eval.align if recipe and recipe.eval.align else DEFAULT_ALIGN[predictor.output])
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
    ``baselines``), one ``image_row`` per image with a ground truth. A glass sample's rows also hold the metrics
    against its ``depth_through`` (the Kinect-like convention) under "through/...". ``keep(index, sample, depth,
    row)`` is called for every evaluated image (pictures)."""
    check_limit(limit)
    seed_loss = build_loss("seed", max_depth=proto.max_depth) if math.isfinite(proto.max_depth) else None
    n = len(dataset) if limit is None else min(limit, len(dataset))
    safe = SkipBad(torch.utils.data.Subset(dataset, range(n)))
    rows: dict[str, list[dict]] = {"model": [], "constant": [], "mean_map": []}
    loader = DataLoader(safe, batch_size=1, collate_fn=collate)
    prompted = predictor.contract.prompt
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
        out = predictor.predict_tensor(sample["image"], prompt=prompt, camera=predictor.estimates_camera)
        raw = (out[0] if predictor.estimates_camera else out)[0, 0].cpu().numpy()
        depth = to_metres(raw, gt, mask, predictor.output, align_mode)
        row = image_row(depth, gt, mask, proto, seed_loss, masks)
        if predictor.estimates_camera and "intrinsics" in sample:
            # the focal-length error of the model's camera estimate: |f_pred - f_gt| / f_gt, on fx
            f_gt = float(sample["intrinsics"][0, 0, 0])
            row["focal_rel_err"] = abs(float(out[1][0, 0]) - f_gt) / f_gt
        if "depth_through" in sample:
            through = sample["depth_through"][0, 0].numpy()
            t_mask = proto.mask(through, through > 0)
            t_depth = to_metres(raw, through, t_mask, predictor.output, align_mode)
            row.update({f"through/{k}": v for k, v in image_row(t_depth, through, t_mask, proto, seed_loss,
                                                                  masks).items() if k not in NOT_METRICS})
        tags = {"name": sample["name"][0]} | ({"clutter": float(sample["clutter"][0])} if "clutter" in sample else {})
        rows["model"].append(row | tags)
        if baselines:
            h, w = gt.shape
            mean_map = F.interpolate(baselines["mean_map"][None, None], size=(h, w), mode="bilinear",
                                     align_corners=False)[0, 0].numpy()
            for key, pred in (("constant", np.full((h, w), baselines["constant"], np.float32)),
                              ("mean_map", mean_map)):
                rows[key].append(image_row(pred, gt, mask, proto, seed_loss, masks) | tags)
        if keep is not None:
            keep(index, sample, depth, rows["model"][-1])
    return rows


def default_out(source: str | Path) -> Path:
    """RUN/eval for a training checkpoint, outputs/eval otherwise."""
    return Path(source).resolve().parent.parent / "eval" if Path(source).is_file() else Path("outputs") / "eval"


def evaluate(source: str | Path, data: str | None = None, protocol: str | None = None,
             align_mode: str | None = None, flip: bool = False, max_depth: float | None = None,
             limit: int | None = None, out: str | Path | None = None, pictures: bool = True,
             progress: bool = True, device: str | None = None, suite: str | None = None,
             suite_n: int = SUITE_N) -> dict[str, Any]:
    """Evaluate a model (checkpoint, export, Hugging Face folder or hub id; see ``inference.load``); writes
    metrics.json, metrics.md and best_worst.png to ``out`` and returns the results dict: {"model": means,
    "baselines": {name: means}, "per_image": [...], "protocol": ..., "edges": ..., ...}.

    ``suite`` ("edges", "clutter", "glass") evaluates on ``suite_n`` scenes of that failure-mode suite at the
    model's training size instead of ``data``. Relative and disparity outputs are aligned to the ground truth per
    image (``metrics.to_metres``; default per output kind, ``DEFAULT_ALIGN``), and the results say how."""
    check_limit(limit)
    suite_spec(suite or SUITES[0], (8, 8), suite_n)  # before loading the model
    predictor, recipe, baselines, _ = open_for_eval(source, device, flip)
    out = ensure_dir(out or default_out(source))
    if suite is not None:
        spec = suite_spec(suite, recipe.size if recipe else (240, 320), suite_n)
        baselines = baselines if recipe and tuple(spec["size"]) == recipe.size else None
    else:
        spec = dataset_spec(recipe, data)
    dataset = build_dataset(spec, split="test")
    protocol_name, proto = choose_protocol(spec["name"], recipe, protocol, max_depth)
    align_mode = align_for(predictor, recipe, align_mode)
    if not predictor.metric and align_mode == "none":
        log.warning("this model predicts %s; without --align its values are not metres", predictor.output)

    kept: list[tuple[float, dict]] = []

    def keep(index, sample, depth, row):
        nonlocal kept
        kept.append((row["abs_rel"], {"pred": depth, "gt": np.where(sample["valid"][0, 0].numpy(),
                                                                    sample["depth"][0, 0].numpy(), 0),
                                      "image": sample["image"][0].permute(1, 2, 0).numpy()}))
        kept = sorted(kept, key=lambda t: (math.isnan(t[0]), t[0]))
        kept = kept[:3] + kept[-3:] if len(kept) > 6 else kept

    rows = per_image(predictor, dataset, proto, align_mode, baselines, limit, progress, keep if pictures else None)
    if not rows["model"]:
        raise DepthforgeError(f"{data or spec['name']}: no sample with ground truth could be evaluated")
    results = {
        "checkpoint": str(source), "data": str(suite and f"synth suite {suite}" or data or spec),
        "suite": suite, "protocol": protocol_name, "max_depth": proto.max_depth, "output": predictor.output,
        "align": align_mode, "flip": predictor.flip, "images": len(rows["model"]), "edges": edges_used(rows["model"]),
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
        from ..viz.panels import grid, panel

        write_image(out / "best_worst.png", grid([panel(k["pred"], k["image"], k["gt"]) for _, k in kept]))
    results["out"] = str(out)
    return results
