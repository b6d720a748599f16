"""The human-readable table of ``depthforge bench``'s figures (``--json`` prints the dict itself)."""
from __future__ import annotations

from ..evaluation.report import number
from .targets import print_device, print_profile


def _table(title: str, rows: dict[str, dict], keys: list[str]) -> None:
    print(f"\n{title}")
    widths = [max(12, len(k)) + 2 for k in keys]
    print(f"  {'':34s}" + "".join(f"{k:>{w}s}" for k, w in zip(keys, widths)))
    for name, row in rows.items():
        if "error" in row:
            print(f"  {name:34s}  {row['error']}")
        else:
            print(f"  {name:34s}" + "".join(f"{number(row.get(k, ''), '.3g'):>{w}s}" for k, w in zip(keys, widths)))


def print_report(r: dict) -> None:
    """Print ``bench``'s result ``r`` as one table per section."""
    m, c = r["machine"], r["ceiling"]
    print(f"threads {m['threads']}, allocator {m['allocator']} (training: {m['training_allocator']}), "
          f"load {m['load_before']:.2f} -> {m['load_after']:.2f}")
    print(f"matmul ceiling: bf16 {c['bf16_gflops']:.3g} GFLOP/s (at {c['bf16_matmul_size']}²), "
          f"fp32 {c['fp32_gflops']:.3g} GFLOP/s (at {c['matmul_size']}²)")
    if "train" in r:
        t = r["train"]
        _table(f"training step, {t['model']}, batch {t['batch']} at {t['size'][0]}x{t['size'][1]} "
               f"({t['gflop_per_step']:.3g} GFLOP)", t["settings"],
               ["step_s", "ratio", "peak_rss_mb", "samples_per_s", "fraction_of_ceiling"])
    if "models" in r:
        _table("training step per model (bf16, SILog)", r["models"],
               ["size", "batch", "step_s", "peak_rss_mb", "parameters", "fraction_of_ceiling"])
    print_profile(r)
    if "device" in r:
        print_device(r["device"])
    if "predict" in r and "error" in r["predict"]:
        print(f"\nprediction: {r['predict']['error']}")
    elif "predict" in r:
        p = r["predict"]
        _table(f"prediction of one {p['size'][0]}x{p['size'][1]} image: {p['model']}", p["backends"],
               ["ms", "speedup_vs_torch_fp32", "max_abs_diff", "disagreement", "d1"])
        t = p["target"]
        print(f"  target: >= {t['speedup_vs_torch_fp32']:g}x PyTorch fp32 at <= {100 * t['disagreement']:g} % δ1 "
              "disagreement (disagreement: 1 - δ1 of the row against PyTorch fp32; d1: against the rooms' "
              "ground truth)")
        for name, row in p["backends"].items():
            if "target_met" in row:
                print(f"  {name:34s}  {'met' if row['target_met'] else row['gap']}")
    if "data" in r:
        d = r["data"]
        _table(f"data loading + augmentation, {d['workers']} worker(s), batch {d['batch']} "
               f"(training consumes {number(d['training_samples_per_s'], '.3g')}/s, a GPU {d['gpu_samples_per_s']:.0f}/s)",
               d["sources"], ["samples_per_s", "vs_training", "vs_gpu"])
        for note in d["notes"]:
            print(f"  note: {note}")


def predict_markdown(p: dict) -> str:
    """``bench``'s prediction section as a Markdown table (the README's): runtime, ms, speed-up, max |Δ|, δ1
    disagreement, target met or the gap."""
    lines = [f"| runtime ({p['size'][0]}×{p['size'][1]}) | ms (best) | speed-up | max abs Δ | δ1 disagreement | "
             f"target (≥ {p['target']['speedup_vs_torch_fp32']:g}×, ≤ {100 * p['target']['disagreement']:g} %) |",
             "|---|---:|---:|---:|---:|---|"]
    for name, row in p["backends"].items():
        runtime = name.replace("_", " ").replace("torch", "PyTorch").replace("openvino", "OpenVINO")
        if name.endswith("bf16") and row.get("runs") == "f32":
            runtime += " (runs f32: no native bf16)"
        if name.endswith("int8") and p.get("int8_ops", ["Conv"]) != ["Conv"]:
            runtime += f" ({', '.join(p['int8_ops'])})"
        if "error" in row:
            lines.append(f"| {runtime} | — | — | — | — | fails: {row['error']} |")
            continue
        lines.append(f"| {runtime} | {row['ms']:.0f} | {row['speedup_vs_torch_fp32']:.2f}× | "
                     f"{number(row['max_abs_diff'], '.2g')} | {100 * row['disagreement']:.2f} % | "
                     f"{'met' if row['target_met'] else row['gap']} |")
    return "\n".join(lines)
