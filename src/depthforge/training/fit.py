"""``fit``: train a recipe with Lightning — atomic best/last checkpoints, exact ``--resume``, refusal to replace an
earlier run, one writer per run folder, SIGINT/SIGTERM saved and reported, divergence stopped with the last good
checkpoint kept, TensorBoard and CSV logs, one or many processes (``train.devices``, ``train.strategy``,
``train.num_nodes``)."""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Iterator

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from ..allocator import fast_bf16
from ..errors import DepthforgeError, error_line
from ..files import atomic_path, ensure_dir
from ..models import count_parameters
from ..models.checkpoint import read_checkpoint
from ..recipe import Recipe, validate
from .loaders import make_splits, training_baselines
from .module import DepthModule, Diverged

log = logging.getLogger(__name__)
CHECKPOINTS = ("best.ckpt", "last.ckpt")
LOCK = ".depthforge-train.lock"
# what a run writes into its folder, and so what --overwrite may remove (nothing else there is ours)
RUN_FILES = ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "checkpoints/.best.ckpt.*",
             "checkpoints/.last.ckpt.*", "logs/version_*/metrics.csv", "logs/version_*/hparams.yaml",
             "logs/version_*/events.out.tfevents.*", "loss_curve.png", ".loss_curve.png.*")


class Interrupted(DepthforgeError):
    """SIGINT or SIGTERM stopped the run; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


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


class StopOnSignal(Callback):
    """SIGINT (Ctrl-C) and SIGTERM stop training at the end of the current step, where a checkpoint resumes
    exactly: the last checkpoint is written there and ``Interrupted`` raised. Outside the training loop, or at a
    second signal, ``Interrupted`` is raised at once. (Lightning's own handling exits with status 0 on SIGTERM and
    1 on Ctrl-C, without a word.)"""

    def __init__(self, last: Path):
        self.last, self.signum, self.training = last, 0, False
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; a caller running fit in a thread keeps its own
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous.setdefault(sig, signal.getsignal(sig))
            signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        first = not self.signum
        self.signum = self.signum or signum
        if not (first and self.training):
            raise Interrupted(signal.Signals(signum).name, signum)

    def on_train_start(self, trainer, module) -> None:
        self.install()  # again: Lightning's SIGTERM handler, registered as fit starts, would end the run with 0
        self.training = True

    def on_train_end(self, trainer, module) -> None:
        self.training = False

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        stop = bool(self.signum)
        if trainer.world_size > 1:  # Ctrl-C reaches every process, `kill` only the first: stop together
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            self.training = False
            trainer.save_checkpoint(self.last, weights_only=False)
            raise Interrupted("saved", self.signum or signal.SIGTERM)


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold ``out``'s lock file for the run: one writer per run folder. flock ends with the process, so a run
    killed with -9 never leaves the folder locked."""
    path = out / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise DepthforgeError(f"{out}: cannot write there ({e.strerror or e})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise DepthforgeError(f"{out}: another training run (pid {holder}) is writing into this folder; "
                                  "wait for it to end, or train into another folder with out=DIR") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _clear_run(out: Path) -> None:
    """--overwrite: remove what an earlier run wrote into ``out`` (``RUN_FILES``), and the folders that leaves
    empty; anything else there stays."""
    for pattern in RUN_FILES:
        for path in out.glob(pattern):
            path.unlink(missing_ok=True)
    for folder in [*out.glob("logs/version_*"), out / "logs", out / "checkpoints"]:
        with contextlib.suppress(OSError):  # not empty: holds files of someone else's
            folder.rmdir()


