"""``fit``: train a recipe with Lightning — atomic best/last checkpoints, exact ``--resume``, refusal to replace an
earlier run, divergence stopped with the last good checkpoint kept, TensorBoard and CSV logs, one or many
processes (``train.devices``, ``train.strategy``, ``train.num_nodes``)."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ..errors import DepthforgeError, error_line
from ..files import atomic_path, ensure_dir
from ..models import count_parameters
from ..models.checkpoint import read_checkpoint
from ..recipe import Recipe, validate
from .loaders import make_splits, training_baselines
from .module import DepthModule, Diverged

log = logging.getLogger(__name__)
CHECKPOINTS = ("best.ckpt", "last.ckpt")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temp file and renamed, so a crash never leaves half a checkpoint."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class Baselines(Callback):
    """Fits the trivial baselines once, on the first process, when a run starts (a resumed run has them)."""

    def on_fit_start(self, trainer, module: DepthModule) -> None:
        if module.baselines is None and trainer.is_global_zero:
            module.baselines = training_baselines(module.splits[1], module.recipe)


def _clean_partial_writes(folder: Path) -> None:
    """Remove temp files of checkpoint writes that a killed run left (``atomic_path``'s ``.NAME.XXXX`` files)."""
    for name in CHECKPOINTS:
        for tmp in folder.glob(f".{name}.*"):
            tmp.unlink(missing_ok=True)


def _resume_path(out: Path, resume: str) -> Path:
    path = out / "checkpoints" / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise DepthforgeError(f"{path}: no checkpoint to resume from")
    return path


def _check_resumable(path: Path, module: DepthModule, recipe: Recipe) -> None:
    """One line, before Lightning sees it, for a checkpoint that is foreign, of another model, or further along."""
    ckpt = read_checkpoint(path)
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        module.model.load_state_dict(state)
    except RuntimeError as e:
        raise DepthforgeError(f"{path}: its weights do not fit this recipe's model {recipe.model.name!r} "
                              f"({error_line(e, None, skip=('Error(s) in loading',))}); "
                              "resume with the recipe it was trained with") from None
    done = int(ckpt.get("epoch", 0))
    if recipe.train.epochs < done:
        raise DepthforgeError(f"{path}: the run already finished {done} epoch(s), more than train.epochs="
                              f"{recipe.train.epochs}; resume with train.epochs >= {done}")


def fit(recipe: Recipe | dict, resume: str | None = None, progress: bool = True, overwrite: bool = False) -> Path:
    """Train per ``recipe`` (a ``Recipe`` or a recipe dict); returns the run folder (checkpoints/best.ckpt,
    checkpoints/last.ckpt, logs, curves).

    ``resume``: "last" or a checkpoint path; without it, a folder that holds a run already is refused unless
    ``overwrite``.
    """
    if not isinstance(recipe, Recipe):
        recipe = validate(recipe)
    out = Path(recipe.out)
    ckdir = out / "checkpoints"
    if resume is None and not overwrite and any((ckdir / n).exists() for n in CHECKPOINTS):
        raise DepthforgeError(f"{out}: holds a trained run already; continue it with --resume, train into another "
                              "folder with out=DIR, or replace it with --overwrite")
    ensure_dir(out)
    if ckdir.is_dir():
        _clean_partial_writes(ckdir)
    L.seed_everything(recipe.seed, workers=True, verbose=False)
    splits = make_splits(recipe)
    module = DepthModule(recipe, splits)
    _, train_ds, val_ds = splits
    log.info("model %s: %s trainable parameters; %d training / %d validation samples at %dx%d",
             recipe.model.name, f"{count_parameters(module.model):,}", len(train_ds),
             len(val_ds) if val_ds else 0, recipe.size[1], recipe.size[0])
    ckpt_path = _resume_path(out, resume) if resume else None
    if ckpt_path is not None:
        _check_resumable(ckpt_path, module, recipe)

    t = recipe.train
    checkpoint = ModelCheckpoint(dirpath=ckdir, filename="best", monitor="val/abs_rel" if val_ds else "train/loss",
                                 mode="min", save_last=True, auto_insert_metric_name=False,
                                 enable_version_counter=False, every_n_train_steps=t.checkpoint_every_n_steps)
    callbacks = [checkpoint, Baselines()]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, t.log_every_n_steps // 2)))
    # One version folder per (re)start, so a resumed run appends to the history instead of replacing it.
    csv_logger = CSVLogger(out, name="logs")
    loggers = [csv_logger, TensorBoardLogger(out, name="logs", version=csv_logger.version)]
    if not log.isEnabledFor(logging.DEBUG):  # Lightning's banners and tips drown the progress bar
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    trainer = L.Trainer(
        max_epochs=t.epochs, max_steps=t.max_steps, max_time=t.max_time and {"minutes": t.max_time},
        accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, num_nodes=t.num_nodes, precision=t.precision, callbacks=callbacks, logger=loggers,
        plugins=[AtomicCheckpointIO()], enable_progress_bar=progress, enable_model_summary=False,
        log_every_n_steps=t.log_every_n_steps, limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches, num_sanity_val_steps=0, deterministic=t.deterministic,
        gradient_clip_val=t.grad_clip, use_distributed_sampler=False, default_root_dir=out,
    )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec|isinstance.*treespec|"
                                                      "exists and is not empty|barebones).*")
            trainer.fit(module, ckpt_path=ckpt_path, weights_only=True)
    except Diverged as e:
        kept = ckdir / "last.ckpt"
        raise DepthforgeError(
            f"training diverged at {e}; try a lower learning rate (train.lr={t.lr / 10:g}) or check the data with "
            f"`depthforge data check`; " + (f"the last good checkpoint is kept: {kept}" if kept.exists()
                                            else "no checkpoint was written")) from None
    if t.epochs > 0 or t.max_steps > 0:
        # the final step, also when checkpoint_every_n_steps does not divide it
        trainer.save_checkpoint(ckdir / "last.ckpt", weights_only=False)
    if trainer.is_global_zero:
        skipped = splits[0].num_skipped
        if skipped:
            log.warning("%d sample(s) could not be loaded and were skipped (listed above)", skipped)
        from ..viz.plots import plot_curves

        plot_curves(sorted((out / "logs").glob("version_*/metrics.csv")), out / "loss_curve.png")
    return out
