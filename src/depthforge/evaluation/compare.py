"""Models side by side on the same test sets, in one report folder.

``budget_recipes`` sets recipes up to train under one budget (the first recipe's data, the same steps or minutes;
the ``compare`` command trains them with ``training.fit``). ``compare`` takes the trained runs, checkpoints,
exports and Hugging Face folders or hub ids; evaluates every model with ``evaluate.per_image`` on the first
recipe's test set, the failure-mode suites and any further datasets; and writes ``compare.json``,
``compare.md``, ``scenes_<set>.png`` (the same scenes for every model: image, ground truth, predictions, error
maps), ``accuracy_latency.png``, ``suites.png`` and ``index.html`` (``html.py``: one self-contained page).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import build_dataset
from ..errors import DepthforgeError
from ..files import ensure_dir, write_bytes
from ..recipe import Recipe, resolve
from .evaluate import SUITE_N, SUITES, _open, align_for, by_distance, check_limit, choose_protocol, cluttered, \
    dataset_spec, edges_used, per_image, suite_spec, summarize
from .metrics import METRIC_NAMES
from .tables import COST_COLUMNS, markdown, set_rows
from .report import FAILURE_COLUMNS, GLASS_COLUMNS, SEED_COLUMNS, higher_is_better

log = logging.getLogger(__name__)

MAIN_COLUMNS = list(METRIC_NAMES) + SEED_COLUMNS + FAILURE_COLUMNS
SET_COLUMNS = ["d1", "abs_rel", "rmse", "seed_acc"] + FAILURE_COLUMNS[:6] + \
              GLASS_COLUMNS[3:] + [f"through/{c}" for c in GLASS_COLUMNS]
# The bars of suites.png: one panel per column, a group of bars (one per model) per test set.
BAR_COLUMNS = ["d1", "abs_rel", "whdr", "dbe_comp", "glass/abs_rel", "through/abs_rel"]


SHARED = ("data.", "data=", "test_data", "seed=")  # keys every recipe takes from the first one
MAX_SCENES = 100  # pictured scenes per test set: each is a row of the side-by-side panel


def parse_recipe(text: str) -> tuple[str, list[str]]:
    """``NAME[:key=value,...]`` -> (name, overrides); a value may hold commas (``data.size=[64,96]``)."""
    name, _, rest = text.partition(":")
    if not name:
        raise DepthforgeError(f"--recipe {text!r}: expected NAME[:key=value,...]")
    overrides = [o for o in re.split(r",(?=[\w.]+=)", rest) if o] if rest else []
    for o in overrides:
        if "=" not in o:
            raise DepthforgeError(f"--recipe {text!r}: override {o!r} is not key=value")
    return name, overrides


def _unique(label: str, taken: set[str]) -> str:
    out, i = label, 2
    while out in taken:
        out, i = f"{label} #{i}", i + 1
    taken.add(out)
    return out


MAX_BUDGET_STEPS = 10_000_000
MAX_BUDGET_MINUTES = 7 * 24 * 60.0  # a week


def check_budget(steps: int | None, minutes: float | None) -> None:
    """One line for a training budget out of 1..MAX_BUDGET_STEPS steps or (0, MAX_BUDGET_MINUTES] minutes."""
    if steps is not None and not 1 <= steps <= MAX_BUDGET_STEPS:
        raise DepthforgeError(f"budget-steps {steps}: must be 1..{MAX_BUDGET_STEPS:,}")
    if minutes is not None and not 0 < minutes <= MAX_BUDGET_MINUTES:  # also NaN
        raise DepthforgeError(f"budget-minutes {minutes}: must be in (0, {MAX_BUDGET_MINUTES:g}] (a week)")


def budget_recipes(specs: list[str], runs: Path, steps: int | None, minutes: float | None
                   ) -> list[tuple[str, Recipe]]:
    """(label, recipe) for each ``--recipe`` spec: the first recipe's data, test data and seed for all (the same
    data) and the run under ``runs/<label>``. With ``steps``: ``train.max_steps = steps`` and epochs enough to
    reach it (the schedule spans the budget). With ``minutes``: ``train.max_time = minutes``; the recipe keeps
    its epochs and schedule and the trainer stops it at the time limit."""
    if (steps is None) == (minutes is None):
        raise DepthforgeError("recipes train under one budget: give --budget-steps N or --budget-minutes M")
    check_budget(steps, minutes)
    out, taken, first = [], set(), None
    for spec in specs:
        name, overrides = parse_recipe(spec)
        recipe = resolve(name, overrides)
        own = [o for o in overrides if not o.startswith(SHARED)]  # the shared data need not name each model
        label = _unique(name + (f" [{', '.join(own)}]" if own else ""), taken)
        cfg = recipe.to_dict()
        if first is None:
            first = cfg
        cfg.update(seed=first["seed"], data=copy.deepcopy(first["data"]), test_data=copy.deepcopy(first["test_data"]),
                   out=str(runs / re.sub(r"[^\w.=-]+", "_", label).strip("_")))
        if steps is not None:
            cfg["train"].update(max_steps=int(steps), epochs=max(int(steps), 1))
        else:
            cfg["train"]["max_time"] = float(minutes)
        out.append((label, resolve(cfg)))
    return out


class Timed:
    """A predictor whose ``predict_tensor`` calls are timed (seconds, in ``times``): latency is measured on the
    evaluation's own images, spread over its whole run, rather than in a burst that a busy machine can spoil."""

    def __init__(self, predictor):
        self.predictor, self.times, self.size = predictor, [], None
        self.output = predictor.output

    def predict_tensor(self, images: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.predictor.predict_tensor(images)
        self.times.append(time.perf_counter() - start)
        self.size = list(images.shape[-2:])
        return out


def latency(times: list[float]) -> dict[str, float]:
    """{"latency_ms": the fastest call, "latency_median_ms"} of one-image calls (the first two, warm-up, dropped).
    The fastest is the figure least disturbed by other work on a shared machine (as ``timeit`` advises); the
    median shows how much the load added."""
    t = np.array(times[2:] if len(times) > 2 else times) * 1000
    return {"latency_ms": float(t.min()), "latency_median_ms": float(np.median(t))}


def model_facts(predictor, size: tuple[int, int]) -> dict[str, Any]:
    """Parameters and GFLOPs (one forward pass, without flip averaging, at the size the model runs at for an
    (H, W) test image); NaN for exports."""
    from ..models.catalog import gflops

    module = predictor.module
    runs_at = predictor.runs_at(*size)
    return {"parameters": float(sum(p.numel() for p in module.parameters())) if module is not None else math.nan,
            "gflops": gflops(copy.deepcopy(module).cpu().eval(), runs_at) if module is not None else math.nan,
            "runs_at": list(runs_at)}


def best(rows: dict[str, dict], columns: list[str]) -> dict[str, list[str]]:
    """{column: the labels with its best value} (ties share it; NaN ignored; direction: ``higher_is_better``)."""
    out = {}
    for c in columns:
        values = {label: m[c] for label, m in rows.items() if isinstance(m.get(c), (int, float))
                  and not math.isnan(m[c])}
        if values:
            top = (max if higher_is_better(c) else min)(values.values())
            out[c] = [label for label, v in values.items() if v == top]
    return out


def _columns(rows: dict[str, dict], wanted: list[str]) -> list[str]:
    return [c for c in wanted if any(isinstance(m.get(c), float) and not math.isnan(m[c]) for m in rows.values())]


def check_suites(suites: list[str]) -> list[str]:
    """Suite names, checked (before any training); "all" = every failure-mode suite, "none" = none."""
    if list(suites) in (["all"], ["none"]):
        return list(SUITES) if suites[0] == "all" else []
    for s in suites:
        suite_spec(s, (8, 8))
    return list(suites)


def check_counts(suite_n: int, limit: int | None, scenes: int) -> None:
    """One line for a count ``compare`` cannot use: scenes per suite, images per test set, pictured scenes."""
    suite_spec(SUITES[0], (8, 8), suite_n)
    check_limit(limit)
    if not 0 <= scenes <= MAX_SCENES:
        raise DepthforgeError(f"scenes {scenes}: pictured scenes per test set must be 0..{MAX_SCENES}")


def _label(path: Path) -> str:
    """A model file's label: its run's folder for RUN/checkpoints/last.ckpt (several runs side by side stay apart;
    "RUN (best.ckpt)" for another checkpoint of the run), else the file name."""
    if path.parent.name != "checkpoints":
        return path.name
    return path.parent.parent.name + ("" if path.name == "last.ckpt" else f" ({path.name})")


def compare(models: list[str | dict], suites: list[str] = ("edges", "clutter"), data: list[str] = (),
            out: str | Path = "outputs/compare", suite_n: int = SUITE_N, limit: int | None = None, scenes: int = 2,
            progress: bool = True, device: str | None = None, budget: dict | None = None,
            command: str | None = None) -> dict[str, Any]:
    """Evaluate ``models`` on the same test sets — the first model's recipe's test set (trained runs come first),
    the failure-mode ``suites`` (``suite_n`` scenes each, at that test set's size) and ``data`` — and write the
    report folder ``out``. A model is a checkpoint, an export, a Hugging Face folder or hub id, or a trained run
    {"label", "source" (its checkpoint), "train": {"steps", "seconds", "batch_size", ...}}. ``limit``: at most
    that many images per test set; ``scenes``: pictured scenes per set; ``budget``, ``command``: recorded.
    Returns the report dict (what compare.json holds)."""
    if not models:
        raise DepthforgeError("nothing to compare: give --recipe and/or --model")
    check_counts(suite_n, limit, scenes)
    suites = check_suites(suites)
    out = ensure_dir(out)
    entries, taken = [], set()
    for m in models:
        if isinstance(m, dict):
            entries.append({"kind": "recipe", **m, "label": _unique(m["label"], taken)})
            continue
        p = Path(m)
        kind = "checkpoint" if p.is_file() and p.suffix.lower() in (".ckpt", ".pt", ".pth") else \
            "export" if p.suffix.lower() in (".onnx", ".xml") else "pretrained"
        entries.append({"label": _unique(_label(p) if p.exists() else str(m), taken), "kind": kind,
                        "source": str(m), "train": None})

    opened = []
    for e in entries:
        predictor, recipe, _ = _open(e["source"], device, flip=False)
        opened.append((e, predictor, recipe))
    ref = next((r for _, _, r in opened if r is not None), None)
    size = ref.size if ref is not None else (240, 320)
    sets: list[tuple[str, dict]] = []
    if ref is not None:
        sets.append(("test", ref.test_spec()))
    sets += [(s, suite_spec(s, size, suite_n)) for s in suites]
    sets += [(d, dataset_spec(ref, d)) for d in data]
    if not sets:
        raise DepthforgeError("no test set: none of the models carries a recipe; pass --data or --suites")

    for e, predictor, _ in opened:
        # before any prediction: a model's caches filled under inference_mode (BEiT's relative position bias) would
        # break the FLOP counter, which runs with autograd
        e.update(model_facts(predictor, size))
    results: dict[str, dict[str, Any]] = {name: {"models": {}} for name, _ in sets}
    pictures: dict[str, list[dict]] = {name: [] for name, _ in sets}
    for name, spec in sets:
        dataset = build_dataset(spec, split="test")
        proto_name, proto = choose_protocol(spec["name"], ref)
        results[name].update(spec={k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()},
                             protocol=proto_name, max_depth=proto.max_depth)
        for e, predictor, recipe in opened:
            e.setdefault("align", align_for(predictor, recipe))
            e["output"] = predictor.output

            def keep(index, sample, depth, row, label=e["label"], shots=pictures[name]):
                if index >= scenes:
                    return
                if len(shots) <= index:
                    shots.append({"name": row["name"], "image": sample["image"][0].permute(1, 2, 0).numpy(),
                                  "gt": sample["depth"][0, 0].numpy() * sample["valid"][0, 0].numpy(), "pred": {}})
                shots[index]["pred"][label] = depth.astype(np.float32)

            timed = Timed(predictor)
            rows = per_image(timed, dataset, proto, e["align"], limit=limit, progress=progress, keep=keep,
                             desc=f"{e['label']} on {name}")["model"]
            if name == sets[0][0]:
                e.update(latency(timed.times), latency_size=timed.size)
            if not rows:
                raise DepthforgeError(f"{name}: no sample with ground truth could be evaluated")
            results[name]["models"][e["label"]] = summarize(rows)
            results[name].setdefault("by_distance", {})[e["label"]] = by_distance(rows)
            results[name].update(images=len(rows), edges=edges_used(rows))
            if cluttered(rows):
                results[name]["cluttered_images"] = len(cluttered(rows))

    main = sets[0][0]
    table = {e["label"]: {**{c: e[c] for c in COST_COLUMNS}, **results[main]["models"][e["label"]]} for e in entries}
    for name, _ in sets:
        cols = COST_COLUMNS + _columns(table, MAIN_COLUMNS) if name == main else \
            _columns(results[name]["models"], SET_COLUMNS)
        results[name]["columns"] = cols
        results[name]["best"] = best(table if name == main else results[name]["models"], cols)
    report = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
              "machine": f"{os.cpu_count()} CPU cores; latency: the fastest one-image call on the first test set "
                         "on this machine, under its load",
              "budget": budget, "size": list(size), "main": main,
              "models": entries, "sets": results}
    report["pictures"] = write_pictures(report, pictures, out)
    write_bytes(out / "compare.json", json.dumps(report, indent=2, default=float).encode())
    write_bytes(out / "compare.md", markdown(report).encode())
    from .html import write_html

    write_html(report, out / "index.html")
    report["out"] = str(out)
    return report


