"""The Lightning module: a registered model, the recipe's loss and optimiser, validation metrics reduced over
every process, divergence caught before it reaches the weights, and the depthforge metadata in checkpoints."""
from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
import numpy as np
import torch

from ..errors import DepthforgeError
from ..evaluation.metrics import compute_metrics, default_align, get_protocol, to_metres
from ..losses import build_loss
from ..models import build_model
from ..models.checkpoint import meta
from ..recipe import Recipe
from .loaders import make_loader, step_seed
from .step import step_loss

log = logging.getLogger(__name__)
VAL_KEYS = ("abs_rel", "rmse", "d1")
BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)


class Diverged(DepthforgeError):
    """The loss or a gradient stopped being finite; raised before the optimiser touches the weights."""


class DepthModule(L.LightningModule):
    """Trains ``recipe.model`` with ``recipe.loss`` (in metres, see losses/) plus the model's auxiliary terms."""

    def __init__(self, recipe: Recipe, splits: tuple | None = None):
        super().__init__()
        self.recipe = recipe
        self.model = build_model(recipe.model.name, **recipe.model.kwargs)
        self.model.set_contract(self.model.contract.trained_at(recipe.size))
        self._frozen = self._freeze()
        self.train()  # transformers' from_pretrained returns modules in eval mode; Lightning keeps modes as found
        self.loss = build_loss(recipe.loss.name, **recipe.loss.kwargs)
        self.channels_last = recipe.train.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.protocol = get_protocol(recipe.eval.protocol, recipe.eval.max_depth)
        self.splits = splits  # (source, train, val) from loaders.make_splits; None when only loading weights
        self.baselines: dict[str, Any] | None = None
        self._val: list[torch.Tensor] = []
        self._train_sampler = None

    def _freeze(self) -> list[torch.nn.Module]:
        """What ``model.freeze_encoder`` / ``model.freeze_bn`` hold fixed: their parameters get no gradient, and
        the modules returned stay in eval mode while training (their normalisation statistics are kept)."""
        m, frozen, keys = self.recipe.model, [], []
        if m.freeze_encoder:
            encoder = self.model.encoder()
            if encoder is None:
                raise DepthforgeError(f"model.freeze_encoder: model {m.name!r} has no separate encoder")
            frozen.append(encoder)
            keys.append("model.freeze_encoder")
        if m.freeze_bn:
            norms = [b for b in self.model.modules() if isinstance(b, BATCH_NORMS)]
            if not norms:
                raise DepthforgeError(f"model.freeze_bn: model {m.name!r} has no BatchNorm layer")
            frozen += norms
            keys.append("model.freeze_bn")
        for module in frozen:
            module.requires_grad_(False)
        if frozen:
            held = {id(p): p.numel() for f in frozen for p in f.parameters()}
            log.info("%s: %s parameters held as loaded, their modules in eval mode", " and ".join(keys),
                     f"{sum(held.values()):,}")
        return frozen

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    # data: built here so that each process knows its rank
    def train_dataloader(self):
        loader = make_loader(self.splits[1], self.recipe, True, self.global_rank, self.trainer.world_size)
        self._train_sampler = loader.sampler
        return loader

    def val_dataloader(self):
        val = self.splits[2]
        return make_loader(val, self.recipe, False, self.global_rank, self.trainer.world_size) if val else []

    def forward(self, image: torch.Tensor) -> dict[str, Any]:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.model.forward_train(image)

    def _loss(self, out: dict[str, Any], batch: dict) -> torch.Tensor:
        return step_loss(self.model, self.loss, out, batch)

    def on_train_batch_start(self, batch, batch_idx):
        # dropout and other in-model randomness: a function of the step, so a resumed run redraws it exactly
        torch.manual_seed(step_seed(self.recipe.seed, self.global_step))

    def training_step(self, batch, batch_idx):
        if self._train_sampler is not None:  # this step's samples count as consumed once it runs
            self._train_sampler.consumed += self.recipe.train.batch_size * self.trainer.world_size
        if batch is None:  # every sample of the batch failed to load; SkipBad logged them
            return None
        loss = self._loss(self(batch["image"]), batch)
        if not torch.isfinite(loss):
            raise Diverged(f"step {self.global_step}: the loss is {float(loss)}")
        self._check_finite(self.model.buffers(), "a normalisation statistic")  # BatchNorm updates them in forward
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def _check_finite(self, tensors, what: str) -> None:
        if not all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point()):
            raise Diverged(f"step {self.global_step}: {what} is not finite")

    def on_before_optimizer_step(self, optimizer):
        self._check_finite((p.grad for p in self.model.parameters() if p.grad is not None), "a gradient")

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        # before on_train_batch_end, where checkpoints are written: a non-finite weight never reaches a file
        self._check_finite(self.model.parameters(), "a weight")

    def validation_step(self, batch, batch_idx):
        if batch is None:
            return
        out = self(batch["image"])
        loss = self._loss(out, batch)
        if not torch.isfinite(out["depth"]).all():
            raise Diverged(f"step {self.global_step}: validation depth is not finite")
        pred = out["depth"].detach().float().cpu().numpy()
        gt, valid = batch["depth"].cpu().numpy(), batch["valid"].cpu().numpy()
        for p, g, v in zip(pred, gt, valid):
            mask = self.protocol.mask(g[0], v[0])
            aligned = to_metres(p[0], g[0], mask, self.model.output, default_align(self.model.contract))
            row = compute_metrics(aligned, g[0], self.protocol, valid=mask)
            vals = np.array([row[k] for k in VAL_KEYS], dtype=np.float64)
            # per image: (metric values, whether each counts, the batch's loss, one image)
            self._val.append(torch.tensor([*np.nan_to_num(vals), *np.isfinite(vals), float(loss), 1.0],
                                          dtype=torch.float64))

    def on_validation_epoch_end(self):
        k = len(VAL_KEYS)
        total = torch.stack(self._val).sum(0) if self._val else torch.zeros(2 * k + 2, dtype=torch.float64)
        self._val = []
        # sums over every process, so the figures are those of the whole validation set
        total = self.trainer.strategy.reduce(total.to(self.device), reduce_op="sum").cpu()
        sums, counts = total[:k], total[k:2 * k]
        for key, s, c in zip(VAL_KEYS, sums, counts):
            self.log(f"val/{key}", float(s / c) if c else math.nan, prog_bar=key == "abs_rel", sync_dist=False)
        self.log("val/loss", float(total[-2] / total[-1]) if total[-1] else math.nan, prog_bar=True)
        self.log("val/images", float(total[-1]))

    def configure_optimizers(self):
        t = self.recipe.train
        encoder = self.model.encoder()
        enc_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
        groups: dict[tuple[bool, bool], list] = {}
        for p in self.model.parameters():
            if p.requires_grad:
                # AdamW's decay skips norms and biases (the toolbox's paramwise setting)
                groups.setdefault((id(p) in enc_ids, p.ndim > 1), []).append(p)
        params = [{"params": ps, "lr": t.lr * (t.encoder_lr_factor if enc else 1.0),
                   "weight_decay": t.weight_decay if decay else 0.0} for (enc, decay), ps in groups.items()]
        cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
        opt = cls(params, lr=t.lr, amsgrad=t.amsgrad, weight_decay=t.weight_decay)
        total = self.total_steps()
        if t.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in params], total_steps=total,
                                                        pct_start=t.warmup or 0.3)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total, t))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def total_steps(self) -> int:
        """Optimiser steps of the whole run, from the recipe and the data alone. (Lightning's
        ``estimated_stepping_batches`` would build the loaders before a resumed run restores their position.)"""
        t = self.recipe.train
        per_rank = math.ceil(len(self.splits[1]) / self.trainer.world_size)
        batches = math.ceil(per_rank / t.batch_size)
        limit = t.limit_train_batches
        batches = min(batches, int(limit)) if isinstance(limit, int) else max(1, int(batches * limit))
        total = t.epochs * batches
        return max(1, min(total, t.max_steps) if t.max_steps > 0 else total)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        r = self.recipe
        checkpoint["depthforge"] = {**meta(r.model.name, r.model.kwargs, self.model, r.to_dict()), "state_prefix": "model."}
        if self.baselines is not None:
            checkpoint["baselines"] = self.baselines

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.baselines = checkpoint.get("baselines")


def lr_factor(step: int, total: int, t) -> float:
    """The learning-rate multiplier at ``step`` of ``total``: linear warm-up over ``t.warmup`` of the steps, then
    polynomial decay to 0 (``poly_power``), half a cosine to 0, or constant."""
    warm = int(t.warmup * total)
    if step < warm:
        return (step + 1) / warm
    frac = min(1.0, (step - warm) / max(1, total - warm))
    if t.schedule == "poly":
        return max(0.0, 1.0 - frac) ** t.poly_power
    if t.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * frac))
    return 1.0
