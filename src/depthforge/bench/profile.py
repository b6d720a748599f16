"""Training step by operator: each model's step (forward, its loss, backward, Adam: ``training.step.optimizer_step``,
the model built as ``train.model_steps`` builds it) under ``torch.profiler``, its top operators by self CPU time,
each classed as arithmetic (matrix products and convolutions: what the matmul ceiling bounds) or one kind of
memory-bound work (sampling, softmax, layout, normalisation, elementwise, other), the arithmetic share, the step
time, peak RSS and GFLOP/s as a fraction of the bf16 and fp32 ceilings. Each model runs in a subprocess of its
own (``machine.spawn``), so its peak memory is its own."""
from __future__ import annotations

import re
import time
from typing import Any

import torch

from ..errors import DepthforgeError
from .machine import brief, load_average, rss_mb, say, spawn

# the families of issue 22's targets, and the seed U-Net beside them
PROFILE_MODELS = ("seed-unet", "depthformer", "dpt", "zoedepth", "binsformer")
PROFILE_SIZE, PROFILE_BATCH = (128, 160), 16
# (class, pattern on the operator name without "aten::"), first match wins; the rest is "other"
CLASSES = (
    ("arithmetic", r"^(mm|bmm|addmm|baddbmm|addbmm|matmul|linear|einsum|_addmm_activation|mkldnn_linear.*|"
                   r"(_?mkldnn_|_slow_|thnn_|_nnpack_|cudnn_)?conv.*|_convolution.*|convolution.*|"
                   r"_scaled_dot_product_.*attention.*|scaled_dot_product_attention)$"),
    ("sampling", r"^(grid_sampler.*|upsample.*|_upsample.*|im2col|col2im|max_pool.*|avg_pool.*|"
                 r"adaptive_.*pool.*|index_select|gather|scatter.*|index|index_put_?|_index_put.*|"
                 r"index_add_?|embedding.*|roll|FusedDeformableSampling(Backward)?)$"),
    ("softmax", r"^(_?softmax|_?log_softmax|_softmax_backward_data|_log_softmax_backward_data|softmax_backward)$"),
    ("layout", r"^(permute|contiguous|copy_|clone|cat|stack|_to_copy|to|reshape|view|_unsafe_view|transpose|"
               r"t|expand|as_strided|slice|select|narrow|split|split_with_sizes|chunk|unbind|unfold|flatten|"
               r"constant_pad_nd|pad|reflection_pad.*|replication_pad.*|pixel_(un)?shuffle|empty_like|zeros_like|"
               r"new_zeros|repeat|flip|_reshape_alias|unsqueeze|squeeze|detach|alias|fill_|zero_|zeros|empty|"
               r"empty_strided|resize_|set_|slice_backward|select_backward|cat_backward)$"),
    ("normalisation", r"^(.*(layer|batch|group|instance)_norm.*|_batch_norm.*|native_.*norm.*|rms_norm.*|"
                      r"_fused_rms_norm.*)$"),
    ("elementwise", r"^(add|add_|sub|sub_|rsub|mul|mul_|div|div_|neg|abs|exp|exp_|log|log_|log1p|sqrt|rsqrt|pow|"
                    r"pow_|clamp.*|where|gelu|gelu_backward|relu|relu_|threshold_backward|silu|silu_backward|"
                    r"sigmoid|sigmoid_backward|tanh|tanh_backward|leaky_relu.*|elu.*|hardswish.*|erf|sign|"
                    r"sum|mean|max|min|amax|amin|maximum|minimum|std|var|var_mean|norm|linalg_vector_norm|"
                    r"addcmul_?|addcdiv_?|lerp_?|_foreach_.*|sqrt_|reciprocal|floor|ceil|round|eq|ne|gt|lt|ge|"
                    r"le|logical_.*|bitwise_.*|masked_fill_?|cumsum|prod|_amp_.*|_local_scalar_dense|"
                    r"nan_to_num|isfinite|sgn|argmax|argmin|topk|sort|mse_loss.*|l1_loss.*|smooth_l1.*|bernoulli_?|"
                    r"native_dropout.*|dropout)$"),
)
_COMPILED = [(name, re.compile(p)) for name, p in CLASSES]
KINDS = [name for name, _ in CLASSES] + ["other"]


def op_class(name: str) -> str:
    """The class of profiler event ``name`` ("aten::addmm" -> "arithmetic"); autograd nodes ("AddmmBackward0")
    are "other": their self time is the Python-free bookkeeping around the aten calls they make, except the fused
    deformable-attention kernel's (``models/msda.py``), whose self time is the kernel itself."""
    op = name.split("::", 1)[-1]
    for kind, pattern in _COMPILED:
        if pattern.match(op):
            return kind
    return "other"


