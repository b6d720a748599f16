"""A DINOv3 ViT encoder with Depth Anything's DPT head (``dinov3-dpt``): DINOv3 (Siméoni et al. 2025) evaluates
its frozen encoders for depth with a DPT head; Depth Anything V2's is that head, sized per encoder.

image [N,3,H,W] in [0,1], H, W multiples of 16 -> ImageNet normalisation (the lvd1689m checkpoints') -> DINOv3
ViT (``backbones.py``: four evenly spaced layers, layer-normed patch tokens as maps at stride 16) -> transformers'
``DepthAnythingNeck`` (reassemble at ×4, ×2, ×1, ×½; RefineNet fusion) -> ``DepthAnythingDepthEstimationHead``
-> depth [N,1,H,W]: ``output="metric"`` (sigmoid × max_depth metres, DINOv3's NYU/KITTI protocol) or
``"disparity"`` (ReLU, affine-invariant inverse depth, Depth Anything's relative head).

The neck takes the backbone's maps directly: transformers' neck expects a token sequence with one class token,
and DINOv3's sequence has four register tokens after it. The head and neck start at PyTorch's default init (their
reference code's plain ``nn.Conv2d``); a ReLU head's last bias starts at 1 so that no pixel starts shut.

``pretrained``: a DINOv3 ViT hub id or folder (facebook/dinov3-vits16-pretrain-lvd1689m, gated) for the encoder,
the head starts new; ``size`` names the encoder and head size ("micro" for tests).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import Backbone, build_backbone
from .base import MODELS, Contract, DepthModel

# encoder size -> DPT head (Depth Anything V2's per encoder: neck channels, fusion channels, head channels)
HEADS: dict[str, dict[str, Any]] = {
    "micro": dict(neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8),
    "small": dict(neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32),
    "base": dict(neck_hidden_sizes=[96, 192, 384, 768], fusion_hidden_size=128, head_hidden_size=32),
    "large": dict(neck_hidden_sizes=[256, 512, 1024, 1024], fusion_hidden_size=256, head_hidden_size=32),
}
OUTPUTS = ("metric", "disparity")


@MODELS.register("dinov3-dpt", family="DINOv3 ViT + DPT head (Depth Anything's)",
                 weights="encoder (gated hub): facebook/dinov3-vit{s,b,l}16-pretrain-lvd1689m; head new; "
                         "size micro: random",
                 catalog={"size": "small"}, test={"size": "micro"})
class DINOv3DPT(DepthModel):
    """Image [N,3,H,W] in [0,1], H, W multiples of 16 -> depth [N,1,H,W]: metres (metric, in (0, max_depth)) or
    disparity. ``backbone_config`` + ``head`` rebuild the architecture offline (``spec_kwargs``)."""

    def __init__(self, size: str = "small", pretrained: bool | str | None = None, output: str = "metric",
                 max_depth: float = 10.0, backbone_config: dict[str, Any] | None = None,
                 head: dict[str, Any] | None = None, partial_weights: bool = False):
        super().__init__()
        from transformers import DepthAnythingConfig
        from transformers.models.depth_anything.modeling_depth_anything import (
            DepthAnythingDepthEstimationHead, DepthAnythingNeck)

        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        if not max_depth > 0:
            raise ValueError(f"max_depth must be > 0 metres, not {max_depth!r}")
        if head is None and str(size) not in HEADS:
            raise ValueError(f"size must be one of {', '.join(HEADS)}, not {size!r}")
        self.backbone: Backbone = build_backbone("dinov3_vit", str(size), pretrained, backbone_config,
                                                 partial_weights)
        self.head_sizes = dict(head if head is not None else HEADS[str(size)])
        cfg = DepthAnythingConfig(reassemble_hidden_size=self.backbone.channels[-1],
                                  patch_size=self.backbone.multiple, reassemble_factors=[4, 2, 1, 0.5],
                                  depth_estimation_type="metric" if output == "metric" else "relative",
                                  **self.head_sizes)
        self.neck, self.head = DepthAnythingNeck(cfg), DepthAnythingDepthEstimationHead(cfg)
        # the head scales its sigmoid by max_depth; transformers' config takes whole metres only
        self.head.max_depth = float(max_depth) if output == "metric" else 1.0
        if output == "disparity":
            nn.init.constant_(self.head.conv3.bias, 1.0)
        self.set_contract(Contract(output, float(max_depth), multiple=self.backbone.multiple))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(self.normalize(image))
        neck = self.neck
        maps = [layer(f) for layer, f in zip(neck.reassemble_stage.layers, feats)]
        fused = neck.fusion_stage([conv(m) for conv, m in zip(neck.convs, maps)])
        # transformers' head upsamples to int(patches × patch size), which tracing freezes: sized from the tensor
        head = self.head
        y = F.interpolate(head.conv1(fused[head.head_in_index]), size=image.shape[-2:], mode="bilinear",
                          align_corners=True)
        return head.activation2(head.conv3(head.activation1(head.conv2(y)))) * head.max_depth

    def encoder(self) -> nn.Module:
        return self.backbone

    def spec_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"pretrained": None, "output": self.output, "max_depth": self.max_depth,
                "backbone_config": self.backbone.config(), "head": self.head_sizes}
