"""What ``depthforge models`` lists: every registered model at its default size (for wrapped Hugging Face models,
the architecture of the default hub checkpoint, from its config, without weights) with its contract, parameter
count and GFLOPs (counted by ``torch.utils.flop_counter`` on one forward pass; a multiply-add is 2 FLOPs)."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .base import MODELS


def gflops(model: torch.nn.Module, size: tuple[int, int]) -> float:
    """GFLOPs of one forward pass at (H, W) rounded up to the model's multiple."""
    m = model.multiple
    h, w = (-(-s // m) * m for s in size)
    counter = FlopCounterMode(display=False)
    with counter:  # the counter tracks modules through autograd: no inference_mode here
        model(torch.rand(1, 3, h, w))
    return counter.get_total_flops() / 1e9


def catalog(size: tuple[int, int] = (240, 320), names: list[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for name in names or sorted(MODELS):
        # the listed architecture, with random weights: nothing is downloaded
        model = MODELS.build(name, **MODELS.info[name].get("catalog", {})).eval()
        c = model.contract
        rows.append({"name": name, "family": MODELS.info[name].get("family", ""),
                     "parameters": sum(p.numel() for p in model.parameters()),
                     "gflops": gflops(model, size), "output": c.output, "max_depth": c.max_depth,
                     "multiple": c.multiple, "camera": c.camera, "prompt": c.prompt,
                     "weights": MODELS.info[name].get("weights", "")})
    return rows