def summarise(events, steps: int, top: int = 15) -> dict[str, Any]:
    """Self CPU seconds per step of each operator (``key_averages`` of a profile over ``steps`` steps): the
    ``top`` operators, the seconds per class and the arithmetic share of all operator time."""
    rows = [(e.key, e.self_cpu_time_total / 1e6 / steps, e.count / steps) for e in events
            if e.self_cpu_time_total > 0 and not e.key.startswith("ProfilerStep")]
    total = sum(s for _, s, _ in rows) or float("nan")
    by_class = {k: 0.0 for k in KINDS}
    for key, s, _ in rows:
        by_class[op_class(key)] += s
    rows.sort(key=lambda r: -r[1])
    ops = [{"op": key, "class": op_class(key), "self_s": s, "share": s / total, "calls": n}
           for key, s, n in rows[:top]]
    memory = [o for o in ops if o["class"] != "arithmetic"]
    return {"ops_s": total, "by_class_s": by_class, "arithmetic_share": by_class["arithmetic"] / total,
            "top_ops": ops, "top_memory_bound": memory[0] if memory else None}


def profile_worker(job: dict) -> dict:
    """One model's training step under the profiler; runs in a subprocess (``python -m depthforge.bench``)."""
    from torch.profiler import ProfilerActivity, profile

    from ..losses import build_loss
    from ..models import MODELS
    from ..models.msda import LevelwiseDeformableSampling, native_kernel
    from ..training.step import optimizer_step
    from .train import train_flops

    torch.manual_seed(0)
    base = rss_mb()
    try:
        model = MODELS.build(job["model"], **job["kwargs"]).train()
    except Exception as e:  # noqa: BLE001  a model that needs a download or a missing package: say so, go on
        return {"error": brief(e)}
    (h, w), batch, bf16 = job["size"], job["batch"], job["precision"] == "bf16"
    flops = train_flops(model, (h, w), batch)
    loss_fn = build_loss("seed", max_depth=model.max_depth) if job["model"] == "seed-unet" else build_loss("silog")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, amsgrad=True)
    x = torch.rand(batch, 3, h, w)
    y = 0.5 + torch.rand(batch, 1, h, w) * (model.max_depth - 1)
    data = {"image": x, "depth": y, "valid": torch.ones_like(y, dtype=torch.bool)}
    t = time.perf_counter()
    optimizer_step(model, loss_fn, opt, data, bf16=bf16)  # warm-up: kernel choice, allocator, Adam's state
    first = time.perf_counter() - t
    walls = []
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(job["steps"]):
            t = time.perf_counter()
            loss = optimizer_step(model, loss_fn, opt, data, bf16=bf16)
            walls.append(time.perf_counter() - t)
    step = sorted(walls)[len(walls) // 2]
    sampling = {}  # which deformable-attention path ran, for the families that have one
    if any(isinstance(m, LevelwiseDeformableSampling) for m in model.modules()):
        sampling = {"deformable_sampling": "fused kernel" if native_kernel() is not None else "pytorch"}
    return {"size": [h, w], "batch": batch, "precision": job["precision"], "steps": job["steps"], **sampling,
            "parameters": sum(p.numel() for p in model.parameters()), "gflop_per_step": flops / 1e9,
            "step_s": step, "first_step_s": first, "peak_rss_mb": rss_mb(), "base_rss_mb": base,
            "loss": float(loss.detach()), "threads": torch.get_num_threads(),
            **summarise(prof.key_averages(), job["steps"], job.get("top", 15))}


def profile_models(names=None, *, size=PROFILE_SIZE, batch: int = PROFILE_BATCH, steps: int = 1,
                   precision: str = "auto", kwargs_key: str = "catalog", roof: dict | None = None, top: int = 15,
                   progress: bool = False) -> dict[str, Any]:
    """``profile_worker`` per model (default ``PROFILE_MODELS``) at ``size`` (a multiple of each model's: see
    ``checks.check_size``), ``batch``, ``steps`` profiled steps after one warm-up. ``precision``: "bf16"
    (autocast), "fp32", or "auto": bf16 where its matrix products are the faster (``roof["bf16_fast"]``), else
    fp32. GFLOP/s are given as a fraction of both ceilings."""
    from ..models import MODELS

    names = list(names) if names else list(PROFILE_MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise DepthforgeError(f"bench: unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(MODELS))}")
    if precision == "auto":
        precision = "bf16" if (roof or {}).get("bf16_fast", True) else "fp32"
    out: dict[str, Any] = {"size": list(size), "batch": batch, "steps": steps, "precision": precision,
                           "kwargs": kwargs_key, "models": {}}
    for name in names:
        say(progress, f"profile: training step of {name} at {size[0]}x{size[1]}, batch {batch} ...")
        job = {"kind": "profile", "model": name, "kwargs": MODELS.info[name].get(kwargs_key, {}), "size": list(size),
               "batch": batch, "steps": steps, "precision": precision, "top": top}
        before = load_average()
        r = spawn(job)
        r["load"] = before
        if "error" not in r:
            r["gflops_per_s"] = r["gflop_per_step"] / r["step_s"]
            if roof:
                r["fraction_of_bf16_ceiling"] = r["gflops_per_s"] / roof["bf16_gflops"]
                r["fraction_of_fp32_ceiling"] = r["gflops_per_s"] / roof["fp32_gflops"]
        out["models"][name] = r
    return out
