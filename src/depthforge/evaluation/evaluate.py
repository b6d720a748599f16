"""Evaluation with the field's protocol, the seed's own two figures, failure-mode metrics, and the trivial
baselines (a constant depth; the training set's per-pixel mean depth) on the same images."""
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

from ..models.checkpoint import model_from, read_checkpoint
from ..data import DATASETS, SkipBad, build_dataset, collate, detect_format
from ..files import ensure_dir, write_bytes, write_image
from ..errors import DepthforgeError
from ..inference.load import load
from ..inference.predictor import from_module
from ..recipe import Recipe, validate
from ..losses import build_loss
from .report import COLUMNS, markdown_table
from .metrics import ALIGN_MODES, DEFAULT_ALIGN, Protocol, compute_metrics, edge_metrics, \
    get_protocol, mean_metrics, ordinal_error, soft_accuracy, to_metres

log = logging.getLogger(__name__)

# Published δ1 on the NYU-Depth v2 test split (Eigen crop, 10 m cap), to place a model's number among them.
NYU_ANCHORS = {"DenseDepth": 0.846, "BinsFormer": 0.925, "Depth Anything V2": 0.984}


def _protocol_for(dataset_name: str | None, recipe: Recipe | None) -> str:
    if dataset_name in ("nyu", "kitti", "ibims1"):
        return dataset_name
    return recipe.eval.protocol if recipe else "none"


def _test_spec(recipe: Recipe | None, data: str | None) -> dict[str, Any]:
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


