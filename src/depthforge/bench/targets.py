"""Issue 22's speed targets against one ``bench`` run: each with its measured value, met or the gap, and for a
miss the operator holding it (from the ``profile`` section); and the text of the profile and targets sections."""
from __future__ import annotations

from typing import Any

from ..evaluation.report import number
from .train import FASTEST

# (model, limit seconds) of a training step at batch 16, 128x160 (issue 22, item 1)
STEP_LIMITS = {"depthformer": 5.0, "dpt": 5.0, "zoedepth": 4.0, "binsformer": 2.0}
FAMILY_FRACTION = 0.20  # of the bf16 ceiling, every family at that size
AT, BATCH = [128, 160], 16
# the seed U-Net at batch 16, 240x320 (item 2): step, fraction of the bf16 ceiling, peak memory
SEED_AT, SEED_STEP, SEED_FRACTION, SEED_MB = [240, 320], 1.6, 0.50, 3000.0
GPU_TRAIN, GPU_PREDICT = 2000.0, 500.0  # img/s on one H100 (item 4)


def _held_by(prof: dict | None, memory_bound: bool) -> str | None:
    """The operator holding a miss: the top one by self time, or the top memory-bound one for a ceiling miss."""
    if not prof or "top_ops" not in prof:
        return None
    def say(op: dict) -> str:
        return f"{op['op']} ({op['class']}, {op['share']:.0%} of operator time)"

    top, memory = (prof["top_ops"] or [None])[0], prof.get("top_memory_bound")
    other = memory if memory and top and memory["op"] != top["op"] else None
    held = [say(op) for op in ([memory] if memory_bound else [top, other]) if op]
    if not held:
        return None
    return "; ".join(held[:1] + [f"top memory-bound {h}" for h in held[1:]]) + \
        f"; arithmetic {prof['arithmetic_share']:.0%} of operator time"


def _row(target: str, measured, limit: float, unit: str, at_most: bool, prof: dict | None, note: str = "") -> dict:
    row: dict[str, Any] = {"target": target, "limit": limit, "unit": unit, "measured": measured}
    if measured is None:
        row.update(met=None, note=note or "not measured in this run")
        return row
    met = measured <= limit if at_most else measured >= limit
    row["met"] = bool(met)
    row["gap"] = measured / limit if at_most else (limit / measured if measured > 0 else float("inf"))
    if not met:
        row["held_by"] = _held_by(prof, memory_bound=unit.startswith("of the"))
    if note:
        row["note"] = note
    return row


def targets(r: dict) -> list[dict]:
    """Every target of issue 22 items 1-2 against result ``r`` of ``bench``; ``gap`` is the factor to go
    (measured / limit for a time or memory, limit / measured for a fraction); ``measured`` None: not run here."""
    prof = r.get("profile") or {}
    models = prof.get("models", {})
    same = prof.get("size") == AT and prof.get("batch") == BATCH
    where = "" if same or not prof else f"profiled at {prof['size'][0]}x{prof['size'][1]}, batch {prof['batch']}"
    # against the bf16 ceiling where bf16 is the faster; where it is slower than fp32 (emulated, or AVX512-BF16
    # without AMX), against fp32's: a fraction of a lower roof would call a slow step fast
    c = r.get("ceiling") or {}
    fast = c.get("bf16_fast", True)
    roof = c.get("bf16_gflops") if fast else c.get("fp32_gflops")
    unit = "of the bf16 ceiling" if fast else "of the fp32 ceiling (bf16 is the slower here)"
    rows = []
    for name, limit in STEP_LIMITS.items():
        p = models.get(name, {})
        ok = same and "step_s" in p
        rows.append(_row(f"{name} training step, batch {BATCH} at {AT[0]}x{AT[1]}", p["step_s"] if ok else None,
                         limit, "s", True, p, where or p.get("error", "")))
        if ok:
            rows[-1]["precision"], rows[-1]["peak_rss_mb"] = p["precision"], p["peak_rss_mb"]
    for name, p in models.items():
        if name == "seed-unet":
            continue
        ok = same and "gflops_per_s" in p and bool(roof)
        rows.append(_row(f"{name} GFLOP/s at {AT[0]}x{AT[1]}", p["gflops_per_s"] / roof if ok else None,
                         FAMILY_FRACTION, unit, False, p, where or p.get("error", "")))
    t = r.get("train") or {}
    # the default setting (bf16 + channels_last) where it ran, else the fastest one that did (fp32 where bf16
    # is emulated and too slow to run at this size)
    ran = {k: v for k, v in t.get("settings", {}).items() if "step_s" in v and not k.startswith("tensorflow")}
    setting = FASTEST if FASTEST in ran else min(ran, key=lambda k: ran[k]["step_s"], default=FASTEST)
    s = ran.get(setting, {})
    ok = t.get("size") == SEED_AT and t.get("batch") == BATCH and "step_s" in s
    note = "" if ok else ("the train section ran at another size or batch" if t else "")
    seed_prof = models.get("seed-unet")
    label = f"seed U-Net ({setting}), batch {BATCH} at {SEED_AT[0]}x{SEED_AT[1]}"
    rows.append(_row(f"{label}: step", s.get("step_s") if ok else None, SEED_STEP, "s", True, seed_prof, note))
    fraction = s["gflops_per_s"] / roof if ok and roof and "gflops_per_s" in s else None
    rows.append(_row(f"{label}: GFLOP/s", fraction, SEED_FRACTION, unit, False, seed_prof, note))
    rows.append(_row(f"{label}: peak RSS", s.get("peak_rss_mb") if ok else None, SEED_MB, "MB", True, seed_prof,
                     note))
    # fp32 no slower than the seed's own TensorFlow fp32 in the same run (tf_seed.py; where TensorFlow is installed)
    ours, theirs = ran.get("fp32", {}), t.get("settings", {}).get("tensorflow_fp32", {})
    both = ok and "step_s" in ours and "step_s" in theirs
    why = note or ("" if both else "TensorFlow's step not run here (pip install tensorflow-cpu, then bench again)")
    rows.append(_row(f"seed U-Net fp32 step against TensorFlow's fp32, batch {BATCH} at {SEED_AT[0]}x{SEED_AT[1]}",
                     ours["step_s"] / theirs["step_s"] if both else None, 1.0, "x TensorFlow's step", True, seed_prof,
                     why))
    rows += device_targets(r.get("device"))
    return rows


