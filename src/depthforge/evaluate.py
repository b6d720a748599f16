"""Evaluation with the field's protocol, the seed's own two figures, failure-mode metrics, and the trivial
baselines (a constant depth; the training set's per-pixel mean depth) on the same images."""
from __future__ import annotations

import argparse
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

from .checkpoint import model_from, read_checkpoint
from .config import dataset_spec
from .data import DATASETS, SkipBad, build_dataset, collate, detect_format
from .data.io import ensure_dir, write_bytes, write_image
from .errors import DepthforgeError
from .api import from_module
from .losses import build_loss
from .evaluation.metrics import ALIGN_MODES, METRIC_NAMES, PROTOCOLS, Protocol, align, compute_metrics, edge_metrics, \
    get_protocol, mean_metrics, ordinal_error, soft_accuracy

log = logging.getLogger(__name__)

SEED_COLUMNS = ["seed_loss", "seed_acc"]
FAILURE_COLUMNS = ["ordinal_err", "edge_f1"]
COLUMNS = list(METRIC_NAMES) + SEED_COLUMNS + FAILURE_COLUMNS
# Published δ1 on the NYU-Depth v2 test split (Eigen crop, 10 m cap), to place a model's number among them.
NYU_ANCHORS = {"DenseDepth": 0.846, "BinsFormer": 0.925, "Depth Anything V2": 0.984}


def _protocol_for(dataset_name: str | None, cfg: dict) -> str:
    if dataset_name in ("nyu", "kitti"):
        return dataset_name
    return cfg.get("eval", {}).get("protocol", "none")


def _test_spec(cfg: dict, data: str | None) -> dict[str, Any]:
    """The dataset to evaluate on: ``--data`` (a registered name or a dataset path) or the recipe's test set."""
    test = cfg.get("test_data") or {}
    if data is None:
        section = test or cfg["data"]
    elif data in DATASETS:  # by name: the recipe's own test options when it names the same dataset
        section = test if test.get("name") == data else {"name": data}
    else:
        section = {"name": detect_format(data), "root": data}
    return dataset_spec(section, cfg.get("data", {}).get("size", (240, 320)))


def image_row(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, protocol: Protocol, seed_loss) -> dict[str, float]:
    """All columns for one image: pred, gt metres (H,W) at gt's size; mask: the protocol's pixels
    (``protocol.mask``), which every column uses."""
    cap = protocol.max_depth
    row = compute_metrics(pred, gt, protocol, valid=mask)
    p = torch.from_numpy(np.clip(pred, 0, cap) / cap)[None, None].float()
    g = torch.from_numpy(gt / cap)[None, None].float()
    v = torch.from_numpy(mask)[None, None]
    row["seed_loss"] = float(seed_loss(p, g, v)) if v.any() else math.nan
    row["seed_acc"] = soft_accuracy(pred, gt, mask, cap)
    row["ordinal_err"] = ordinal_error(pred, gt, mask)
    row["edge_f1"] = edge_metrics(pred, gt, mask)["f1"]
    return row


def _means(rows: list[dict]) -> dict[str, float]:
    return mean_metrics([{c: row[c] for c in COLUMNS} for row in rows])


