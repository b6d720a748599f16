"""Training with Lightning: the seed's recipe (Adam+amsgrad, polynomial decay to 0, flips, 70/30 split),
atomic last/best checkpoints, ``--resume``, TensorBoard and CSV logs, a progress bar and a fixed seed."""
from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader, Subset

from . import checkpoint as ckpt_lib
from .config import apply_overrides, dataset_spec, load_config, split_name
from .data import SkipBad, build_dataset, collate
from .data.io import atomic_path, ensure_dir
from .data.transforms import build_eval_transform, build_train_transform
from .errors import DepthforgeError
from .losses import build_loss
from .evaluation.metrics import compute_metrics, get_protocol, mean_metrics
from .models import build_model, count_parameters

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temp file and renamed, so a crash never leaves half a checkpoint."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class DepthModule(L.LightningModule):
    """A depth model, its loss and optimiser. Losses see depth in units of ``max_depth`` (the seed's [0,1])."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        name, kw = split_name(cfg["model"])
        self.model = build_model(name, **kw)
        lname, lkw = split_name(cfg["loss"])
        self.loss = build_loss(lname, **lkw)
        self.channels_last = bool(cfg["train"].get("channels_last", False))
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.protocol = get_protocol(cfg["eval"]["protocol"], cfg["eval"].get("max_depth"))
        self.baselines: dict[str, Any] | None = None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.model(image).float()

    def _step(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (depth in metres [N,1,H,W], loss)."""
        out = self(batch["image"])
        scale = self.model.max_depth
        pred_n = out / scale if self.model.metric else out
        # SSIM's variances (E[x²] − E[x]²) cancel catastrophically in bf16: the loss always runs in fp32.
        with torch.autocast(device_type=out.device.type, enabled=False):
            loss = self.loss(pred_n.float(), batch["depth"].float() / scale, batch["valid"])
        return (out if self.model.metric else out * scale), loss

    def training_step(self, batch, batch_idx):
        if batch is None:  # every sample of the batch failed to load; SkipBad logged them
            return None
        _, loss = self._step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch, batch_idx):
        if batch is None:
            return
        pred, loss = self._step(batch)
        n = len(batch["image"])
        rows = [compute_metrics(p[0].numpy(), g[0].numpy(), self.protocol, valid=v[0].numpy())
                for p, g, v in zip(pred.detach().cpu(), batch["depth"].cpu(), batch["valid"].cpu())]
        m = mean_metrics(rows)
        self.log("val/loss", loss, prog_bar=True, batch_size=n)
        for key in ("abs_rel", "rmse", "d1"):
            self.log(f"val/{key}", float(m[key]), prog_bar=key == "abs_rel", batch_size=n)

    def configure_optimizers(self):
        t = self.cfg["train"]
        opt = torch.optim.Adam(self.model.parameters(), lr=float(t["lr"]), amsgrad=bool(t.get("amsgrad", True)))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        power = float(t.get("poly_power", 1.0))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / total) ** power)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        name, kw = split_name(self.cfg["model"])
        checkpoint["depthforge"] = {**ckpt_lib.meta(name, kw, self.cfg), "state_prefix": "model."}
        if self.baselines is not None:
            checkpoint["baselines"] = self.baselines

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.baselines = checkpoint.get("baselines")


def make_datasets(cfg: dict) -> tuple[SkipBad, SkipBad | None]:
    """The training split, cut 70/30 (``data.val_fraction``) into train and validation with a fixed seed."""
    size = tuple(cfg["data"]["size"])
    full = build_dataset(dataset_spec(cfg["data"], size), split="train")
    n_val = int(round(len(full) * float(cfg["data"].get("val_fraction", 0.3))))
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(int(cfg.get("seed", 0)))).tolist()
    train = SkipBad(Subset(full, order[n_val:]), build_train_transform(cfg.get("augment") or {}, size))
    val = SkipBad(Subset(full, order[:n_val]), build_eval_transform(size)) if n_val else None
    if len(train.dataset) == 0:
        raise DepthforgeError(f"data: the training split of {cfg['data'].get('name')!r} is empty")
    return train, val


def loader(ds, cfg: dict, shuffle: bool) -> DataLoader:
    t = cfg["train"]
    workers = int(t.get("num_workers", 0))
    return DataLoader(ds, batch_size=int(t["batch_size"]), shuffle=shuffle, num_workers=workers,
                      collate_fn=collate, drop_last=False, persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(int(cfg.get("seed", 0))))


