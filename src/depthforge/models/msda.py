"""Multi-scale deformable attention's sampling (Deformable DETR, Zhu et al. 2021, eq. 2; ``transformers``'
``MultiScaleDeformableAttention``, the pure PyTorch path), summed level by level.

The reference stacks every level's bilinear samples into one [N·heads, D, Q, levels·points] tensor, then multiplies
it by the attention weights and sums: at DepthFormer's size (batch 16, 128×160, 5,120 half-resolution queries,
4 levels × 8 points) that stack is 2.7 GB written, copied and read again in both passes. Here each level's samples
[N·heads, D, Q, points] are weighted and summed as soon as they are drawn, so the stack and its copy never exist;
the arithmetic is the reference's (the same samples, the same weights), only the order of the sum over levels
differs (float rounding). ``fuse_sampling`` swaps it into a model built from ``transformers``' modules.

On the CPU a fused kernel (``csrc/msda.cpp``, Deformable DETR's CUDA kernel's arithmetic) goes further: each
sample is weighted and added as it is read, so not even one level's samples are written, and the backward pass
recomputes them instead of keeping them. A DepthFormer Swin-T training step (batch 16, 128×160, fp32) took 5.4 s
and 4.1 GB with it against 12.4 s and 9.5 GB on the level-wise PyTorch path, a BinsFormer's 4.2 against 5.2 s
(``depthforge bench --only profile``, a 2-core Intel Xeon with AVX-512, 2026-12-08). It is compiled on first use
with the C++ compiler and ``ninja`` (``torch.utils.cpp_extension``: about 30 s, once per machine, under
``TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``); where that fails, or with ``DEPTHFORGE_MSDA=torch``,
or while a model is traced, compiled or exported (ONNX cannot see inside it), the PyTorch path runs, a failed
build said in one log line.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from ..allocator import cpu_flags

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("csrc") / "msda.cpp"
# -fopenmp: ATen's parallel_for is OpenMP inside the kernel (one thread without it); -march=native: the build is
# keyed by this CPU's flags
FLAGS = ("-O3", "-fopenmp", "-march=native")
CHOICE = "DEPTHFORGE_MSDA"  # "torch" forces the PyTorch path
_native: Any = None  # the compiled module; False once it could not be built


def native_kernel():
    """The compiled kernel's module (``forward``, ``backward``), built on first use; None where it cannot be built
    or ``DEPTHFORGE_MSDA=torch``."""
    global _native
    if os.environ.get(CHOICE, "") == "torch":
        return None
    if _native is None:
        _native = _build() or False
    return _native or None


def _build():
    from torch.utils import cpp_extension

    cpu = " ".join(sorted(cpu_flags() or ()))
    try:
        key = hashlib.sha1(SOURCE.read_bytes() + " ".join(FLAGS).encode() + cpu.encode() + torch.__version__.encode())
        name = f"depthforge_msda_{key.hexdigest()[:12]}"
        # torch builds in TORCH_EXTENSIONS_DIR/<name>/, else in its default root's py311_cpu/<name>/
        root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root())
        if not any(root.glob(f"{name}/{name}.so")) and not any(root.glob(f"*/{name}/{name}.so")):
            log.warning("building the fused deformable-attention kernel for this CPU (once, about 30 s)")
        return cpp_extension.load(name, [str(SOURCE)], extra_cflags=list(FLAGS), extra_ldflags=["-fopenmp"],
                                  verbose=False)
    except Exception as e:  # no source, compiler or ninja, a failed build: the PyTorch path still works
        lines = str(e).splitlines() or [type(e).__name__]
        reason = " ".join(next((x for x in lines if "error:" in x), lines[0]).split())[:200]  # the compiler's line
        log.warning("the fused deformable-attention kernel could not be built (%s); using the slower PyTorch path",
                    reason)
        return None


class FusedDeformableSampling(torch.autograd.Function):
    """The kernel under autograd (named so in profiles)."""

    @staticmethod
    def forward(ctx, value, shapes, starts, loc, weights):
        ctx.save_for_backward(value, shapes, starts, loc, weights)
        return native_kernel().forward(value, shapes, starts, loc, weights)

    @staticmethod
    @once_differentiable  # its gradients are not differentiable again: a second derivative fails loudly
    def backward(ctx, grad):
        d_value, d_loc, d_weights = native_kernel().backward(*ctx.saved_tensors, grad.contiguous())
        return d_value, None, None, d_loc, d_weights


def fused(value: Tensor, shapes: Tensor, starts: Tensor, loc: Tensor, weights: Tensor) -> Tensor:
    """The sampling by the compiled kernel (``native_kernel()`` must not be None): ``value`` [N, S, heads, D],
    ``shapes`` [L, 2] (h, w), ``starts`` [L] (each level's first row in S), ``loc`` [N, Q, heads, L, P, 2] (x, y in
    [0, 1]), ``weights`` [N, Q, heads, L, P] -> [N, Q, heads·D], in ``value``'s dtype (computed in float32 when
    that is narrower, as autocast runs ``grid_sample``)."""
    dtype = value.dtype
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    n, queries, heads = loc.shape[:3]
    out = FusedDeformableSampling.apply(value.to(work).contiguous(), shapes.to(torch.int64).contiguous(),
                                        starts.to(torch.int64).contiguous(), loc.to(work).contiguous(),
                                        weights.to(work).contiguous())
    return out.view(n, queries, heads * value.shape[-1]).to(dtype)


def _fusable(value: Tensor) -> bool:
    if value.device.type != "cpu" or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
        return False
    return native_kernel() is not None


class LevelwiseDeformableSampling(nn.Module):
    """Drop-in for ``transformers``' ``MultiScaleDeformableAttention`` (same ``forward`` arguments and result): the
    fused kernel where it runs (``_fusable``), else level by level (``levelwise``)."""

    def forward(self, value: Tensor, value_spatial_shapes: Tensor, value_spatial_shapes_list: list[tuple],
                level_start_index: Tensor, sampling_locations: Tensor, attention_weights: Tensor,
                im2col_step: int = 64) -> Tensor:
        if _fusable(value):
            return fused(value, value_spatial_shapes, level_start_index, sampling_locations, attention_weights)
        return levelwise(value, value_spatial_shapes_list, sampling_locations, attention_weights)


def levelwise(value: Tensor, shapes: list[tuple], sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """The PyTorch path: one ``grid_sample`` per level, weighted and summed at once (the module docstring)."""
    n, _, heads, dim = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    values = value.split([h * w for h, w in shapes], dim=1)
    grids = 2 * sampling_locations - 1
    # [N, Q, heads, L, P] -> [N·heads, 1, Q, L, P]
    weights = attention_weights.transpose(1, 2).reshape(n * heads, 1, queries, levels, points)
    out = None
    for level, (h, w) in enumerate(shapes):
        v = values[level].flatten(2).transpose(1, 2).reshape(n * heads, dim, h, w)
        grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # [N·heads, Q, P, 2]
        sampled = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        part = (sampled * weights[..., level, :]).sum(-1)  # [N·heads, D, Q]
        out = part if out is None else out + part
    return out.view(n, heads * dim, queries).transpose(1, 2).contiguous()


def fuse_sampling(module: nn.Module) -> nn.Module:
    """Replace every ``MultiScaleDeformableAttention`` inside ``module`` by ``LevelwiseDeformableSampling``
    (it has no parameters, so weights and state dicts are unchanged); returns ``module``."""
    from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, MultiScaleDeformableAttention):
                setattr(parent, name, LevelwiseDeformableSampling())
    return module
