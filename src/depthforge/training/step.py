"""One training step outside Lightning's loop, for callers that time or briefly train a model (``bench``); the
loss is the one ``DepthModule`` trains with (``step_loss``), so a timed step is a real one."""
from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F


def step_loss(model, loss_fn, out: dict[str, Any], batch: dict) -> torch.Tensor:
    """The training loss of ``model``'s ``forward_train`` output ``out`` on ``batch`` (``depth`` metres,
    ``valid``): ``loss_fn`` on the depth, plus each auxiliary output's weighted term and the model's extra loss."""
    target, valid = batch["depth"].float(), batch["valid"]
    # Losses run in fp32: SSIM's variances (E[x²] − E[x]²) cancel catastrophically in bf16.
    with torch.autocast(device_type=target.device.type, enabled=False):
        loss = loss_fn(out["depth"].float(), target, valid)
        for weight, aux in out.get("aux", ()):
            aux = F.interpolate(aux.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
            loss = loss + weight * loss_fn(aux, target, valid)
        extra = model.extra_loss(out, batch)
        if extra is not None:
            loss = loss + extra.float()
    return loss


def optimizer_step(model, loss_fn, optimizer: torch.optim.Optimizer, batch: dict,
                   bf16: bool = False) -> torch.Tensor:
    """Forward (bf16 autocast when ``bf16``), ``step_loss``, backward and one ``optimizer`` step on
    ``batch`` (``image``, ``depth``, ``valid``); returns the loss."""
    with torch.autocast(batch["image"].device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model.forward_train(batch["image"])
    loss = step_loss(model, loss_fn, out, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss
