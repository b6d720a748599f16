"""Evaluation results as people read them: a Markdown table, a terminal table, the published anchors."""
from __future__ import annotations

from .metrics import METRIC_NAMES

SEED_COLUMNS = ["seed_loss", "seed_acc"]
FAILURE_COLUMNS = ["ordinal_err", "edge_f1"]
COLUMNS = list(METRIC_NAMES) + SEED_COLUMNS + FAILURE_COLUMNS


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