# --- pictures ---------------------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _wrap(label: str, width: int = 26) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(label, width)) or label


def _save(fig, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    _plt().close(fig)
    write_bytes(path, buf.getvalue())


def scenes_figure(shots: list[dict], labels: list[str], path: Path, title: str) -> None:
    """Per scene two rows: image | ground truth | each prediction, then each prediction's error map
    (|pred − gt| / gt on valid pixels, 0..50%). Depths share one colour range per scene."""
    from ..viz.colors import colorize, depth_range

    plt = _plt()
    cols = 2 + len(labels)
    h, w = shots[0]["gt"].shape
    fig, axes = plt.subplots(2 * len(shots), cols, figsize=(cols * 2.3 + 1, 2 * len(shots) * (2.3 * h / w + 0.5)),
                             squeeze=False, layout="constrained")
    for i, shot in enumerate(shots):
        gt = shot["gt"]
        lo, hi = depth_range(np.concatenate([gt.ravel()] + [shot["pred"][k].ravel() for k in labels]))
        top, bottom = axes[2 * i], axes[2 * i + 1]
        top[0].imshow(shot["image"])
        top[0].set_title(shot["name"], fontsize=7)
        top[1].imshow(colorize(gt, lo, hi))
        top[1].set_title("ground truth", fontsize=8)
        for j, label in enumerate(labels):
            pred = shot["pred"][label]
            top[2 + j].imshow(colorize(pred, lo, hi))
            top[2 + j].set_title(_wrap(label), fontsize=7)
            err = np.where(gt > 0, np.abs(pred - gt) / np.where(gt > 0, gt, 1), np.nan)
            im = bottom[2 + j].imshow(err, cmap="magma", vmin=0, vmax=0.5)
            bottom[2 + j].set_title(f"error, AbsRel {np.nanmean(err):.3f}", fontsize=7)
        bottom[1].text(0.5, 0.5, "error maps:\n|pred − gt| / gt\n(0 … 50%)", ha="center", va="center", fontsize=8)
        for ax in list(top) + list(bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        bottom[0].axis("off")
        bottom[1].axis("off")
    fig.colorbar(im, ax=axes[:, -1].tolist(), shrink=0.6, label="relative error |pred − gt| / gt")
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def scatter_figure(report: dict, path: Path) -> None:
    """Accuracy (d1, AbsRel on the main test set) against latency (ms per image), one point per model."""
    plt = _plt()
    rows = set_rows(report, report["main"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6 + 0.25 * len(rows)), layout="constrained")
    for ax, metric in zip(axes, ("d1", "abs_rel")):
        for label, m in rows:
            ax.scatter(m["latency_ms"], m[metric], s=50, label=label)
        ax.set_xlabel("latency (ms per image, this CPU)")
        ax.set_ylabel(f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)")
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=8, ncols=2)
    fig.suptitle(f"accuracy against latency on {report['main']}", fontsize=9)
    _save(fig, path)


def bars_figure(report: dict, path: Path) -> bool:
    """One panel per column of ``BAR_COLUMNS`` present, a group of bars per test set that has it, one bar per
    model."""
    plt = _plt()
    labels = [e["label"] for e in report["models"]]

    def has(s: str, c: str) -> bool:
        return not math.isnan(report["sets"][s]["models"][labels[0]].get(c, math.nan))

    panels = [(c, [s for s in report["sets"] if has(s, c)]) for c in BAR_COLUMNS]
    panels = [(c, sets) for c, sets in panels if sets]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(2 + sum(0.9 * len(sets) + 0.6 for _, sets in panels),
                                                      3.6 + 0.25 * len(labels)), squeeze=False, layout="constrained",
                             width_ratios=[len(sets) + 0.6 for _, sets in panels])
    width = 0.8 / len(labels)
    for ax, (c, sets) in zip(axes[0], panels):
        for j, label in enumerate(labels):
            values = [report["sets"][s]["models"][label].get(c, math.nan) for s in sets]
            ax.bar(np.arange(len(sets)) + (j - (len(labels) - 1) / 2) * width, values, width, label=label)
        ax.set_xticks(np.arange(len(sets)), sets, fontsize=8)
        ax.set_title(f"{c}\n({'higher' if higher_is_better(c) else 'lower'} is better)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", fontsize=8, ncols=2)
    _save(fig, path)
    return True


