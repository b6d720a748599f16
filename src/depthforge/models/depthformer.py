"""DepthFormer (Li et al., arXiv 2203.14211) as the Monocular-Depth-Estimation-Toolbox configures it
(``configs/_base_/models/depthformer_swin.py``, ``depthformer_swin{t,l}_*``, ``necks/hahi.py``,
``decode_heads/densedepth_head.py``).

- Encoder: Swin (``transformers``, 4 levels C1..C4 at 1/4..1/32, each layer-normed) plus a convolutional stem
  trained from scratch (7×7 stride 2 → 64, BN, ReLU) → [64@½, C1@¼, C2@⅛, C3@1/16, C4@1/32].
- HAHI neck: lateral 1×1 conv-BN-ReLU per level; the four transformer levels projected to E and flattened with
  sine positions (mmcv's ``SinePositionalEncoding``, not normalised) + learned level embeddings;
  HI = one multi-scale deformable self-attention across them (8 heads, 8 points, identity + dropout 0.1 as mmcv's
  ``MultiScaleDeformableAttention``); HA = the ½ conv feature projected to E as queries of one deformable
  cross-attention onto those tokens, reference points sigmoid(Linear(position)); each level fused by a 3×3
  conv-BN-ReLU on concat(lateral, attended) back to its channels. No FFN.
- Decoder (DenseDepthHead, no norm): 1×1 conv at 1/32 (C4 → C4); four up blocks: bilinear (align_corners) to the
  skip's size, concat, two (3×3 conv + LeakyReLU 0.01); channels C3, C2, C1, 64 @ ½; depth = ReLU(conv3×3 64 → 1)
  + min_depth, resized bilinearly to the input.

The sampling of multi-scale deformable attention is ``transformers``' Deformable-DETR module (pure PyTorch path),
its levels summed one by one (``msda.py``: the same result without the stacked samples).
Deviations: ``forward`` clamps the output to [min_depth, max_depth] (the toolbox clamps when it evaluates;
``forward_train`` returns the unclamped depth); head="sigmoid" gives the toolbox's ``scale_up`` head instead.
The neck's SyncBN is plain BatchNorm (one process; DDP converts it where a run asks).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import DepthforgeError
from .backbones import Backbone, build_backbone
from .base import MODELS, Contract, DepthModel
from .layers import conv_bn, sine_positions
from .msda import fuse_sampling

# size -> (Swin size in backbones.SIZES, neck width E). E = 256 for Swin-T, 512 for Swin-L (toolbox configs).
SIZES = {"micro": ("micro", 32), "tiny": ("tiny", 256), "base": ("base", 256), "large": ("large", 512)}
STEM = 64


def grid_points(x: torch.Tensor) -> torch.Tensor:
    """Pixel centres of map x [N,C,h,w], normalised to (0,1): [N,h*w,2] as (x, y)."""
    ones = torch.ones_like(x[:, 0])
    h, w = ones.sum(1, keepdim=True), ones.sum(2, keepdim=True)
    ref_y, ref_x = (ones.cumsum(1) - 0.5) / h, (ones.cumsum(2) - 0.5) / w
    return torch.stack((ref_x, ref_y), dim=-1).flatten(1, 2)


class DeformAttention(nn.Module):
    """Multi-scale deformable attention with mmcv's wrapping: out = query + dropout(MSDA(query + pos, value)).

    query [N,Q,E], pos [N,Q,E], value [N,S,E] over ``shapes`` [(h,w)] levels, ref [N,Q,L,2] in (0,1) -> [N,Q,E].
    """

    def __init__(self, dim: int, levels: int = 4, heads: int = 8, points: int = 8, dropout: float = 0.1):
        super().__init__()
        from transformers import DeformableDetrConfig
        from transformers.models.deformable_detr.modeling_deformable_detr import (
            DeformableDetrMultiscaleDeformableAttention)

        if dim % heads:
            raise ValueError(f"embed_dim must be a multiple of {heads} heads, not {dim}")
        cfg = DeformableDetrConfig(d_model=dim, num_feature_levels=levels)
        self.attn = fuse_sampling(DeformableDetrMultiscaleDeformableAttention(cfg, num_heads=heads, n_points=points))
        self.dropout = nn.Dropout(dropout)
        self.reset()

    def reset(self) -> None:
        # Deformable DETR's (and mmcv's) init: offsets fan out per head, points at growing radii; uniform weights.
        a = self.attn
        nn.init.zeros_(a.sampling_offsets.weight)
        theta = torch.arange(a.n_heads, dtype=torch.float32) * (2.0 * math.pi / a.n_heads)
        grid = torch.stack([theta.cos(), theta.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(a.n_heads, 1, 1, 2)
        grid = grid.repeat(1, a.n_levels, a.n_points, 1) * torch.arange(1, a.n_points + 1).view(1, 1, -1, 1)
        with torch.no_grad():
            a.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(a.attention_weights.weight)
        nn.init.zeros_(a.attention_weights.bias)
        for lin in (a.value_proj, a.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: torch.Tensor, pos: torch.Tensor, value: torch.Tensor, ref: torch.Tensor,
                shapes: list[tuple[int, int]]) -> torch.Tensor:
        # Built from the sizes one by one (not torch.tensor(shapes)) so an ONNX trace keeps them dynamic: they
        # scale the sampling offsets.
        spatial = torch.stack([torch.stack([torch.as_tensor(h), torch.as_tensor(w)]) for h, w in shapes])
        start = torch.cat([spatial.new_zeros(1), (spatial[:, 0] * spatial[:, 1]).cumsum(0)[:-1]])
        out, _ = self.attn(query, position_embeddings=pos, encoder_hidden_states=value, reference_points=ref,
                           spatial_shapes=spatial.to(query.device), spatial_shapes_list=shapes,
                           level_start_index=start)
        return query + self.dropout(out)


class HAHI(nn.Module):
    """Hierarchical aggregation and heterogeneous interaction neck (toolbox ``HAHIHeteroNeck``).

    feats [conv@½ (channels[0]), four transformer levels] -> the same list, same shapes, interacted."""

    def __init__(self, channels: list[int], dim: int, heads: int = 8, points: int = 8):
        super().__init__()
        self.dim = dim
        self.lateral = nn.ModuleList(conv_bn(c, c, 1) for c in channels)
        self.trans_proj = nn.ModuleList(conv_bn(c, dim, 1) for c in channels[1:])
        self.trans_fusion = nn.ModuleList(conv_bn(c + dim, c, 3) for c in channels[1:])
        self.conv_proj = conv_bn(channels[0], dim, 1)
        self.conv_fusion = conv_bn(channels[0] + dim, channels[0], 3)
        self.level_embed = nn.Parameter(torch.empty(len(channels) - 1, dim))
        self.reference_points = nn.Linear(dim, 2)
        self.self_attn = DeformAttention(dim, len(channels) - 1, heads, points)
        self.cross_attn = DeformAttention(dim, len(channels) - 1, heads, points)
        self._init()

    def _init(self) -> None:
        # The toolbox's init_weights: xavier for convs and linears, then the attention's own init.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.level_embed)
        self.self_attn.reset()
        self.cross_attn.reset()

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [f(x) for f, x in zip(self.lateral, feats)]
        conv, trans = lat[0], lat[1:]
        n = conv.shape[0]
        shapes = [(t.shape[2], t.shape[3]) for t in trans]
        tokens = torch.cat([p(t).flatten(2).transpose(1, 2) for p, t in zip(self.trans_proj, trans)], 1)
        pos = torch.cat([sine_positions(t, self.dim).flatten(1, 2) + self.level_embed[i]
                         for i, t in enumerate(trans)], 1)
        # HI: every token attends to points around its own position on all four levels.
        ref = torch.cat([grid_points(t) for t in trans], 1)[:, :, None].expand(-1, -1, len(trans), -1)
        tokens = self.self_attn(tokens, pos, tokens, ref, shapes)
        # HA: the ½-resolution conv feature queries the interacted transformer tokens.
        query_map = self.conv_proj(conv)
        query_pos = sine_positions(query_map, self.dim).flatten(1, 2)
        ref = self.reference_points(query_pos).sigmoid()[:, :, None].expand(-1, -1, len(trans), -1)
        attended = self.cross_attn(query_map.flatten(2).transpose(1, 2), query_pos, tokens, ref, shapes)
        attended = attended.transpose(1, 2).reshape(query_map.shape)
        outs = [self.conv_fusion(torch.cat([attended, conv], 1))]
        start = 0
        for t, fuse in zip(trans, self.trans_fusion):
            h, w = t.shape[-2:]
            level = tokens[:, start:start + h * w].transpose(1, 2).reshape(n, self.dim, h, w)
            start = start + h * w
            outs.append(fuse(torch.cat([t, level], 1)))
        return outs


class UpSample(nn.Module):
    """DenseDepth's up block: bilinear to the skip's size, concat, two (3×3 conv + LeakyReLU), no norm."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.01, inplace=True),
                                   nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.01, inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        return self.convs(torch.cat([x, skip], 1))


