"""``depthforge compare``: train recipes under one budget, evaluate them beside checkpoints and pretrained models
on the same test sets, and write one report folder (tables, pictures, an HTML page)."""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

from . import path_arg

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", action="append", default=[], metavar="NAME[:k=v,...]",
                   help="a recipe to train under the budget, with overrides, e.g. quick:model.width=1.0 "
                        "(repeatable; all train on the first recipe's data)")
    p.add_argument("--model", action="append", default=[], type=path_arg, metavar="PATH_OR_ID",
                   help="a checkpoint, an exported .onnx, a Hugging Face folder or hub id (repeatable)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-steps", type=int, help="train each recipe for N optimiser steps")
    budget.add_argument("--budget-minutes", type=float, help="train each recipe for M wall-clock minutes of training "
                        "(train.max_time; its recipe's epochs and schedule otherwise)")
    p.add_argument("--suites", default="edges,clutter",
                   help="suites of synthetic rooms: comma-separated edges, clutter, glass, video (clips scored "
                        "with TAE and flicker), or all (the three failure-mode suites), none (default: "
                        "edges,clutter; glass renders with Mitsuba, seconds a scene, then cached)")
    p.add_argument("--suite-n", type=int, default=20, help="scenes per suite (default: 20)")
    p.add_argument("--data", action="append", default=[], type=path_arg,
                   help="a further test set: a registered name or a dataset folder (repeatable); a benchmark set "
                        "by name (realdata-nyu, ...) is read under $DEPTHFORGE_DATA, as depthforge benchmark does")
    p.add_argument("--limit", type=int, help="at most N images per test set")
    p.add_argument("--scenes", type=int, default=2, help="scenes pictured side by side per test set (default: 2)")
    p.add_argument("--out", default="outputs/compare", type=path_arg,
                   help="report folder (default: outputs/compare); trained runs go under OUT/runs")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="replace trained runs already in OUT/runs")
    again.add_argument("--resume", action="store_true", help="continue the trained runs already in OUT/runs (an "
                       "interrupted compare, or a larger --budget-steps) from their last checkpoint")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")


def train_all(recipes, progress: bool, overwrite: bool, resume: bool = False) -> list[dict]:
    """Train each (label, recipe) of ``compare.budget_recipes``; returns the trained runs ``compare`` takes,
    evaluated at the end of the budget (last.ckpt). ``resume``: a run whose folder holds last.ckpt continues from
    it, the others start."""
    from ..errors import DepthforgeError
    from ..models.checkpoint import read_checkpoint
    from ..training.fit import fit

    out = []
    for label, recipe in recipes:
        log.info("training %s under the budget", label)
        start = time.perf_counter()
        last = Path(recipe.out) / "checkpoints" / "last.ckpt"
        if last.is_file() and not (resume or overwrite):
            raise DepthforgeError(f"{recipe.out}: holds a trained run already; continue the comparison with "
                                  "--resume, replace its runs with --overwrite, or report into another --out")
        run = fit(recipe, resume="last" if resume and last.is_file() else None, progress=progress,
                  overwrite=overwrite)
        seconds = time.perf_counter() - start
        ckpt = run / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise DepthforgeError(f"{label}: training wrote no checkpoint ({run})")
        out.append({"label": label, "source": str(ckpt),
                    "train": {"recipe": recipe.name, "steps": int(read_checkpoint(ckpt).get("global_step", 0)),
                              "seconds": round(seconds, 1), "batch_size": recipe.train.batch_size, "out": str(run)}})
    return out


def run(args: argparse.Namespace) -> int:
    from ..errors import DepthforgeError
    from ..evaluation.compare import budget_recipes, check_budget, check_counts, check_suites, compare

    # before any training: a bad count must not cost the training budget first
    check_counts(args.suite_n, args.limit, args.scenes)
    check_budget(args.budget_steps, args.budget_minutes)
    if not args.recipe and (args.budget_steps is not None or args.budget_minutes is not None):
        raise DepthforgeError("--budget-steps/--budget-minutes: only --recipe runs train; give --recipe")
    names = [s.strip() for s in args.suites.split(",") if s.strip()]
    if not names:
        raise DepthforgeError("--suites: name at least one of edges, clutter, glass, video, or all, or none")
    suites = check_suites(names)
    models = []
    budget = None
    if args.recipe:
        recipes = budget_recipes(args.recipe, Path(args.out) / "runs", args.budget_steps, args.budget_minutes)
        budget = {"steps": args.budget_steps, "minutes": args.budget_minutes}
        models = train_all(recipes, not args.no_progress, args.overwrite, args.resume)
    start = time.perf_counter()
    report = compare(models + args.model, suites=suites, data=args.data, out=args.out, suite_n=args.suite_n,
                     limit=args.limit, scenes=args.scenes, progress=not args.no_progress, device=args.device,
                     budget=budget, command=shlex.join(["depthforge", *sys.argv[1:]]))
    log.info("evaluated in %.0f s", time.perf_counter() - start)
    print(summary(report))
    return 0


def summary(report: dict) -> str:
    """A few lines for the terminal: each model's δ1, AbsRel and latency on the main test set, the best per test
    set, and where the report is (its tables have 25 columns: they belong in compare.md and index.html)."""
    from ..evaluation.tables import set_rows

    main = report["main"]
    rows = set_rows(report, main)
    width = min(40, max(len(label) for label, _ in rows))
    lines = [f"{len(rows)} models on {', '.join(report['sets'])}; on {main} "
             f"({report['sets'][main]['images']} images):"]
    for label, m in rows:
        lines.append(f"  {label[:width]:<{width}}  d1 {m['d1']:.3f}  AbsRel {m['abs_rel']:.3f}  "
                     f"{m['latency_ms']:.0f} ms/image")
    for name, data in report["sets"].items():
        top = data.get("best", {}).get("abs_rel")
        if top:
            lines.append(f"  lowest AbsRel on {name}: {', '.join(top)}")
    out = Path(report["out"])
    lines.append(f"report: {out / 'index.html'} (tables: {out / 'compare.md'}; also compare.json, "
                 f"{', '.join(report['pictures'])})")
    return "\n".join(lines)