def _open(source: str | Path, device: str | None, flip: bool):
    """(predictor, its recipe or None, the baselines a training checkpoint carries or None)."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() not in (".onnx", ".xml"):
        ckpt = read_checkpoint(path)
        model, info = model_from(ckpt, path)
        predictor, baselines = from_module(model, info, device, resize="train", flip=flip), ckpt.get("baselines")
    else:
        predictor, baselines = load(source, device=device, resize="train", flip=flip), None
    cfg = predictor.info.get("config") or {}
    try:
        recipe = validate(cfg) if cfg else None
    except DepthforgeError:  # a recipe of an older version: evaluate with --data
        recipe = None
    return predictor, recipe, baselines


def image_row(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, protocol: Protocol, seed_loss) -> dict[str, float]:
    """All columns for one image: pred, gt metres (H,W) at gt's size; mask: the protocol's pixels
    (``protocol.mask``), which every column uses."""
    cap = protocol.max_depth
    row = compute_metrics(pred, gt, protocol, valid=mask)
    p = torch.from_numpy(np.clip(pred, 0, cap))[None, None].float()
    g = torch.from_numpy(gt)[None, None].float()
    v = torch.from_numpy(mask)[None, None]
    row["seed_loss"] = float(seed_loss(p, g, v)) if v.any() else math.nan
    row["seed_acc"] = soft_accuracy(pred, gt, mask, cap)
    row["ordinal_err"] = ordinal_error(pred, gt, mask)
    row["edge_f1"] = edge_metrics(pred, gt, mask)["f1"]
    return row


def _means(rows: list[dict]) -> dict[str, float]:
    return mean_metrics([{c: row[c] for c in COLUMNS} for row in rows])


def evaluate(source: str | Path, data: str | None = None, protocol: str | None = None,
             align_mode: str | None = None, flip: bool = False, max_depth: float | None = None,
             limit: int | None = None, out: str | Path | None = None, pictures: bool = True,
             progress: bool = True, device: str | None = None) -> dict[str, Any]:
    """Evaluate a model (checkpoint, export, Hugging Face folder or hub id; see ``inference.load``); writes
    metrics.json, metrics.md and best_worst.png to ``out`` and returns the results dict: {"model": means,
    "baselines": {name: means}, "per_image": [...], "protocol": ..., ...}.

    Relative and disparity outputs are aligned to the ground truth per image (``metrics.to_metres``; default
    per output kind, ``DEFAULT_ALIGN``), and the results say how."""
    predictor, recipe, baselines = _open(source, device, flip)
    if recipe is not None:  # the recipe's test-time settings: flip averaging, full frames for crop-trained models
        predictor.resize, predictor.flip = recipe.eval.resize, flip or recipe.eval.flip
    out = ensure_dir(out or (Path(source).resolve().parent.parent / "eval" if Path(source).is_file()
                             else Path("outputs") / "eval"))
    spec = _test_spec(recipe, data)
    dataset = build_dataset(spec, split="test")
    protocol_name = protocol or _protocol_for(spec["name"], recipe)
    if max_depth is None and recipe is not None and protocol_name == recipe.eval.protocol:
        max_depth = recipe.eval.max_depth  # the cap the model was validated with
    proto = get_protocol(protocol_name, max_depth)
    align_mode = align_mode or (recipe.eval.align if recipe and recipe.eval.align else DEFAULT_ALIGN[predictor.output])
    if align_mode not in ALIGN_MODES:
        raise DepthforgeError(f"--align {align_mode!r}: choose from {', '.join(ALIGN_MODES)}")
    if not predictor.metric and align_mode == "none":
        log.warning("this model predicts %s; without --align its values are not metres", predictor.output)
    seed_loss = build_loss("seed", max_depth=proto.max_depth)

    n = len(dataset) if limit is None else min(limit, len(dataset))
    safe = SkipBad(torch.utils.data.Subset(dataset, range(n)))
    rows: dict[str, list[dict]] = {"model": [], "constant": [], "mean_map": []}
    kept: list[tuple[float, dict]] = []
    for sample in tqdm(DataLoader(safe, batch_size=1, collate_fn=collate), total=n, desc="evaluating",
                       disable=not progress, unit="img"):
        if sample is None:
            continue
        gt, valid = sample["depth"][0, 0].numpy(), sample["valid"][0, 0].numpy()
        mask = proto.mask(gt, valid)
        raw = predictor.predict_tensor(sample["image"])[0, 0].cpu().numpy()
        depth = to_metres(raw, gt, mask, predictor.output, align_mode)
        row = image_row(depth, gt, mask, proto, seed_loss)
        row["name"] = sample["name"][0]
        rows["model"].append(row)
        if baselines:
            h, w = gt.shape
            mean_map = F.interpolate(baselines["mean_map"][None, None], size=(h, w), mode="bilinear",
                                     align_corners=False)[0, 0].numpy()
            for key, pred in (("constant", np.full((h, w), baselines["constant"], np.float32)),
                              ("mean_map", mean_map)):
                rows[key].append(image_row(pred, gt, mask, proto, seed_loss))
        if pictures:
            kept.append((row["abs_rel"], {"pred": depth, "gt": np.where(valid, gt, 0),
                                          "image": sample["image"][0].permute(1, 2, 0).numpy()}))
            kept = sorted(kept, key=lambda t: (math.isnan(t[0]), t[0]))
            kept = kept[:3] + kept[-3:] if len(kept) > 6 else kept
    if not rows["model"]:
        raise DepthforgeError(f"{data or spec['name']}: no sample with ground truth could be evaluated")
    results = {
        "checkpoint": str(source), "data": str(data or spec), "protocol": protocol_name,
        "max_depth": proto.max_depth, "output": predictor.output, "align": align_mode, "flip": predictor.flip, "images": len(rows["model"]),
        "model": _means(rows["model"]),
        "baselines": {k: _means(v) for k, v in rows.items() if k != "model" and v},
        "per_image": rows["model"],
    }
    if protocol_name == "nyu":
        results["anchors"] = dict(NYU_ANCHORS)
    write_bytes(out / "metrics.json", json.dumps(results, indent=2, default=float).encode())
    write_bytes(out / "metrics.md", markdown_table(results).encode())
    if pictures and kept:
        from ..viz.panels import grid, panel

        write_image(out / "best_worst.png", grid([panel(k["pred"], k["image"], k["gt"]) for _, k in kept]))
    results["out"] = str(out)
    return results
