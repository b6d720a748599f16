"""The comparison's tables, shared by its Markdown (``compare.markdown``) and its HTML page (``html``)."""
from __future__ import annotations

from .report import MISSING, NOTE, edges_note, missing, number

COST_COLUMNS = ["parameters", "gflops", "latency_ms"]  # lower is better


def cell(column: str, value) -> str:
    """``report.number`` at the column's precision: parameters in millions, costs and metres and pixels to two
    places, the rest to three."""
    if missing(value):
        return MISSING
    if column == "parameters":
        return number(value / 1e6, ".2f") + "M"
    if column in ("gflops", "latency_ms"):
        return number(value, ".2f" if value < 100 else ".0f")
    return number(value, ".2f" if column.rsplit("/", 1)[-1] in ("dbe_acc", "dbe_comp", "rmse") else ".3f")


def set_rows(report: dict, name: str) -> list[tuple[str, dict]]:
    """(label, {column: value}) per model for the table of test set ``name`` (the main one has the costs)."""
    data = report["sets"][name]
    return [(e["label"], {**({c: e[c] for c in COST_COLUMNS} if name == report["main"] else {}),
                          **data["models"][e["label"]]}) for e in report["models"]]


def set_title(report: dict, name: str) -> str:
    data = report["sets"][name]
    spec = data["spec"]
    what = f"synthetic `{spec['suite']}` suite" if spec.get("suite") else "synthetic `video` suite" \
        if spec["name"] == "synth-video" else \
        f"the first recipe's test set ({spec['name']})" if name == "test" else f"`{name}` ({spec['name']})"
    extra = f"; {data['cluttered_images']} cluttered images for whdr_cluttered" if data.get("cluttered_images") \
        else ""
    if data.get("clips"):
        return f"{what}: {data['clips']} clips, {data['images']} frames at {spec['size'][0]}x{spec['size'][1]}, " \
               f"protocol `{data['protocol']}` (cap {data['max_depth']:g} m); aligned once per clip; TAE and " \
               "flicker ×100, lower is better; frame_fit/abs_rel: AbsRel with a fit per frame (for contrast)"
    return f"{what}: {data['images']} images at {spec['size'][0]}x{spec['size'][1]}, protocol `{data['protocol']}` " \
           f"(cap {data['max_depth']:g} m); {edges_note(data['edges'])}{extra}"


def model_line(e: dict) -> str:
    how = f"trained {e['train']['steps']} steps in {e['train']['seconds']:.0f} s (batch {e['train']['batch_size']})" \
        if e.get("train") else e["kind"]
    aligned = f"; {e['output']} output aligned per image ({e['align']})" if e["align"] != "none" else ""
    return f"{e['label']}: {how}; `{e['source']}`{aligned}"


def markdown(report: dict) -> str:
    lines = [f"# Model comparison ({report['created']})", ""]
    if report.get("command"):
        lines += [f"`{report['command']}`", ""]
    if report.get("budget"):
        b = report["budget"]
        lines += [f"Budget per recipe: {b['steps']} steps" if b["steps"] else f"Budget per recipe: {b['minutes']:g} "
                  "minutes", ""]
    lines += ["Models (aligned ones predict relative depth or disparity, scaled to the ground truth per image):", ""]
    lines += [f"- {model_line(e)}" for e in report["models"]] + [""]
    for name in report["sets"]:
        data = report["sets"][name]
        cols = data["columns"]
        lines += [f"## {name}", "", set_title(report, name), "", "| model | " + " | ".join(cols) + " |",
                  "|---" * (len(cols) + 1) + "|"]
        for label, m in set_rows(report, name):
            mark = "†" if next(e for e in report["models"] if e["label"] == label)["align"] != "none" else ""
            lines.append(f"| {label}{mark} | " + " | ".join(
                f"**{cell(c, m.get(c))}**" if label in data["best"].get(c, []) else cell(c, m.get(c))
                for c in cols) + " |")
        lines.append("")
    lines += ["**Bold**: best of the column. †: aligned per image (relative output). parameters, gflops, latency_ms "
              f"(one image on {report['machine']}): lower is better. " + NOTE, ""]
    lines += [f"![{p}]({p})" for p in report.get("pictures", [])]
    return "\n".join(lines) + "\n"
