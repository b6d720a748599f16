"""The recipe's typed schema: each section's keys, defaults and allowed ranges (pydantic models)."""
from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")
MAX_SIDE = 16384  # pixels: a side beyond this is a typo, not an image

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
NonNegative = Annotated[float, Field(ge=0.0)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class Named(BaseModel):
    """A section that names a registered factory; its other keys are the factory's keyword arguments."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str = Field(min_length=1)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelSection(Named):
    freeze_encoder: bool = Field(False, description="keep the (pretrained) encoder as loaded: no gradient, its "
                                                    "normalisation statistics fixed")
    freeze_bn: bool = Field(False, description="every BatchNorm keeps its statistics and affine weights as loaded")


class DataSection(Named):
    size: Optional[tuple[Side, Side]] = Field(None, description="(H, W) the model trains and predicts at")
    val_fraction: float = Field(0.3, ge=0.0, lt=1.0, description="share of the training split held out")

    def spec(self, size: tuple[int, int] | None = None) -> dict[str, Any]:
        """What ``build_dataset`` takes: name, the dataset's options, and the size synthetic scenes render at."""
        return {"name": self.name, **self.kwargs, "size": tuple(self.size or size or (240, 320))}


class Augment(_Closed):
    hflip: Union[bool, Probability] = Field(0.0, description="probability of a left-right flip (true = 0.5)")
    crop: Union[bool, tuple[Side, Side]] = Field(False, description="random crop: true = at `size`, or [H, W]")
    rotate: float = Field(0.0, ge=0.0, le=180.0, description="max degrees of a random rotation")
    jitter: Union[bool, dict[Literal["brightness", "contrast", "saturation", "gamma"],
                             Union[Probability, tuple[NonNegative, NonNegative]]]] = Field(
        False, description="colour jitter (true = the toolbox's): amount a (factor in [1-a, 1+a]) or [low, high]")

    @field_validator("jitter")
    @classmethod
    def _jitter_ranges(cls, jitter):
        for key, value in (jitter if isinstance(jitter, dict) else {}).items():
            if isinstance(value, tuple) and value[0] > value[1]:
                raise ValueError(f"{key}: [low, high] needs low <= high, got {list(value)}")
        return jitter


class Train(_Closed):
    epochs: int = Field(10, ge=0)
    # 0 would "train" no step and still write the untrained weights as the run's result
    max_steps: Union[Literal[-1], Annotated[int, Field(ge=1)]] = Field(
        -1, description="stop after this many optimiser steps (-1: epochs decide)")
    max_time: Optional[float] = Field(None, gt=0.0, description="stop after this many minutes of training; the "
                                      "schedule still spans the epochs, and the last step is saved")
    batch_size: int = Field(16, ge=1, description="per process")
    lr: float = Field(1e-3, gt=0.0)
    optimizer: Literal["adam", "adamw"] = "adam"
    amsgrad: bool = True
    weight_decay: float = Field(0.0, ge=0.0)
    encoder_lr_factor: float = Field(1.0, gt=0.0, description="the encoder's lr = lr × this")
    schedule: Literal["poly", "cosine", "onecycle", "constant"] = "poly"
    poly_power: float = Field(1.0, gt=0.0)
    warmup: float = Field(0.0, ge=0.0, lt=1.0, description="linear warm-up over this share of the steps")
    grad_clip: Optional[float] = Field(None, gt=0.0, description="clip the gradient norm (None: off)")
    precision: Literal[PRECISIONS] = "32-true"  # type: ignore[valid-type]
    channels_last: bool = False
    num_workers: Union[Literal["auto"], Annotated[int, Field(ge=0, le=1024)]] = Field(
        "auto", description="loader processes per training process (auto: from the CPUs this process may use)")
    # Lightning's meaning: an integer counts batches, a number in (0, 1] is a share of them
    limit_train_batches: Union[Annotated[int, Field(ge=1, strict=True)],
                               Annotated[float, Field(gt=0.0, le=1.0)]] = 1.0
    limit_val_batches: Union[Annotated[int, Field(ge=0, strict=True)], Probability] = 1.0
    log_every_n_steps: int = Field(10, ge=1)
    checkpoint_every_n_steps: Optional[int] = Field(None, ge=1)
    accelerator: Literal[ACCELERATORS] = "auto"  # type: ignore[valid-type]
    devices: Union[Literal["auto", -1], Annotated[int, Field(ge=1)],
                   Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]] = Field(
        "auto", description="auto, -1 (all), a count, or a list of device indices")
    strategy: str = Field("auto", min_length=1, description="a Lightning strategy: auto, ddp, fsdp ...")
    num_nodes: int = Field(1, ge=1)
    init_from: Optional[str] = Field(None, min_length=1, description="a depthforge checkpoint whose weights "
                                     "start the run (fine-tuning; the optimiser starts afresh)")
    deterministic: bool = Field(False, description="bit-exact runs: an interrupted and resumed run ends "
                                                   "with the same weights as an uninterrupted one")


def unknown(key: str, known: list[str], extra: str = "", what: str = "key") -> str:
    """"unknown KEY", with the close ones of ``known`` as a did-you-mean, then ``extra``."""
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown {what} {key!r}{hint}{extra}"


def _one_of(what: str, value: str, known) -> str:
    """``value`` if it is one of ``known``, else an "unknown_name" error whose message ``validation_line`` prints."""
    if value not in known:
        message = unknown(value, list(known), f"; allowed: {', '.join(known)}", what)
        raise PydanticCustomError("unknown_name", "{message}", {"message": message})
    return value


def _protocol(name: str) -> str:
    from ..data import protocols  # the datasets' registry, read when a recipe is validated: a new one counts

    return _one_of("protocol", name, protocols())


def _align(mode: str) -> str:
    from ..models.base import ALIGN_MODES

    return _one_of("alignment", mode, ALIGN_MODES)


class Eval(_Closed):
    protocol: Annotated[str, AfterValidator(_protocol)] = "none"
    resize: Literal["train", "pad"] = Field("train", description="predict at the training size (train) or the "
                                        "full frame padded (pad: models trained on crops)")
    max_depth: Optional[float] = Field(None, gt=0.0)
    align: Optional[Annotated[str, AfterValidator(_align)]] = None
    flip: bool = False


class Recipe(_Closed):
    name: str = Field("recipe", min_length=1)
    seed: int = Field(0, ge=0, le=2**32 - 1)  # numpy's and Lightning's seed range
    out: str = Field("runs/quick", min_length=1)
    model: ModelSection
    loss: Named
    data: DataSection
    test_data: Optional[DataSection] = None
    augment: Augment = Field(default_factory=Augment)
    train: Train = Field(default_factory=Train)
    eval: Eval = Field(default_factory=Eval)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) the model trains at: ``data.size``."""
        return tuple(self.data.size or (240, 320))  # type: ignore[return-value]

    def test_spec(self) -> dict[str, Any]:
        return (self.test_data or self.data).spec(self.size)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
