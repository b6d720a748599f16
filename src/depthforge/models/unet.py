"""A U-Net over a pretrained encoder, as segmentation_models_pytorch (smp) builds ``smp.Unet``.

Follows smp's ``decoders/unet/decoder.py``: decoder channels (256, 128, 64, 32, 16), five blocks from the 1/32
feature up to full resolution, each = nearest ×2 upsampling, concat the encoder feature of that size, two
(conv3×3 without bias → BatchNorm → ReLU); then smp's segmentation head (conv3×3 → 1 channel). The encoder is a
``transformers`` backbone (``models/backbones.py``: ResNet-34 by default, ConvNeXt, or DINOv3's ConvNeXt).

Deviations from smp:
- smp's ResNet encoder also gives its stride-2 feature (after conv1); the ``transformers`` backbones give only the
  four levels at strides 4..32. The stride-2 block therefore has no skip, as smp builds it for its encoders
  without a stride-2 feature (mix-transformer, timm universal: a 0-channel dummy feature); the last block
  (full resolution) has no skip in smp either.
- Depth head: sigmoid × ``max_depth`` (metres) instead of smp's raw logits.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import DepthforgeError
from .backbones import Backbone, build_backbone
from .base import MODELS, Contract, DepthModel
from .layers import conv_bn

DECODER_CHANNELS = (256, 128, 64, 32, 16)


class DecoderBlock(nn.Module):
    """x [N,cin,h,w] (+ skip [N,cskip,2h,2w]) -> [N,cout,2h,2w]: nearest ×2, concat, two conv-BN-ReLU."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.convs = nn.Sequential(conv_bn(cin + cskip, cout), conv_bn(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class UNet(DepthModel):
    """Image [N,3,H,W] in [0,1] (H, W multiples of 32) -> metric depth [N,1,H,W] in (0, max_depth) metres.

    ``size``: the backbone size (``backbones.SIZES``; "micro" for tests). ``pretrained``: None (random), True
    (the size's hub weights), a hub id or a local folder. ``backbone_config``: the backbone's config dict, which
    rebuilds the architecture offline (what ``spec_kwargs`` stores in checkpoints). ``partial_weights``: accept
    pretrained weights that lack some of the encoder's tensors (they start random).
    """

    family = "resnet"
    default_size = "34"

    def __init__(self, size: str | None = None, pretrained: bool | str | None = None, max_depth: float = 10.0,
                 backbone_config: dict[str, Any] | None = None,
                 decoder_channels: tuple[int, ...] | list[int] = DECODER_CHANNELS, partial_weights: bool = False):
        super().__init__()
        if not max_depth > 0:
            raise ValueError(f"max_depth must be > 0 metres, not {max_depth!r}")
        decoder_channels = tuple(int(c) for c in decoder_channels)
        if len(decoder_channels) != 5 or min(decoder_channels) < 1:
            raise ValueError(f"decoder_channels must be 5 positive numbers, not {decoder_channels!r}")
        self.backbone: Backbone = build_backbone(self.family, size or self.default_size, pretrained,
                                                 backbone_config, partial_weights)
        self.set_contract(Contract("metric", float(max_depth), multiple=self.backbone.multiple))
        # Blocks from 1/32 up: skips at 1/16, 1/8, 1/4 from the backbone; none at 1/2 and 1/1.
        skips = list(self.backbone.channels[-2::-1]) + [0, 0]
        cins = [self.backbone.channels[-1], *decoder_channels[:-1]]
        self.blocks = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(cins, skips, decoder_channels))
        self.head = nn.Conv2d(decoder_channels[-1], 1, 3, padding=1)
        self._init_decoder()

    def _init_decoder(self) -> None:
        # smp's initialize_decoder / initialize_head.
        for m in self.blocks.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise DepthforgeError(f"{type(self).__name__}: image {w}x{h} is not a multiple of {self.multiple} "
                                  f"(pad it, as the predictor does)")
        feats = self.backbone(self.normalize(image))
        x, skips = feats[-1], feats[-2::-1]
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        return torch.sigmoid(self.head(x)) * self.max_depth

    def encoder(self) -> nn.Module:
        return self.backbone

    def spec_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        out = dict(kwargs)
        out.pop("size", None)
        out["pretrained"] = None
        out["backbone_config"] = self.backbone.config()
        return out


@MODELS.register("resnet-unet", family="CNN U-Net (smp)", weights="ImageNet ResNet encoder (microsoft/resnet-34)",
                 test={"size": "micro"})
class ResNetUNet(UNet):
    family, default_size = "resnet", "34"


@MODELS.register("convnext-unet", family="CNN U-Net (smp)",
                 weights="ImageNet ConvNeXt encoder (facebook/convnext-tiny-224)", test={"size": "micro"})
class ConvNeXtUNet(UNet):
    family, default_size = "convnext", "tiny"


@MODELS.register("dinov3-unet", family="CNN U-Net (smp)",
                 weights="DINOv3 ConvNeXt encoder (gated hub: facebook/dinov3-convnext-tiny-pretrain-lvd1689m)",
                 test={"size": "micro"})
class DINOv3UNet(UNet):
    family, default_size = "dinov3_convnext", "tiny"
