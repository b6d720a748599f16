"""The zero-shot benchmark: every model on every benchmark set found under a data root, aligned as the papers
align, in one paper-style table (``depthforge benchmark``).

Alignment protocols, named as the papers name them (``ALIGNMENTS``); each reuses ``metrics.to_metres`` and
scores with ``metrics.compute_metrics`` inside the set's crop and valid depth range (``data`` registry
protocols), which clips the aligned prediction to that range:

- ``marigold``: least-squares scale and shift fitted in *depth* over the evaluated pixels, the prediction then
  clipped to the set's valid depth range (Marigold, prs-eth/Marigold ``src/util/alignment.py``
  ``align_depth_least_square`` and ``eval.py``; the valid range and crops of ``config/dataset/*``).
- ``depth-anything``: least-squares scale and shift fitted in *disparity* (1/depth), then inverted
  (Depth Anything V1/V2's affine-invariant relative evaluation, after MiDaS; DA-V2 issue #157).
- ``moge-affine-disparity``, ``moge-affine-depth``, ``moge-scale``, ``moge-metric``: MoGe's
  ``disparity_affine_invariant``, ``depth_affine_invariant``, ``depth_scale_invariant`` and ``depth_metric``
  (microsoft/MoGe ``moge/test/metrics.py``, ``moge/utils/alignment.py``). Deviations: MoGe fits depth scale
  and depth scale+shift by a weighted L1 (weights 1/gt) on a 64×64 nearest-neighbour subsample; here depth
  scale+shift is least squares over all evaluated pixels and scale-only is the median ratio (ZoeDepth/MiDaS'
  median scaling), and every protocol clips the prediction to the set's valid range, where MoGe clamps only
  the aligned disparity (at 1/max gt). Its affine-disparity fit is least squares as here.
- ``metric`` (and ``moge-metric``): no alignment (Depth Anything V2's ``metric_depth`` evaluation).

A protocol aligns only the output kinds it can (a disparity with an unknown shift is no affine depth); another
kind is a one-line error. Without ``--protocol`` a model gets the one of its kind (``DEFAULT_ALIGNMENT``).

Each finished (model, set) pair is stored at ``OUT/pairs/MODEL/SET.json`` (with its picture) atomically, and a
second call with the same settings reads it instead of running it again: an interrupted run resumes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..data import DATA_ROOT_ENV, DATASETS, SkipBad, benchmark_spec, build_dataset, collate, default_protocol
from ..errors import DepthforgeError
from ..files import ensure_dir, write_bytes
from .compare import model_label, unique_label
from .evaluate import check_limit, open_for_eval
from .metrics import Protocol, compute_metrics, get_protocol, mean_metrics, pair_accuracy, to_metres
from .report import number

log = logging.getLogger(__name__)

DEPTH_KINDS = ("metric", "relative")
ALL_KINDS = ("metric", "relative", "disparity")
# protocol -> (``metrics.to_metres`` mode, the output kinds it aligns, what it does); see the module docstring
ALIGNMENTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "marigold": ("lstsq", DEPTH_KINDS, "least-squares scale and shift in depth, clipped to the valid range"),
    "depth-anything": ("lstsq-disparity", ALL_KINDS, "least-squares scale and shift in disparity"),
    "moge-affine-disparity": ("lstsq-disparity", ALL_KINDS, "MoGe affine-invariant disparity (least squares)"),
    "moge-affine-depth": ("lstsq", DEPTH_KINDS, "MoGe affine-invariant depth (least squares here)"),
    "moge-scale": ("median", DEPTH_KINDS, "MoGe scale-invariant depth (median scale here)"),
    "moge-metric": ("none", ("metric",), "MoGe metric depth: no alignment"),
    "metric": ("none", ("metric",), "no alignment: metric depth as predicted"),
}
DEFAULT_ALIGNMENT = {"metric": "metric", "relative": "marigold", "disparity": "depth-anything"}
COLUMNS = {"depth": ("abs_rel", "d1"), "pairs": ("pair_accuracy",)}  # the table's columns of a set, by its kind
HEADS = {"abs_rel": "AbsRel ↓", "d1": "δ1 ↑", "pair_accuracy": "acc ↑"}
LOWER_IS_BETTER = {"abs_rel"}
WORST = 3  # images pictured per (model, set)
ENV = DATA_ROOT_ENV


def alignment_for(protocol: str | None, output: str, model: str) -> tuple[str, str]:
    """(protocol name, ``to_metres`` mode) to score a model with ``output`` kind: ``protocol``, else its kind's
    default. One line when the protocol cannot align that kind."""
    name = protocol or DEFAULT_ALIGNMENT[output]
    if name not in ALIGNMENTS:
        raise DepthforgeError(f"protocol {name!r}: choose from {', '.join(ALIGNMENTS)}")
    mode, kinds, _ = ALIGNMENTS[name]
    if output not in kinds:
        raise DepthforgeError(f"{model}: predicts {output} depth, which protocol {name!r} cannot align (it takes "
                              f"{' or '.join(kinds)} outputs); choose another --protocol, e.g. "
                              f"{DEFAULT_ALIGNMENT[output]}")
    return name, mode


def score_image(raw: np.ndarray, sample: dict, crop: Protocol, mode: str, output: str
                ) -> tuple[dict[str, float], np.ndarray]:
    """One image's figures and its prediction in metres. raw: (H,W) model output at the sample's size; sample:
    a collated batch of one. A sample with ``pairs`` [P,4] and ``closer`` [P] (DA-2K) is scored by
    ``metrics.pair_accuracy`` on the raw output (depth order needs no alignment); else the output is aligned
    (``to_metres`` with ``mode``) over the crop's pixels with valid ground truth and scored by
    ``compute_metrics``."""
    if "pairs" in sample:
        return {"pair_accuracy": pair_accuracy(raw, sample["pairs"][0], sample["closer"][0], output)}, \
            np.asarray(raw, np.float64)
    gt, valid = sample["depth"][0, 0].numpy(), sample["valid"][0, 0].numpy()
    mask = crop.mask(gt, valid)
    depth = to_metres(raw, gt, mask, output, mode)
    return compute_metrics(depth, gt, crop, valid=mask), depth


def data_root(root: str | os.PathLike | None) -> Path:
    """``root``, else $DEPTHFORGE_DATA; one line when neither names a folder."""
    text = str(root) if root is not None else os.environ.get(ENV)
    if not text:
        raise DepthforgeError(f"no data root: pass --root DIR or set {ENV}")
    path = Path(text)
    if not path.is_dir():
        raise DepthforgeError(f"{path}: data root not found (--root or {ENV})")
    return path


def benchmark_sets() -> dict[str, dict]:
    """Every registered benchmark set: name -> its ``benchmark`` fact (``data.register``)."""
    return {n: i["benchmark"] for n, i in DATASETS.info.items() if i.get("benchmark")}


def select(names: list[str] | None) -> list[str]:
    """The registered set names that ``names`` asks for: a set's name, or a group prefix ("realdata" names every
    "realdata-..." set). None: all."""
    known = list(benchmark_sets())
    if not names:
        return known
    out = []
    for n in names:
        hits = [k for k in known if k == n or k.startswith(n + "-")]
        if not hits:
            raise DepthforgeError(f"--sets {n}: no such benchmark set (known: {', '.join(known)})")
        out += [h for h in hits if h not in out]
    return out


def find_sets(root: Path, names: list[str] | None = None) -> tuple[dict[str, Path], dict[str, str]]:
    """The benchmark sets under ``root``: ({name: folder}, {name: why skipped}) — a folder ``ROOT/FOLDER`` whose
    files the set's detector does not recognise is skipped. One line when none is there, listing what was
    looked for; a set asked for by name that is absent is an error too."""
    facts = benchmark_sets()
    wanted = select(names)
    found, skipped, absent = {}, {}, []
    for name in wanted:
        folder = root / facts[name]["folder"]
        if not folder.is_dir():
            absent.append(f"{name} ({folder})")
            continue
        detect = DATASETS.info[name].get("detect")
        if detect is not None and not detect(folder):
            skipped[name] = f"{folder}: files of {name} missing or not in its layout"
            continue
        found[name] = folder
    if names and absent:
        raise DepthforgeError(f"{root}: benchmark set not found: {', '.join(absent)}")
    if not found and not skipped:
        raise DepthforgeError(f"{root}: no recognised benchmark; looked for {', '.join(absent)}")
    return found, skipped


def build_set(name: str, root: Path) -> torch.utils.data.Dataset:
    spec, split = benchmark_spec(name, root)
    return build_dataset(spec, split=split)


def model_key(source: str) -> str:
    """The folder name of a model's stored results: its label made file-safe plus a hash of where it lives, so
    two models named alike stay apart and the same model finds its results again."""
    where = str(Path(source).resolve()) if Path(source).exists() else str(source)
    label = model_label(Path(source)) if Path(source).exists() else str(source)
    return re.sub(r"[^\w.-]+", "_", label)[:60] + "-" + hashlib.sha1(where.encode()).hexdigest()[:8]


def read_record(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DepthforgeError(f"{path}: unreadable stored result ({e}); remove it or pass --overwrite") from None


def same_settings(record: dict, protocol: str | None, limit: int | None) -> bool:
    """Whether a stored pair answers this run: the same protocol (asked, or its kind's default) and limit."""
    return record.get("protocol") == (protocol or DEFAULT_ALIGNMENT.get(record.get("output"))) \
        and record.get("limit") == limit


def run_pair(predictor, dataset, crop: Protocol, mode: str, limit: int | None, bar) -> tuple[list[dict], int,
                                                                                               list[dict]]:
    """One model on one set: (per-image rows, images skipped for unreadable files or no ground truth, the
    ``WORST`` worst shots for the picture)."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    safe = SkipBad(Subset(dataset, range(n)))
    rows, worst = [], []
    for sample in DataLoader(safe, batch_size=1, collate_fn=collate):
        bar.update(1)
        if sample is None:
            continue
        raw = predictor.predict_tensor(sample["image"])[0, 0].cpu().numpy()
        row, depth = score_image(raw, sample, crop, mode, predictor.output)
        rows.append({"name": sample["name"][0], **row})
        key = row.get("abs_rel", -row.get("pair_accuracy", math.nan))  # larger is worse
        gt = None if "pairs" in sample else np.where(sample["valid"][0, 0].numpy(), sample["depth"][0, 0].numpy(), 0)
        worst.append((key, {"name": sample["name"][0], "image": sample["image"][0].permute(1, 2, 0).numpy(),
                            "pred": depth.astype(np.float32), "gt": gt,
                            "score": f"AbsRel {number(row['abs_rel'], '.3f')}" if "abs_rel" in row
                            else f"pair accuracy {number(row['pair_accuracy'], '.3f')}"}))
        worst = sorted(worst, key=lambda t: -t[0] if not math.isnan(t[0]) else math.inf)[:WORST]
    return rows, safe.num_skipped, [s for _, s in worst]


def benchmark(models: list[str], root: str | os.PathLike | None = None, sets: list[str] | None = None,
              protocol: str | None = None, out: str | os.PathLike = "outputs/benchmark", limit: int | None = None,
              device: str | None = None, overwrite: bool = False, progress: bool = True, pictures: bool = True,
              command: str | None = None) -> dict[str, Any]:
    """Evaluate ``models`` (checkpoints, exports, Hugging Face folders or hub ids) on the benchmark sets under
    ``root`` (all found, or those ``sets`` names) with alignment ``protocol`` (default: by each model's output
    kind), at most ``limit`` images per set; write OUT/benchmark.md, benchmark.json and index.html (the table
    and each set's worst images; ``pictures`` False: the table only). Finished pairs stored in OUT/pairs are
    reused when their settings match; one with other settings is an error unless ``overwrite`` (then every pair
    is computed again). Returns the report dict (what benchmark.json holds)."""
    if not models:
        raise DepthforgeError("nothing to benchmark: give --model")
    check_limit(limit)
    if protocol is not None and protocol not in ALIGNMENTS:
        raise DepthforgeError(f"--protocol {protocol}: choose from {', '.join(ALIGNMENTS)}")
    root = data_root(root)
    found, skipped = find_sets(root, sets)
    out = ensure_dir(out)
    entries, taken = [], set()
    for source in models:
        label = unique_label(model_label(Path(source)) if Path(source).exists() else str(source), taken)
        entries.append({"label": label, "source": str(source), "key": model_key(str(source))})

    # which pairs are stored already, and which must run
    records: dict[tuple[str, str], dict] = {}
    todo: dict[str, list[str]] = {}
    for e in entries:
        for name in found:
            path = out / "pairs" / e["key"] / f"{name}.json"
            record = None if overwrite else read_record(path)
            if record is not None:
                if not same_settings(record, protocol, limit):
                    raise DepthforgeError(f"{path}: stored by a run with protocol {record.get('protocol')} and limit "
                                          f"{record.get('limit')}; pass --overwrite to compute it again, or give "
                                          "another --out")
                records[e["label"], name] = record
            else:
                todo.setdefault(e["label"], []).append(name)
    datasets = {}
    for name in list(found):
        if any(name in t for t in todo.values()):
            try:
                datasets[name] = build_set(name, root)
            except DepthforgeError as err:
                skipped[name] = str(err)
                del found[name]
                for t in todo.values():
                    if name in t:
                        t.remove(name)
    if not found:
        raise DepthforgeError(f"{root}: no benchmark set could be read: " + "; ".join(skipped.values()))
    for name, why in skipped.items():
        log.warning("skipping set %s: %s", name, why)
    total = sum(min(limit or len(datasets[n]), len(datasets[n])) for t in todo.values() for n in t)
    done_pairs = len(records)
    log.info("%d (model, set) pairs: %d stored, %d to run (%d images)", len(entries) * len(found), done_pairs,
             sum(map(len, todo.values())), total)

    # every model that has work, opened and checked against the protocol before any of it runs (as compare)
    opened = {}
    for e in entries:
        if todo.get(e["label"]):
            predictor = open_for_eval(e["source"], device, flip=False).predictor
            opened[e["label"]] = (predictor, *alignment_for(protocol, predictor.output, e["label"]))
    bar = tqdm(total=total, disable=not progress or total == 0, unit="img", desc="benchmark")
    try:
        for e in entries:
            if e["label"] not in opened:
                continue
            predictor, proto_name, mode = opened[e["label"]]
            for name in todo[e["label"]]:
                crop_name = default_protocol(name) or "none"
                crop = get_protocol(crop_name)
                bar.set_description(f"{e['label']} on {name}")
                rows, bad, worst = run_pair(predictor, datasets[name], crop, mode, limit, bar)
                folder = out / "pairs" / e["key"]
                picture = None
                if worst and pictures:
                    from ..viz.benchmark import worst_figure

                    picture = f"pairs/{e['key']}/{name}_worst.png"
                    worst_figure(worst, f"{e['label']} on {name}: the {len(worst)} worst images "
                                 f"(protocol {proto_name}, crop {crop.crop})", out / picture)
                record = {"model": e["label"], "source": e["source"], "output": predictor.output,
                          "protocol": proto_name, "align": mode, "limit": limit, "set": name,
                          "crop": crop.crop, "range_protocol": crop_name, "min_depth": crop.min_depth,
                          "max_depth": crop.max_depth,
                          "images": len(rows), "skipped": bad, "means": mean_metrics(
                              [{k: v for k, v in r.items() if k != "name"} for r in rows]) if rows else {},
                          "picture": picture, "per_image": rows}
                write_bytes(folder / f"{name}.json", json.dumps(record, indent=1, default=float).encode())
                records[e["label"], name] = record
    except KeyboardInterrupt:
        bar.close()
        raise DepthforgeError(f"interrupted: {len(records) - done_pairs} more pairs finished and stored in "
                              f"{out}/pairs; run the same command again to resume") from None
    bar.close()
    report = make_report(entries, found, skipped, records, root, command)
    write_bytes(out / "benchmark.json", json.dumps(report, indent=2, default=float).encode())
    write_bytes(out / "benchmark.md", markdown(report).encode())
    write_bytes(out / "index.html", render_html(report, out).encode())
    report["out"] = str(out)
    return report


def average_rank(results: dict[str, dict[str, dict]], labels: list[str], columns: dict[str, tuple]) -> dict:
    """Each model's mean rank (1 = best; ties share the mean rank) over every (set, column) of the table where
    at least two models have a figure, as Marigold's and Depth Anything's tables rank; None without any."""
    ranks: dict[str, list[float]] = {m: [] for m in labels}
    for name, cols in columns.items():
        for c in cols:
            have = [m for m in labels if not _missing(results[m].get(name, {}).get(c))]
            if len(have) < 2:
                continue
            values = np.array([results[m][name][c] for m in have], float)
            for m, r in zip(have, rankdata(values if c in LOWER_IS_BETTER else -values)):
                ranks[m].append(float(r))
    return {m: float(np.mean(r)) if r else None for m, r in ranks.items()}


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def make_report(entries, found, skipped, records, root, command) -> dict[str, Any]:
    labels = [e["label"] for e in entries]
    sets, results, models = {}, {m: {} for m in labels}, []
    for e in entries:
        first = next((records[e["label"], n] for n in found if (e["label"], n) in records), {})
        models.append({"label": e["label"], "source": e["source"], "output": first.get("output"),
                       "protocol": first.get("protocol"), "align": first.get("align")})
    for name in found:
        recs = [records[m, name] for m in labels if (m, name) in records]
        kind = "pairs" if any("pair_accuracy" in r["means"] for r in recs) else "depth"
        r0 = recs[0]
        sets[name] = {"folder": str(found[name]), "kind": kind, "columns": list(COLUMNS[kind]), "crop": r0["crop"],
                      "min_depth": r0["min_depth"], "max_depth": r0["max_depth"],
                      "images": max(r["images"] for r in recs), "skipped": max(r["skipped"] for r in recs)}
        for r in recs:
            results[r["model"]][name] = {**{c: r["means"].get(c) for c in COLUMNS[kind]}, "images": r["images"],
                                         "skipped": r["skipped"], "picture": r["picture"]}
    rank = average_rank(results, labels, {n: tuple(s["columns"]) for n, s in sets.items()})
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
            "root": str(root), "models": models, "sets": sets, "skipped_sets": skipped, "results": results,
            "rank": rank}


def _set_line(name: str, s: dict) -> str:
    crop = f"{s['crop']} crop" if s["crop"] != "none" else "full frame"
    what = "depth order of annotated point pairs" if s["kind"] == "pairs" else \
        f"{crop}, valid depth {s['min_depth']:g}–{s['max_depth']:g} m"
    return f"{name}: {s['images']} images ({s['skipped']} skipped: unreadable or no ground truth), {what}"


def table_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """The paper-style table: header cells and one row of cells per model."""
    head = ["model", "protocol"] + [f"{n} {HEADS[c]}" for n, s in report["sets"].items() for c in s["columns"]] + \
        ["avg. rank ↓"]
    rows = []
    for m in report["models"]:
        r = report["results"][m["label"]]
        cells = [number(r.get(n, {}).get(c), ".3f") for n, s in report["sets"].items() for c in s["columns"]]
        rows.append([m["label"], m["protocol"] or "–"] + cells + [number(report["rank"][m["label"]], ".2f")])
    return head, rows


def markdown(report: dict) -> str:
    head, rows = table_rows(report)
    lines = [f"# Zero-shot benchmark ({report['created']})", ""]
    if report.get("command"):
        lines += [f"`{report['command']}`", ""]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"Sets under `{report['root']}` (each column's protocol is the model's row's):", ""]
    lines += [f"- {_set_line(n, s)}" for n, s in report["sets"].items()]
    lines += [f"- {n}: skipped ({why})" for n, why in report["skipped_sets"].items()]
    lines += ["", "Protocols: " + "; ".join(f"`{p}`: {ALIGNMENTS[p][2]}" for p in
                                             dict.fromkeys(m["protocol"] for m in report["models"]) if p) +
              ". AbsRel: lower is better; δ1 (share of pixels within 1.25× of the ground truth), acc (pairs in "
              "the right depth order): higher is better. avg. rank: the mean of each model's ranks over the "
              "columns.", ""]
    return "\n".join(lines)


def render_html(report: dict, folder: Path) -> str:
    """The page: the table, the sets, and per set each model's worst images (embedded)."""
    from .html import STYLE, escape, figure

    head, rows = table_rows(report)
    parts = [f"<h1>Zero-shot benchmark</h1><p class=note>{escape(report['created'])} · root "
             f"<code>{escape(report['root'])}</code></p>"]
    if report.get("command"):
        parts.append(f"<p><code>{escape(report['command'])}</code></p>")
    parts.append('<div class="scroll"><table><tr>' + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>" +
                 "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows) +
                 "</table></div>")
    parts.append("<ul>" + "".join(f"<li>{escape(_set_line(n, s))}</li>" for n, s in report["sets"].items()) +
                 "".join(f"<li>{escape(n)}: skipped ({escape(w)})</li>" for n, w in report["skipped_sets"].items())
                 + "</ul>")
    parts.append("<p class=note>" + escape("; ".join(f"`{p}`: {d}" for p, (_, _, d) in ALIGNMENTS.items())) +
                 "</p>")
    for name in report["sets"]:
        parts.append(f"<h2>{escape(name)}: worst images</h2>")
        for m in report["models"]:
            pic = report["results"][m["label"]].get(name, {}).get("picture")
            if pic and (folder / pic).is_file():
                parts.append(figure(folder, pic))
    return f"<!doctype html><html lang=en><head><meta charset=utf-8><title>depthforge: benchmark</title>" \
           f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"


__all__ = ["ALIGNMENTS", "DEFAULT_ALIGNMENT", "alignment_for", "score_image", "find_sets", "benchmark",
           "markdown"]