def device_targets(d: dict | None) -> list[dict]:
    """Issue 22 item 4 on one GPU: the seed U-Net's training at 240x320 >= 2,000 img/s with the pipeline keeping
    up, Depth Anything V2 (Small) predicting at 518x518 >= 500 img/s (its best batch)."""
    gpu = bool(d) and d["device"].startswith("cuda")
    note = "" if gpu else "needs bench --device cuda"
    seed = (d or {}).get("models", {}).get("seed-unet", {}) if gpu else {}
    ok = seed.get("size") == SEED_AT and "train_samples_per_s" in seed
    rows = [_row(f"seed U-Net training on {(d or {}).get('name', 'a GPU')} at {SEED_AT[0]}x{SEED_AT[1]}",
                 seed["train_samples_per_s"] if ok else None, GPU_TRAIN, "img/s", False, None, note)]
    if ok:
        rows[-1]["pipeline_keeps_up"] = seed["pipeline_keeps_up"]
        rows[-1]["met"] = rows[-1]["met"] and seed["pipeline_keeps_up"]
    da = (d or {}).get("models", {}).get("depth-anything-v2", {}) if gpu else {}
    rates = [p["samples_per_s"] for p in da.get("predict", {}).values() if "samples_per_s" in p]
    ok = da.get("size") == [518, 518] and bool(rates)
    rows.append(_row("Depth Anything V2 prediction on a GPU at 518x518 (best batch)", max(rates) if ok else None,
                     GPU_PREDICT, "img/s", False, None, note))
    return rows


def print_profile(r: dict) -> None:
    """The profile and targets sections of the text report."""
    c = r["ceiling"]
    if not c.get("bf16_fast", True):
        print(f"note: bf16 matrix products are slower than fp32 on this CPU ({c['bf16_gflops']:.0f} against "
              f"{c['fp32_gflops']:.0f} GFLOP/s: emulated, or AVX512-BF16 without AMX), so fractions are of fp32's")
    if "profile" in r:
        p = r["profile"]
        print(f"\ntraining step by operator ({p['precision']}, batch {p['batch']} at {p['size'][0]}x{p['size'][1]}, "
              f"{p['steps']} profiled step(s) after a warm-up)")
        for name, m in p["models"].items():
            if "error" in m:
                print(f"  {name}: {m['error']}")
                continue
            bf16 = f"{m.get('fraction_of_bf16_ceiling', float('nan')):.1%} of bf16, " if c.get("bf16_fast", True) \
                else ""  # a fraction of the lower roof says nothing
            print(f"  {name}: step {m['step_s']:.3g} s, peak RSS {m['peak_rss_mb']:.0f} MB, "
                  f"{m['gflops_per_s']:.3g} GFLOP/s = {bf16}{m.get('fraction_of_fp32_ceiling', float('nan')):.1%} of "
                  f"the fp32 ceiling; arithmetic {m['arithmetic_share']:.0%} of operator time")
            print("    " + ", ".join(f"{k} {v / m['ops_s']:.0%}" for k, v in m["by_class_s"].items() if v))
            for op in m["top_ops"][:6]:
                print(f"    {op['op']:44s} {op['class']:13s} {op['self_s']:8.3f} s {op['share']:6.1%}")
    if r.get("targets"):
        print("\ntargets (issue 22)")
        for t in r["targets"]:
            if t["met"] is None:
                state = f"not measured: {t['note']}"
            else:
                state = ("met" if t["met"] else f"MISSED by {t['gap']:.3g}x") + (
                    f"; held by {t['held_by']}" if t.get("held_by") else "")
            print(f"  {t['target']:60s} {number(t['measured'], '.3g'):>8s} (limit {t['limit']:g} {t['unit']}) {state}")


def print_device(d: dict) -> None:
    """The device section: training and prediction throughput per model."""
    print(f"\ndevice {d['device']} ({d['name']}), {d['precision']}, training batch {d['batch']}, {d['steps']} steps; "
          f"{d['cached_samples']} samples cached once ("
          + ", ".join(f"{k} in {v:.1f} s" for k, v in d["cache_s"].items()) + ")")
    for name, m in d["models"].items():
        if "error" in m:
            print(f"  {name}: {m['error']}")
            continue
        pred = ", ".join(f"b{b} {p['samples_per_s']:.4g}" if "samples_per_s" in p else f"b{b} {p['error']}"
                         for b, p in m["predict"].items())
        print(f"  {name} at {m['size'][0]}x{m['size'][1]}: train {m['train_samples_per_s']:.4g} img/s, peak "
              f"{m['train_peak_mb']:.0f} MB; pipeline {m['pipeline_samples_per_s']:.4g} samples/s "
              f"({'keeps up' if m['pipeline_keeps_up'] else 'SHORT'}); predict img/s {pred}")