def training_baselines(train: SkipBad, cfg: dict, max_samples: int = 2000) -> dict[str, Any]:
    """The two trivial predictors evaluation reports beside a model, fitted on (up to ``max_samples`` of) the
    training split: one constant depth (the mean valid depth) and the per-pixel mean depth map at the
    training size."""
    size = tuple(cfg["data"]["size"])
    plain = train.with_transform(build_eval_transform(size))
    if len(plain.dataset) > max_samples:  # a fixed spread of samples: the mean settles long before 50k frames
        step = len(plain.dataset) / max_samples
        plain = Subset(plain, [int(i * step) for i in range(max_samples)])
    total = torch.zeros(1, *size, dtype=torch.float64)
    count = torch.zeros(1, *size, dtype=torch.float64)
    for batch in loader(plain, cfg, shuffle=False):
        if batch is None:
            continue
        total += (batch["depth"] * batch["valid"]).sum(0).double()
        count += batch["valid"].sum(0).double()
    if count.sum() == 0:
        raise DepthforgeError("data: the training split has no valid depth pixel")
    constant = float(total.sum() / count.sum())
    mean_map = torch.where(count > 0, total / count.clamp(min=1), torch.tensor(constant, dtype=torch.float64))
    return {"constant": constant, "mean_map": mean_map[0].float()}


def fit(cfg: dict[str, Any], resume: str | None = None, progress: bool = True) -> Path:
    """Train per ``cfg``; returns the run folder (checkpoints/best.ckpt, checkpoints/last.ckpt, logs, curves)."""
    out = ensure_dir(cfg.get("out", "runs/quick"))
    L.seed_everything(int(cfg.get("seed", 0)), workers=True, verbose=False)
    t = cfg["train"]
    size = tuple(cfg["data"]["size"])
    train_ds, val_ds = make_datasets(cfg)
    module = DepthModule(cfg)
    log.info("model %s: %s trainable parameters; %d training / %d validation samples at %dx%d",
             cfg["model"]["name"], f"{count_parameters(module.model):,}", len(train_ds),
             len(val_ds) if val_ds else 0, size[1], size[0])

    ckpt_path = None
    if resume:
        ckpt_path = Path(resume) if resume != "last" else out / "checkpoints" / "last.ckpt"
        if not ckpt_path.is_file():
            raise DepthforgeError(f"{ckpt_path}: no checkpoint to resume from")
        ckpt_lib.read_checkpoint(ckpt_path)  # one-line error for a foreign file, before Lightning sees it
    if ckpt_path is None:  # a resumed run gets them back from its checkpoint
        module.baselines = training_baselines(train_ds, cfg)

    monitor = "val/abs_rel" if val_ds is not None else "train/loss"
    callbacks = [
        ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor=monitor, mode="min",
                        save_last=True, auto_insert_metric_name=False, enable_version_counter=False,
                        every_n_train_steps=t.get("checkpoint_every_n_steps")),
    ]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, int(t.get("log_every_n_steps", 10)) // 2)))
    # One version folder per (re)start, so a resumed run appends to the history instead of replacing it.
    csv_logger = CSVLogger(out, name="logs")
    loggers = [csv_logger, TensorBoardLogger(out, name="logs", version=csv_logger.version)]
    if not log.isEnabledFor(logging.DEBUG):  # Lightning's banners and tips drown the progress bar
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    trainer = L.Trainer(
        max_epochs=int(t["epochs"]), max_steps=int(t.get("max_steps", -1)),
        accelerator=t.get("accelerator", "auto"), devices=t.get("devices", "auto"),
        strategy=t.get("strategy", "auto"), num_nodes=int(t.get("num_nodes", 1)),
        precision=t.get("precision", "32-true"), callbacks=callbacks, logger=loggers,
        plugins=[AtomicCheckpointIO()], enable_progress_bar=progress, enable_model_summary=False,
        log_every_n_steps=int(t.get("log_every_n_steps", 10)),
        limit_train_batches=t.get("limit_train_batches", 1.0), limit_val_batches=t.get("limit_val_batches", 1.0),
        num_sanity_val_steps=0, deterministic=False, default_root_dir=out,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec|isinstance.*treespec|"
                                                  "exists and is not empty).*")
        trainer.fit(module, loader(train_ds, cfg, shuffle=True), loader(val_ds, cfg, False) if val_ds else None,
                    ckpt_path=ckpt_path, weights_only=True)
    skipped = train_ds.num_skipped + (val_ds.num_skipped if val_ds else 0)
    if skipped:
        log.warning("%d sample(s) could not be loaded and were skipped (listed above)", skipped)
    from .viz import plot_curves

    plot_curves(sorted((out / "logs").glob("version_*/metrics.csv")), out / "loss_curve.png")
    best = callbacks[0].best_model_path
    if best and Path(best).name != "best.ckpt":
        log.info("best checkpoint: %s", best)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default="quick", help="recipe name in configs/ or path to a YAML file "
                   "(default: quick)")
    p.add_argument("--resume", nargs="?", const="last", default=None, metavar="CKPT",
                   help="resume an interrupted run (default: OUT/checkpoints/last.ckpt)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override config fields, e.g. train.epochs=3")


def load_run_config(args: argparse.Namespace) -> dict:
    return apply_overrides(load_config(args.config), args.overrides)


def run(args: argparse.Namespace) -> int:
    cfg = load_run_config(args)
    out = fit(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"checkpoints: {out / 'checkpoints'}  (best.ckpt, last.ckpt)\nlogs: {out / 'logs'}  "
          f"curve: {out / 'loss_curve.png'}")
    return 0
