"""``depthforge eval``: a model on a test set with the field's protocol, failure modes and baselines."""
from __future__ import annotations

import argparse

from ..evaluation.metrics import ALIGN_MODES, PROTOCOLS
from . import path_arg


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=path_arg,
                   help="a depthforge checkpoint, an exported .onnx, a Hugging Face model folder or hub id")
    p.add_argument("--data", type=path_arg, help="dataset: 'synth', a registered name, or a dataset folder/zip/.mat "
                   "(default: the recipe's test set)")
    p.add_argument("--suite", choices=["edges", "clutter", "glass", "video", "all"],
                   help="evaluate on a suite of synthetic rooms instead (all: the three failure-mode suites, each in "
                        "OUT/<suite>); glass renders "
                        "with Mitsuba (seconds a scene) and is cached; video: clips of a moving camera, scored per "
                        "clip with TAE and flicker")
    p.add_argument("--suite-n", type=int, default=20, help="scenes per suite, clips for video (default: 20)")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), help="crop and depth cap (default: from the data)")
    p.add_argument("--max-depth", type=float, help="override the protocol's depth cap (metres)")
    p.add_argument("--align", choices=ALIGN_MODES, help="align relative predictions (default: none for metric "
                   "models, median otherwise)")
    p.add_argument("--flip", action="store_true", help="average with the horizontally flipped prediction")
    p.add_argument("--stabilize", action="store_true", help="on a video test set: measure the depth stabilised "
                   "over each clip, as predict makes it for videos")
    p.add_argument("--limit", type=int, help="evaluate the first N images only (clips, on video test sets)")
    p.add_argument("--out", type=path_arg, help="output folder (default: RUN/eval for a training run's checkpoint, "
                   "else ./eval-NAME)")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in the output folder")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import DepthforgeError
    from ..evaluation.evaluate import FAILURE_SUITES, check_fresh, default_out, evaluate
    from ..evaluation.report import anchor_line, print_table
    from ..evaluation.sequences import markdown_clips

    if args.suite and args.data:
        raise DepthforgeError("--suite and --data: give one test set")
    suites = list(FAILURE_SUITES) if args.suite == "all" else [args.suite]
    root = Path(args.out or default_out(args.checkpoint))
    outs = [root / suite if args.suite == "all" else root for suite in suites]
    if not args.overwrite:  # all before the first: a refusal must not come after an hour of evaluating
        for out in outs:
            check_fresh(out)
    for suite, out in zip(suites, outs):
        results = evaluate(args.checkpoint, data=args.data, protocol=args.protocol, align_mode=args.align,
                           flip=args.flip, max_depth=args.max_depth, limit=args.limit, out=out,
                           progress=not args.no_progress, device=args.device, suite=suite, suite_n=args.suite_n,
                           overwrite=args.overwrite, stabilize=args.stabilize)
        if "per_clip" in results:  # a video test set
            print(markdown_clips(results))
            print(f"results: {results['out']}/metrics.json, metrics.md, strip.png, tae.png")
            continue
        print_table(results)
        if results.get("anchors"):
            print(anchor_line(results))
        print(f"results: {results['out']}/metrics.json, metrics.md, best_worst.png")
    return 0
