"""``depthforge train``: train a recipe (default: configs/quick.yaml)."""
from __future__ import annotations

import argparse

from . import path_arg


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default="quick", help="recipe name in configs/ or path to a YAML file "
                   "(default: quick)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="override recipe fields, e.g. train.epochs=3 (values are YAML); replace a whole named "
                        "section (model, loss, data, test_data) with SECTION=NAME, e.g. data=synth (that factory's "
                        "defaults; data.size and data.val_fraction carry over), or data={name: folder, root: DIR}")


def split_resume(args: argparse.Namespace) -> None:
    """``--resume`` takes an optional path; a KEY=VALUE right after it is an override, not its path."""
    if args.resume and "=" in args.resume and not args.resume.endswith((".ckpt", ".pt")):
        args.overrides.insert(0, args.resume)
        args.resume = "last"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_recipe_arguments(p)
    p.epilog = ("One run writes into a folder at a time. Ctrl-C (SIGINT) or SIGTERM stops at the end of the step, "
                "saves OUT/checkpoints/last.ckpt and exits 130 or 143; --resume continues exactly.")
    p.add_argument("--resume", nargs="?", const="last", default=None, metavar="CKPT", type=path_arg,
                   help="resume an interrupted run exactly (default: OUT/checkpoints/last.ckpt)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in the output folder")
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe (YAML) and exit")


def run(args: argparse.Namespace) -> int:
    from ..recipe import resolve

    split_resume(args)
    recipe = resolve(args.config, args.overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(recipe.to_dict(), sort_keys=False), end="")
        return 0
    from ..training.fit import fit

    out = fit(recipe, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    ck = out / "checkpoints"
    written = [n for n in ("best.ckpt", "last.ckpt") if (ck / n).exists()]
    print(f"checkpoints: {ck}  ({', '.join(written)})" if written else "no checkpoint written (no training step)")
    print(f"logs: {out / 'logs'}  curve: {out / 'loss_curve.png'}")
    return 0