def evaluate(checkpoint: str | Path, data: str | None = None, protocol: str | None = None,
             align_mode: str | None = None, flip: bool = False, max_depth: float | None = None,
             limit: int | None = None, out: str | Path | None = None, pictures: bool = True,
             progress: bool = True, device: str | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint; writes metrics.json, metrics.md and best_worst.png to ``out`` and returns the
    results dict: {"model": means, "baselines": {name: means}, "per_image": [...], "protocol": ..., ...}."""
    ckpt = read_checkpoint(checkpoint)
    model, info = model_from(ckpt, checkpoint)
    baselines = ckpt.get("baselines")
    out = ensure_dir(out or Path(checkpoint).resolve().parent.parent / "eval")
    cfg = info.get("config") or {}
    spec = _test_spec(cfg, data)
    dataset = build_dataset(spec, split="test")
    protocol_name = protocol or _protocol_for(spec["name"], cfg)
    if max_depth is None and protocol_name == cfg.get("eval", {}).get("protocol"):
        max_depth = cfg["eval"].get("max_depth")  # the cap the model was validated with
    proto = get_protocol(protocol_name, max_depth)
    cap = proto.max_depth
    align_mode = align_mode or ("none" if model.metric else "median")
    if align_mode not in ALIGN_MODES:
        raise DepthforgeError(f"--align {align_mode!r}: choose from {', '.join(ALIGN_MODES)}")
    if not model.metric and align_mode == "none":
        log.warning("this model predicts relative depth; without --align its metres are not comparable")
    seed_loss = build_loss("seed")
    predictor = from_module(model, info, device, resize="train", flip=flip)
    scale = 1.0 if model.metric else model.max_depth  # the seed's normalised output is depth / max_depth

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
        depth = predictor.predict_tensor(sample["image"])[0, 0].cpu().numpy() * scale
        if align_mode != "none":
            depth = align(depth, gt, mask, align_mode)
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
        "checkpoint": str(checkpoint), "data": str(data or spec), "protocol": protocol_name,
        "max_depth": cap, "align": align_mode, "flip": flip, "images": len(rows["model"]),
        "model": _means(rows["model"]),
        "baselines": {k: _means(v) for k, v in rows.items() if k != "model" and v},
        "per_image": rows["model"],
    }
    if protocol_name == "nyu":
        results["anchors"] = dict(NYU_ANCHORS)
    write_bytes(out / "metrics.json", json.dumps(results, indent=2, default=float).encode())
    write_bytes(out / "metrics.md", markdown_table(results).encode())
    if pictures and kept:
        from .viz import grid, panel

        write_image(out / "best_worst.png", grid([panel(k["pred"], k["image"], k["gt"]) for _, k in kept]))
    results["out"] = str(out)
    return results


LABELS = {"model": "model", "constant": "constant depth (train mean)", "mean_map": "per-pixel train mean"}


def _table_rows(results: dict) -> list[tuple[str, dict]]:
    return [("model", results["model"])] + [(LABELS[k], v) for k, v in results["baselines"].items()]


def markdown_table(results: dict) -> str:
    head = f"Evaluation of `{results['checkpoint']}` on {results['images']} images, protocol " \
           f"`{results['protocol']}` (cap {results['max_depth']:g} m), align `{results['align']}`\n\n"
    lines = ["| | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for label, m in _table_rows(results):
        lines.append(f"| {label} | " + " | ".join(f"{m[c]:.4f}" for c in COLUMNS) + " |")
    note = "\n\nd1..d3: higher is better; errors: lower is better. seed_loss / seed_acc are the seed's own " \
           "loss and soft accuracy (its reported 0.188 / 0.768). ordinal_err: share of point pairs in reversed " \
           "depth order; edge_f1: depth-boundary F1.\n"
    return head + "\n".join(lines) + note + (f"\n{anchor_line(results)}\n" if results.get("anchors") else "")


def anchor_line(results: dict) -> str:
    """Published δ1 beside this model's, e.g. 'published δ1 on NYU-Depth v2: DenseDepth 0.846 · ... — this model:
    0.712'."""
    published = " · ".join(f"{name} {d1:.3f}" for name, d1 in results["anchors"].items())
    return f"published δ1 on NYU-Depth v2: {published} — this model: {results['model']['d1']:.3f}"


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{results['images']} images · protocol {results['protocol']} · "
                        f"cap {results['max_depth']:g} m · align {results['align']}")
    table.add_column("")
    for c in COLUMNS:
        table.add_column(c, justify="right")
    for label, m in _table_rows(results):
        table.add_row(label, *(f"{m[c]:.3f}" for c in COLUMNS))
    Console(width=200).print(table)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a depthforge checkpoint (.ckpt)")
    p.add_argument("--data", help="dataset: 'synth', a registered name, or a dataset folder/zip/.mat "
                   "(default: the recipe's test set)")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), help="crop and depth cap (default: from the data)")
    p.add_argument("--max-depth", type=float, help="override the protocol's depth cap (metres)")
    p.add_argument("--align", choices=ALIGN_MODES, help="align relative predictions (default: none for metric "
                   "models, median otherwise)")
    p.add_argument("--flip", action="store_true", help="average with the horizontally flipped prediction")
    p.add_argument("--limit", type=int, help="evaluate the first N images only")
    p.add_argument("--out", help="output folder (default: RUN/eval)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    results = evaluate(args.checkpoint, data=args.data, protocol=args.protocol, align_mode=args.align,
                       flip=args.flip, max_depth=args.max_depth, limit=args.limit, out=args.out,
                       progress=not args.no_progress, device=args.device)
    print_table(results)
    if results.get("anchors"):
        print(anchor_line(results))
    print(f"results: {results['out']}/metrics.json, metrics.md, best_worst.png")
    return 0
