"""The seed's U-Net: the product team's encoder-decoder CNN, reproduced layer for layer.

At the base width (32) with 4 levels it has 8,634,593 trainable parameters, as the seed's Keras model
(8,638,433 with BatchNorm's 3,840 moving statistics). The seed feeds raw [0,1] pixels: no normalisation inside.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import MODELS, Contract, DepthModel


def _conv(cin: int, cout: int, bn: bool) -> list[nn.Module]:
    # The seed puts BatchNorm after the activation: conv -> LeakyReLU -> BN.
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    return layers


class Down(nn.Module):
    """Two (conv3x3 -> LeakyReLU -> BN); the block's output is the skip, max-pooled for the next level."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convs = nn.Sequential(*_conv(cin, cout, True), *_conv(cout, cout, True))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.convs(x)
        return F.max_pool2d(skip, 2), skip


class Up(nn.Module):
    """Bilinear x2 -> conv3x3 -> LeakyReLU, concat with the skip, then two (conv3x3 -> LeakyReLU -> BN)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Sequential(*_conv(cin, cout, False))
        self.convs = nn.Sequential(*_conv(2 * cout, cout, True), *_conv(cout, cout, True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([self.up(x), skip], dim=1))


@MODELS.register("seed-unet", family="CNN U-Net (the seed's)", weights="none: trained from scratch",
                 test={"width": 0.25, "levels": 3})
class SeedUNet(DepthModel):
    """Image [N,3,H,W] in [0,1] -> depth [N,1,H,W].

    head="metric": sigmoid × max_depth, metres. head="normalized": the seed's sigmoid output in [0,1] (depth /
    max_depth as the seed trained it), declared ``relative`` so evaluation aligns it.
    H and W must be multiples of 2**levels (the predictor pads to that).
    """

    def __init__(self, width: float = 1.0, levels: int = 4, max_depth: float = 10.0, head: str = "metric"):
        super().__init__()
        if head not in ("metric", "normalized"):
            raise ValueError(f"head must be 'metric' or 'normalized', not {head!r}")
        if not width > 0 or int(levels) < 1:
            raise ValueError(f"width must be > 0 and levels >= 1 (got width={width!r}, levels={levels!r})")
        base = max(1, round(32 * width))
        chans = [base * 2**i for i in range(levels)]
        # The seed feeds raw [0,1] pixels (mean 0, std 1 leaves them as they are).
        self.set_contract(Contract("metric" if head == "metric" else "relative", float(max_depth),
                                   multiple=2**levels, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)))
        self.down = nn.ModuleList(Down(cin, cout) for cin, cout in zip([3] + chans[:-1], chans))
        mid = base * 2**levels
        self.bottleneck = nn.Sequential(*_conv(chans[-1], mid, False), *_conv(mid, mid, False))
        self.up = nn.ModuleList(Up(cin, cout) for cin, cout in zip([mid] + chans[::-1][:-1], chans[::-1]))
        self.out = nn.Conv2d(base, 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x, skips = image, []
        for block in self.down:
            x, skip = block(x)
            skips.append(skip)
        x = self.bottleneck(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = block(x, skip)
        y = torch.sigmoid(self.out(x))
        return y * self.max_depth if self.metric else y
