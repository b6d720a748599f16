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
from .evaluate import FAILURE_SUITES, SUITE_N, SUITES, align_for, by_distance, check_limit, \
    cluttered, dataset_spec, edges_used, open_for_eval, per_image, protocol_for, suite_spec, summarize
from .failure import sample_masks
from .metrics import METRIC_NAMES
from .sequences import VIDEO_COLUMNS, is_video, per_sequence, summarize_clips
from .tables import COST_COLUMNS, markdown, set_rows
from .report import FAILURE_COLUMNS, GLASS_COLUMNS, PAIRED_COLUMNS, SEED_COLUMNS, higher_is_better

log = logging.getLogger(__name__)

MAIN_COLUMNS = list(METRIC_NAMES) + SEED_COLUMNS + FAILURE_COLUMNS
SET_COLUMNS = ["d1", "abs_rel", "rmse", "seed_acc"] + FAILURE_COLUMNS[:6] + \
              GLASS_COLUMNS[3:] + PAIRED_COLUMNS[:2] + [f"through/{c}" for c in GLASS_COLUMNS]


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


def unique_label(label: str, taken: set[str]) -> str:
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
        label = unique_label(name + (f" [{', '.join(own)}]" if own else ""), taken)
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

    def __getattr__(self, name: str):  # output, contract, estimates_camera, ...: the predictor's
        return getattr(self.predictor, name)

    def reset(self) -> None:
        """Pass a new clip on to a stateful predictor (``sequences.per_sequence``)."""
        if callable(getattr(self.predictor, "reset", None)):
            self.predictor.reset()

    def predict_tensor(self, images: torch.Tensor, **options) -> torch.Tensor:
        start = time.perf_counter()
        out = self.predictor.predict_tensor(images, **options)
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
        return list(FAILURE_SUITES) if suites[0] == "all" else []
    for s in suites:
        suite_spec(s, (8, 8))
    return list(suites)


def check_counts(suite_n: int, limit: int | None, scenes: int) -> None:
    """One line for a count ``compare`` cannot use: scenes per suite, images per test set, pictured scenes."""
    suite_spec(SUITES[0], (8, 8), suite_n)
    check_limit(limit)
    if not 0 <= scenes <= MAX_SCENES:
        raise DepthforgeError(f"scenes {scenes}: pictured scenes per test set must be 0..{MAX_SCENES}")


def model_label(path: Path) -> str:
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
    entries, opened, taken = [], [], set()
    for m in models:
        predictor, recipe, _, kind = open_for_eval(m["source"] if isinstance(m, dict) else m, device, flip=False)
        if isinstance(m, dict):
            e = {"kind": "recipe", **m, "label": unique_label(m["label"], taken)}
        else:
            e = {"label": unique_label(model_label(Path(m)) if Path(m).exists() else str(m), taken), "kind": kind,
                 "source": str(m), "train": None}
        entries.append(e)
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
    videos: dict[str, dict] = {}  # per video set: {"strip": {label: frames}, "tae": {label: per pair}}
    for name, spec in sets:
        dataset = build_dataset(spec, split="test")
        proto_name, proto = protocol_for(spec, dataset, ref)
        results[name].update(spec={k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()},
                             protocol=proto_name, max_depth=proto.max_depth)
        for e, predictor, recipe in opened:
            e.setdefault("align", align_for(predictor, recipe))
            e["output"] = predictor.output

            def keep(index, sample, depth, row, label=e["label"], shots=pictures[name]):
                if index >= scenes:
                    return
                if len(shots) <= index:
                    masks = sample_masks(sample)
                    shots.append({"name": row["name"], "image": sample["image"][0].permute(1, 2, 0).numpy(),
                                  "gt": sample["depth"][0, 0].numpy() * sample["valid"][0, 0].numpy(), "pred": {},
                                  "stats": {}, "masks": {k: masks[k] for k in ("glass", "transparent") if k in masks}})
                shots[index]["pred"][label] = depth.astype(np.float32)
                shots[index]["stats"][label] = {"abs_rel": row["abs_rel"], "d1": row["d1"]}

            timed = Timed(predictor)
            if is_video(dataset):
                shots = videos.setdefault(name, {"strip": {}, "tae": {}})
                rows = per_sequence(timed, dataset, proto, e["align"], limit, progress,
                                    lambda clip, frames, shots=shots: shots.setdefault("first", frames),
                                    desc=f"{e['label']} on {name}")
                video_set(results[name], shots, e["label"], rows, name)
                if name == sets[0][0]:
                    e.update(latency(timed.times), latency_size=timed.size)
                continue
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
        wanted = VIDEO_COLUMNS if results[name].get("clips") else MAIN_COLUMNS if name == main else SET_COLUMNS
        cols = COST_COLUMNS + _columns(table, wanted) if name == main else _columns(results[name]["models"], wanted)
        results[name]["columns"] = cols
        results[name]["best"] = best(table if name == main else results[name]["models"], cols)
    report = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
              "machine": f"{os.cpu_count()} CPU cores; latency: the fastest one-image call on the first test set "
                         "on this machine, under its load",
              "budget": budget, "size": list(size), "main": main,
              "models": entries, "sets": results}
    report["pictures"] = write_pictures(report, pictures, out) + video_pictures(videos, out)
    write_bytes(out / "compare.json", json.dumps(report, indent=2, default=float).encode())
    write_bytes(out / "compare.md", markdown(report).encode())
    from .html import write_html

    write_html(report, out / "index.html")
    report["out"] = str(out)
    return report