@MODELS.register("depthformer", family="Swin + conv stem, HAHI neck, DenseDepth decoder",
                 weights="ImageNet Swin encoder (microsoft/swin-*)", test={"size": "micro"})
class DepthFormer(DepthModel):
    """Image [N,3,H,W] in [0,1] (H, W multiples of 32) -> metric depth [N,1,H,W], metres in [min_depth, max_depth].

    ``size``: "micro" (tests), "tiny" (Swin-T, E = 256), "base", "large" (Swin-L, E = 512). ``pretrained``: None,
    True (the Swin size's hub weights), a hub id or a folder (the encoder only; stem, neck and decoder start from
    scratch as in the paper). ``embed_dim``: the neck width E (default per size). ``backbone_config``: the Swin
    config dict, to rebuild offline. ``drop_path``: Swin's stochastic depth (0.3 in the toolbox).
    ``partial_weights``: accept pretrained weights that lack some of the encoder's tensors.
    """

    def __init__(self, size: str = "tiny", pretrained: bool | str | None = None, max_depth: float = 10.0,
                 min_depth: float = 1e-3, embed_dim: int | None = None, head: str = "relu",
                 drop_path: float = 0.3, backbone_config: dict[str, Any] | None = None,
                 partial_weights: bool = False):
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r} (known: {', '.join(SIZES)})")
        if head not in ("relu", "sigmoid"):
            raise ValueError(f"head must be 'relu' or 'sigmoid', not {head!r}")
        if not 0 < min_depth < max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth metres, got {min_depth!r}, {max_depth!r}")
        swin, dim = SIZES[size]
        self.min_depth, self.head_kind = float(min_depth), head
        self.set_contract(Contract("metric", float(max_depth), multiple=32))
        self.backbone: Backbone = build_backbone("swin", swin, pretrained, backbone_config, partial_weights)
        self._set_drop_path(drop_path)
        self.stem = nn.Sequential(nn.Conv2d(3, STEM, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(STEM),
                                  nn.ReLU(inplace=True))
        channels = [STEM, *self.backbone.channels]
        self.neck = HAHI(channels, int(embed_dim or dim))
        top, *rest = channels[::-1]
        self.bottleneck = nn.Conv2d(top, top, 1)
        self.ups = nn.ModuleList(UpSample(cin + cout, cout) for cin, cout in zip(channels[::-1], rest))
        self.out = nn.Conv2d(STEM, 1, 3, padding=1)
        self._init_decoder()

    def _init_decoder(self) -> None:
        # mmcv ConvModule's init (Kaiming normal, fan_out, for its activation; zero bias) for the decoder convs.
        # The ReLU depth head starts near a constant tenth of the range (small weights, bias 0.1·max_depth): with
        # PyTorch's default init its input can start below 0 everywhere (the whole map at min_depth, zero
        # gradient), the non-convergence the toolbox reports (its issue #20).
        nn.init.kaiming_normal_(self.bottleneck.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.bottleneck.bias)
        for m in self.ups.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.01, mode="fan_out", nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        if self.head_kind == "relu":
            nn.init.normal_(self.out.weight, std=1e-3)
            nn.init.constant_(self.out.bias, 0.1 * self.max_depth)

    def _set_drop_path(self, rate: float) -> None:
        # transformers spreads config.drop_path_rate linearly over the blocks; rescale that spread to ``rate``.
        cfg = self.backbone.model.config
        if cfg.drop_path_rate > 0:
            for m in self.backbone.modules():
                if type(m).__name__ == "SwinDropPath":
                    m.drop_prob = m.drop_prob * rate / cfg.drop_path_rate
            cfg.drop_path_rate = rate

    def _depth(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise DepthforgeError(f"DepthFormer: image {w}x{h} is not a multiple of {self.multiple} "
                                  f"(pad it, as the predictor does)")
        x = self.normalize(image)
        feats = self.neck([self.stem(x), *self.backbone(x)])
        y = self.bottleneck(feats[-1])
        for up, skip in zip(self.ups, feats[-2::-1]):
            y = up(y, skip)
        y = self.out(y)
        y = torch.sigmoid(y) * self.max_depth if self.head_kind == "sigmoid" else F.relu(y) + self.min_depth
        return F.interpolate(y, size=image.shape[-2:], mode="bilinear", align_corners=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self._depth(image).clamp(self.min_depth, self.max_depth)

    def forward_train(self, image: torch.Tensor) -> dict[str, Any]:
        return {"depth": self._depth(image)}

    def encoder(self) -> nn.Module:
        return self.backbone

    def spec_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        out = dict(kwargs)
        out["pretrained"] = None
        out["embed_dim"] = self.neck.dim
        out["backbone_config"] = self.backbone.config()
        return out