def distance_figure(report: dict, path: Path) -> None:
    """AbsRel and RMSE of each model in 1-m bands of ground-truth depth (iBims-1's distance-related errors) on the
    main test set: where in the room each model goes wrong."""
    plt = _plt()
    bands = report["sets"][report["main"]]["by_distance"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for label, b in bands.items():
        x = [lo + 0.5 for (lo, _), n in zip(b["band_m"], b["images"]) if n]
        for ax, c in zip(axes, ("abs_rel", "rmse")):
            ax.plot(x, [v for v, n in zip(b[c], b["images"]) if n], marker="o", ms=3, label=label)
    for ax, c in zip(axes, ("AbsRel", "RMSE (m)")):
        ax.set_xlabel("ground-truth depth (m), 1-m bands")
        ax.set_title(f"{c} by distance (lower is better)", fontsize=9)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=8, ncols=2)
    _save(fig, path)


def write_pictures(report: dict, pictures: dict[str, list[dict]], out: Path) -> list[str]:
    """The report's PNG files (names relative to ``out``)."""
    labels = [e["label"] for e in report["models"]]
    files = []
    for name, shots in pictures.items():
        shots = [s for s in shots if all(k in s["pred"] for k in labels)]
        if shots:
            file = "scenes_" + re.sub(r"[^\w.-]+", "_", name) + ".png"
            scenes_figure(shots, labels, out / file, f"{name}: the same scenes for every model")
            files.append(file)
    scatter_figure(report, out / "accuracy_latency.png")
    files.append("accuracy_latency.png")
    if bars_figure(report, out / "suites.png"):
        files.append("suites.png")
    distance_figure(report, out / "distance.png")
    files.append("distance.png")
    return files


__all__ = ["compare", "parse_recipe", "budget_recipes", "check_suites", "Timed", "latency", "model_facts", "best",
           "markdown"]