def video_set(result: dict, shots: dict, label: str, rows: list[dict], name: str) -> None:
    """Record one model's clips of video test set ``name`` (``sequences.per_sequence`` rows) in its ``result``
    (means over clips, counts) and ``shots`` (the first clip's frames and TAE per pair, for the pictures)."""
    if not rows:
        raise DepthforgeError(f"{name}: no clip with ground truth could be evaluated")
    means = summarize_clips(rows)
    result["models"][label] = means
    result.update(images=int(means["frames"]), clips=len(rows), edges="derived")
    result.setdefault("per_clip", {})[label] = [{k: v for k, v in r.items() if k != "names"} for r in rows]
    shots["strip"][label] = shots.pop("first")
    shots["tae"][label] = rows[0]["tae_per_pair"]
    shots["clip"] = rows[0]["clip"]


def video_pictures(videos: dict[str, dict], out: Path) -> list[str]:
    """Per video test set: strip_<set>.png (the first clip: input, and each model's depth and error over time)
    and tae_<set>.png (each model's TAE per frame pair over that clip)."""
    from ..viz.video import strip_figure, tae_figure

    files = []
    for name, shots in videos.items():
        stem = re.sub(r"[^\w.-]+", "_", name)
        strip_figure(shots["strip"], out / f"strip_{stem}.png", f"{name}, {shots['clip']}: every model over time")
        tae_figure(shots["tae"], out / f"tae_{stem}.png", f"{name}, {shots['clip']}: TAE per frame pair")
        files += [f"strip_{stem}.png", f"tae_{stem}.png"]
    return files


# --- pictures ---------------------------------------------------------------------------------------------------

def write_pictures(report: dict, pictures: dict[str, list[dict]], out: Path) -> list[str]:
    """The report's PNG files (names relative to ``out``; the figures are ``viz.compare``'s)."""
    from ..viz.compare import bars_figure, distance_figure, scatter_figure, scenes_figure

    labels = [e["label"] for e in report["models"]]
    files = []
    for name, shots in pictures.items():
        shots = [s for s in shots if all(k in s["pred"] for k in labels)]
        if shots:
            file = "scenes_" + re.sub(r"[^\w.-]+", "_", name) + ".png"
            scenes_figure(shots, labels, out / file, f"{name}: the same scenes for every model")
            files.append(file)
    scatter_figure(set_rows(report, report["main"]), report["main"], out / "accuracy_latency.png", higher_is_better)
    files.append("accuracy_latency.png")
    if bars_figure(report, out / "suites.png", higher_is_better):
        files.append("suites.png")
    if "by_distance" in report["sets"][report["main"]]:
        distance_figure(report, out / "distance.png")
        files.append("distance.png")
    return files


__all__ = ["compare", "parse_recipe", "budget_recipes", "check_suites", "Timed", "latency", "model_facts", "best",
           "markdown"]
