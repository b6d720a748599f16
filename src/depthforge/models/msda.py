"""Multi-scale deformable attention's sampling (Deformable DETR, Zhu et al. 2021, eq. 2; ``transformers``'
``MultiScaleDeformableAttention``, the pure PyTorch path), summed level by level.

The reference stacks every level's bilinear samples into one [N·heads, D, Q, levels·points] tensor, then multiplies
it by the attention weights and sums: at DepthFormer's size (batch 16, 128×160, 5,120 half-resolution queries,
4 levels × 8 points) that stack is 2.7 GB written, copied and read again in both passes. Here each level's samples
[N·heads, D, Q, points] are weighted and summed as soon as they are drawn, so the stack and its copy never exist;
the arithmetic is the reference's (the same samples, the same weights), only the order of the sum over levels
differs (float rounding). ``fuse_sampling`` swaps it into a model built from ``transformers``' modules.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class LevelwiseDeformableSampling(nn.Module):
    """Drop-in for ``transformers``' ``MultiScaleDeformableAttention`` (same ``forward`` arguments and result)."""

    def forward(self, value: Tensor, value_spatial_shapes: Tensor, value_spatial_shapes_list: list[tuple],
                level_start_index: Tensor, sampling_locations: Tensor, attention_weights: Tensor,
                im2col_step: int = 64) -> Tensor:
        n, _, heads, dim = value.shape
        _, queries, _, levels, points, _ = sampling_locations.shape
        values = value.split([h * w for h, w in value_spatial_shapes_list], dim=1)
        grids = 2 * sampling_locations - 1
        # [N, Q, heads, L, P] -> [N·heads, 1, Q, L, P]
        weights = attention_weights.transpose(1, 2).reshape(n * heads, 1, queries, levels, points)
        out = None
        for level, (h, w) in enumerate(value_spatial_shapes_list):
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