def _step_of(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:
        return None


def _interrupted(signum: int, last: Path, step: int | None = None) -> Interrupted:
    """The one line an interrupted run ends with: where it stopped, what is saved, how to continue."""
    saved = _step_of(last) if last.exists() else None
    at = f" at step {step}" if step is not None else ""
    kept = f"{last} holds step {saved}" if saved is not None else "no checkpoint was written, nothing to resume"
    how = "; continue with the same command and --resume" if saved is not None else ""
    e = Interrupted(f"training interrupted ({signal.Signals(signum).name}){at}: {kept}{how}", signum)
    e.reported = True
    return e


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


def _load_weights(path: Path, ckpt: dict, module: DepthModule, recipe: Recipe, advice: str) -> None:
    prefix = ckpt["depthforge"].get("state_prefix", "")
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    try:
        module.model.load_state_dict(state)
    except RuntimeError as e:
        raise DepthforgeError(f"{path}: its weights do not fit this recipe's model {recipe.model.name!r} "
                              f"({error_line(e, None, skip=('Error(s) in loading',))}); {advice}") from None


def _check_resumable(path: Path, module: DepthModule, recipe: Recipe) -> None:
    """One line, before Lightning sees it, for a checkpoint that is foreign, of another model, further along, or
    holds weights only."""
    ckpt = read_checkpoint(path)
    if "pytorch-lightning_version" not in ckpt or "loops" not in ckpt:
        raise DepthforgeError(f"{path}: holds weights only (no optimiser or loop state), so no run resumes from "
                              f"it; fine-tune from it instead: train.init_from={path} without --resume")
    _load_weights(path, ckpt, module, recipe, "resume with the recipe it was trained with")
    done = int(ckpt.get("epoch", 0))
    if recipe.train.epochs < done:
        raise DepthforgeError(f"{path}: the run already finished {done} epoch(s), more than train.epochs="
                              f"{recipe.train.epochs}; resume with train.epochs >= {done}")


def _precision(t) -> str:
    """The recipe's precision, except bf16 on a CPU where it is slower than fp32 (no AMX): fp32 there, said once
    in the log."""
    on_cpu = t.accelerator == "cpu" or (t.accelerator == "auto" and not torch.cuda.is_available())
    if t.precision.startswith("bf16") and on_cpu and not fast_bf16():
        log.warning("train.precision=%s: bf16 is slower than fp32 on this CPU (no AMX: ~1.4x slower with "
                    "AVX512-BF16 alone, ~12x on AVX2); training in 32-true", t.precision)
        return "32-true"
    return t.precision


def _trainer(recipe: Recipe, **kwargs) -> L.Trainer:
    """L.Trainer with the recipe's hardware keys; what Lightning refuses (no such device, strategy ...) in one
    line naming them."""
    t = recipe.train
    try:
        return L.Trainer(accelerator=t.accelerator, devices=t.devices, strategy=t.strategy, num_nodes=t.num_nodes,
                         **kwargs)
    except (MisconfigurationException, ValueError, RuntimeError, TypeError, ImportError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DepthforgeError(f"train.accelerator={t.accelerator}, train.devices={t.devices}, train.strategy="
                              f"{t.strategy}: not usable here ({reason})") from None


def fit(recipe: Recipe | dict, resume: str | None = None, progress: bool = True, overwrite: bool = False) -> Path:
    """Train per ``recipe`` (a ``Recipe`` or a recipe dict); returns the run folder (checkpoints/best.ckpt,
    checkpoints/last.ckpt, logs, curves).

    ``resume``: "last" or a checkpoint path; without it, a folder that holds a run already is refused unless
    ``overwrite``.
    """
    if not isinstance(recipe, Recipe):
        recipe = validate(recipe)
    out = ensure_dir(recipe.out)
    # DDP's other processes re-run this command (LOCAL_RANK > 0): the first one holds the folder for them all
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        return _fit(recipe, out, resume, progress)
    with run_lock(out):
        if resume is None and any((out / "checkpoints" / n).exists() for n in CHECKPOINTS):
            if not overwrite:
                raise DepthforgeError(f"{out}: holds a trained run already; continue it with --resume, train into "
                                      "another folder with out=DIR, or replace it with --overwrite")
        if overwrite and resume is None:
            _clear_run(out)
        return _fit(recipe, out, resume, progress)


def epoch_batches(samples: int, batch_size: int, limit: int | float | None = None) -> int:
    """Training batches in one epoch of ``samples`` (the last one partial), under ``train.limit_train_batches``
    (a count, or a share of the epoch)."""
    batches = -(-samples // batch_size)
    if isinstance(limit, int):
        return min(batches, limit)
    return max(1, int(batches * limit)) if isinstance(limit, float) else batches


def _fit(recipe: Recipe, out: Path, resume: str | None, progress: bool) -> Path:
    ckdir = out / "checkpoints"
    last = ckdir / "last.ckpt"
    if ckdir.is_dir():
        _clean_partial_writes(ckdir)
    stopper = StopOnSignal(last)
    stopper.install()
    try:
        return _train(recipe, out, resume, progress, stopper)
    except Interrupted as e:  # before the first step or after the last one
        if getattr(e, "reported", False):
            raise
        raise _interrupted(e.exit_code - 128, last) from None
    finally:
        stopper.restore()


def _train(recipe: Recipe, out: Path, resume: str | None, progress: bool, stopper: StopOnSignal) -> Path:
    ckdir = out / "checkpoints"
    L.seed_everything(recipe.seed, workers=True, verbose=False)
    splits = make_splits(recipe)
    module = DepthModule(recipe, splits)
    _, train_ds, val_ds = splits
    log.info("model %s: %s trainable parameters; %d training / %d validation samples at %dx%d",
             recipe.model.name, f"{count_parameters(module.model):,}", len(train_ds),
             len(val_ds) if val_ds else 0, recipe.size[1], recipe.size[0])
    ckpt_path = _resume_path(out, resume) if resume else None
    t = recipe.train
    if ckpt_path is not None:
        _check_resumable(ckpt_path, module, recipe)
    elif t.init_from:
        init = Path(t.init_from)
        _load_weights(init, read_checkpoint(init), module, recipe, "fine-tune with the model it was trained with")

    best = ModelCheckpoint(dirpath=ckdir, filename="best", monitor="val/abs_rel" if val_ds else "train/loss",
                           mode="min", auto_insert_metric_name=False, enable_version_counter=False)
    # last.ckpt on its own schedule: a ModelCheckpoint that monitors a validation metric defers its step saves
    # until the first validation, so a run stopped in its first epoch would have nothing to resume from
    last = ModelCheckpoint(dirpath=ckdir, filename="last", monitor=None, save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False,
                           every_n_train_steps=t.checkpoint_every_n_steps)
    callbacks = [stopper, best, last, Baselines()]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, t.log_every_n_steps // 2)))
    # One version folder per (re)start, so a resumed run appends to the history instead of replacing it.
    csv_logger = CSVLogger(out, name="logs")
    loggers = [csv_logger, TensorBoardLogger(out, name="logs", version=csv_logger.version)]
    if not log.isEnabledFor(logging.DEBUG):  # Lightning's banners and tips drown the progress bar
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    batches = epoch_batches(len(train_ds), t.batch_size, t.limit_train_batches)
    extra = {}
    if val_ds and 0 < t.max_steps < batches and ckpt_path is None:
        # the budget ends inside the first epoch: validate at its last step, or best.ckpt would never be written
        # (and Lightning would warn that its monitored metric is missing)
        extra["val_check_interval"] = t.max_steps
    trainer = _trainer(
        recipe, max_epochs=t.epochs, max_steps=t.max_steps, max_time=t.max_time and {"minutes": t.max_time},
        precision=_precision(t), callbacks=callbacks, logger=loggers,
        plugins=[AtomicCheckpointIO()], enable_progress_bar=progress, enable_model_summary=False,
        # a logging interval longer than an epoch makes Lightning warn, though every interval is still logged
        log_every_n_steps=max(1, min(t.log_every_n_steps, batches)), limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches, num_sanity_val_steps=0, deterministic=t.deterministic,
        gradient_clip_val=t.grad_clip, use_distributed_sampler=False, default_root_dir=out, **extra,
    )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec|isinstance.*treespec|"
                                                      "exists and is not empty|barebones|Checkpoint directory).*")
            trainer.fit(module, ckpt_path=ckpt_path, weights_only=True)
    except Diverged as e:
        kept = ckdir / "last.ckpt"
        raise DepthforgeError(
            f"training diverged at {e}; try a lower learning rate (train.lr={t.lr / 10:g}) or check the data with "
            f"`depthforge data check`; " + (f"the last good checkpoint is kept: {kept}" if kept.exists()
                                            else "no checkpoint was written")) from None
    except Interrupted as e:
        raise _interrupted(e.exit_code - 128, ckdir / "last.ckpt", trainer.global_step) from None
    except Exception:
        if stopper.signum:  # e.g. a loader worker that the same Ctrl-C ended
            raise _interrupted(stopper.signum, ckdir / "last.ckpt", trainer.global_step) from None
        raise
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
