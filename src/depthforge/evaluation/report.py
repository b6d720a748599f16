"""Evaluation results as people read them: Markdown and terminal tables, which way each column is better, the
published anchors."""
from __future__ import annotations

import math
import numbers

from .metrics import HIGHER_IS_BETTER, METRIC_NAMES

SEED_COLUMNS = ["seed_loss", "seed_acc"]
COLUMNS = list(METRIC_NAMES) + SEED_COLUMNS
# Failure modes (``failure.py``): depth order (WHDR, and on the cluttered half of the clutter suite; the older
# ordinal_err), depth boundaries (iBims-1 DBE in pixels; edge F1), the 3 m plane of iBims-1's DDE.
FAILURE_COLUMNS = ["whdr", "whdr_cluttered", "ordinal_err", "dbe_acc", "dbe_comp", "edge_f1", "dde_0", "dde_m",
                   "dde_p"]
# The glass suite (ClearGrasp's columns inside the glass mask and on the rest), each with the surface depth and
# ("through/") with the depth seen through the glass (Kinect-like); then the paired figures: the same model on the
# scene's twin rendered without glass, and the gap inside the mask (evaluate.paired_glass).
GLASS_COLUMNS = ["d1", "abs_rel", "rmse", "glass/d1", "glass/abs_rel", "glass/mae", "glass/d105", "rest/d1",
                 "rest/abs_rel"]
PAIRED_COLUMNS = ["glass_gap/abs_rel", "glass_gap/d1", "twin/abs_rel", "twin_rest/abs_rel"]
LABELS = {"model": "model", "constant": "constant depth (train mean)", "mean_map": "per-pixel train mean"}

NOTE = ("d1..d3, seed_acc, edge_f1, dde_0: higher is better; the rest: lower is better. seed_loss / seed_acc are "
        "the seed's own loss and soft accuracy (its reported 0.188 / 0.768). whdr: share of random pixel pairs in "
        "the wrong depth order (DiverseDepth); whdr_cluttered: the same on the more cluttered half of the images; "
        "ordinal_err: pairs reversed or tied; dbe_acc / dbe_comp: iBims-1 depth-boundary errors (pixels); edge_f1: "
        "depth-boundary F1; dde_0 / dde_m / dde_p: iBims-1 directed errors at 3 m (right side / too near / too far).")


def higher_is_better(column: str) -> bool:
    """Which way a column is better: "d1" up, "abs_rel" down; prefixes ("glass/", "through/") do not change it."""
    return column.rsplit("/", 1)[-1] in HIGHER_IS_BETTER


MISSING = "–"  # a table's cell without a value


def missing(value) -> bool:
    """None or NaN: nothing to show."""
    return value is None or (isinstance(value, numbers.Real) and math.isnan(value))


def number(value, spec: str = ".4f") -> str:
    """The one formatter of a table's cell: ``MISSING`` for None or NaN, a fractional number (float, numpy
    float) in format ``spec``, anything else (a count, a word) as it is."""
    if missing(value):
        return MISSING
    return format(value, spec) if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) \
        else str(value)


def _table_rows(results: dict) -> list[tuple[str, dict]]:
    return [("model", results["model"])] + [(LABELS[k], v) for k, v in results["baselines"].items()]


def _md(rows: list[tuple[str, dict]], columns: list[str], first: str = "") -> list[str]:
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    return lines + [f"| {label} | " + " | ".join(number(m.get(c)) for c in columns) + " |" for label, m in rows]


def edges_note(edges: str) -> str:
    return {"exact": "DBE against the suite's exact occlusion edges",
            "derived": "DBE against edges derived from the ground truth's depth discontinuities "
                       "(failure.occlusion_edges; no annotated edges)",
            "mixed": "DBE against exact edges where the sample has them, else derived ones"}[edges]


def markdown_table(results: dict) -> str:
    where = f"images of the synthetic `{results['suite']}` suite" if results.get("suite") else "images"
    head = f"Evaluation of `{results['checkpoint']}` on {results['images']} {where}, protocol " \
           f"`{results['protocol']}` (cap {results['max_depth']:g} m), align `{results['align']}`\n\n"
    rows = _table_rows(results)
    failure = [c for c in FAILURE_COLUMNS if c in results["model"]]
    parts = ["\n".join(_md(rows, COLUMNS)), "Failure modes (" + edges_note(results.get("edges", "derived")) +
             (f"; {results['cluttered_images']} cluttered images" if results.get("cluttered_images") else "") +
             "):\n\n" + "\n".join(_md(rows, failure))]
    if "through/d1" in results["model"]:
        m = results["model"]
        conventions = [("surface (`depth`, ClearGrasp)", m),
                       ("through the glass (`depth_through`, Kinect-like)",
                        {c: m.get(f"through/{c}") for c in GLASS_COLUMNS})]
        parts.append("Glass, both ground-truth conventions:\n\n" + "\n".join(_md(conventions, GLASS_COLUMNS,
                                                                                 "ground truth")))
    if "glass_gap/abs_rel" in results["model"]:
        parts.append("Glass against its twin rendered without glass (same renderer, camera, light and samples; "
                     "glass_gap: inside the glass mask, the glass image's figure minus the twin's):\n\n" +
                     "\n".join(_md(rows, PAIRED_COLUMNS)))
    if results.get("by_distance"):
        parts.append(distance_table(results["by_distance"]))
    out = head + "\n\n".join(parts) + "\n\n" + NOTE + "\n"
    return out + (f"\n{anchor_line(results)}\n" if results.get("anchors") else "")


def distance_table(bands: dict) -> str:
    """The model's errors in 1-m bands of ground-truth depth (iBims-1's distance-related errors), the bands that
    some image reaches."""
    lines = ["Errors by distance (1-m bands of ground-truth depth, iBims-1; mean over the images reaching a band):",
             "", "| band (m) | images | abs_rel | rmse | log10 |", "|---|---|---|---|---|"]
    for k, (lo, hi) in enumerate(bands["band_m"]):
        if bands["images"][k]:
            lines.append(f"| {lo}–{hi} | {bands['images'][k]} | " +
                         " | ".join(number(bands[c][k]) for c in ("abs_rel", "rmse", "log10")) + " |")
    return "\n".join(lines)


def anchor_line(results: dict) -> str:
    """Published δ1 beside this model's, e.g. 'published δ1 on NYU-Depth v2: DenseDepth 0.846 · ... — this model:
    0.712'."""
    published = " · ".join(f"{name} {d1:.3f}" for name, d1 in results["anchors"].items())
    return f"published δ1 on NYU-Depth v2: {published} — this model: {results['model']['d1']:.3f}"


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"{results['images']} images · protocol {results['protocol']} · cap {results['max_depth']:g} m · " \
            f"align {results['align']}" + (f" · suite {results['suite']}" if results.get("suite") else "")
    console = Console(width=200)
    for columns, caption in ((COLUMNS, None),
                             ([c for c in FAILURE_COLUMNS if c in results["model"]],
                              edges_note(results.get("edges", "derived"))),
                             ([f"through/{c}" for c in GLASS_COLUMNS] if "through/d1" in results["model"] else [],
                              "glass: against depth_through (Kinect-like); above: the surface (ClearGrasp)")):
        if not columns:
            continue
        table = Table(title=title if columns is COLUMNS else None, caption=caption)
        table.add_column("")
        for c in columns:
            table.add_column(c, justify="right")
        for label, m in _table_rows(results):
            table.add_row(label, *(number(m.get(c), ".3f") for c in columns))
        console.print(table)
