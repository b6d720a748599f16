"""Recipes: YAML files in configs/, validated against one typed schema (pydantic) that knows every key the code
reads, with its default. Every field can be overridden from the command line as ``key.sub=value`` (values parsed
as YAML); a misspelt key fails with one line naming the close ones.

Sections: ``model``, ``loss``, ``data`` and ``test_data`` name a registered factory (``name:``) and pass their
other keys to it, checked against the factory's signature; ``augment``, ``train`` and ``eval`` are closed.
"""
from __future__ import annotations

import copy
import difflib
import inspect
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .errors import DepthforgeError

CONFIG_DIR = Path(__file__).parent / "configs"
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Named(BaseModel):
    """A section that names a registered factory; its other keys are the factory's keyword arguments."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelSection(Named):
    freeze_encoder: bool = Field(False, description="keep the (pretrained) encoder as loaded: no gradient, its "
                                                    "normalisation statistics fixed")
    freeze_bn: bool = Field(False, description="every BatchNorm keeps its statistics and affine weights as loaded")


class DataSection(Named):
    size: Optional[tuple[int, int]] = Field(None, description="(H, W) the model trains and predicts at")
    val_fraction: float = Field(0.3, ge=0.0, lt=1.0, description="share of the training split held out")

    @model_validator(mode="after")
    def _size(self):
        if self.size is not None and min(self.size) < 1:
            raise ValueError(f"size must be [H, W] of positive integers, got {list(self.size)}")
        return self

    def spec(self, size: tuple[int, int] | None = None) -> dict[str, Any]:
        """What ``build_dataset`` takes: name, the dataset's options, and the size synthetic scenes render at."""
        return {"name": self.name, **self.kwargs, "size": tuple(self.size or size or (240, 320))}


class Augment(_Closed):
    hflip: Union[bool, float] = Field(0.0, description="probability of a left-right flip (true = 0.5)")
    crop: Union[bool, tuple[int, int]] = Field(False, description="random crop: true = at `size`, or [H, W]")
    rotate: float = Field(0.0, ge=0.0, le=180.0, description="max degrees of a random rotation")
    jitter: Union[bool, dict[str, Any]] = Field(False, description="colour jitter (true = the toolbox's)")


class Train(_Closed):
    epochs: int = Field(10, ge=0)
    max_steps: int = Field(-1, ge=-1, description="stop after this many optimiser steps (-1: epochs decide)")
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
    num_workers: int = Field(0, ge=0)
    limit_train_batches: Union[int, float] = Field(1.0, gt=0)
    limit_val_batches: Union[int, float] = Field(1.0, ge=0)
    log_every_n_steps: int = Field(10, ge=1)
    checkpoint_every_n_steps: Optional[int] = Field(None, ge=1)
    accelerator: str = "auto"
    devices: Union[int, str, list[int]] = "auto"
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    deterministic: bool = Field(False, description="bit-exact runs: an interrupted and resumed run ends "
                                                   "with the same weights as an uninterrupted one")


def _one_of(what: str, value: str, known) -> str:
    """``value`` if it is one of ``known``, else an "unknown_name" error whose message ``_error_line`` prints."""
    if value not in known:
        message = _unknown(value, list(known), f" (known: {', '.join(known)})", what)
        raise PydanticCustomError("unknown_name", "{message}", {"message": message})
    return value


def _protocol(name: str) -> str:
    from .data import protocols  # the datasets' registry, read when a recipe is validated: a new one counts

    return _one_of("protocol", name, protocols())


def _align(mode: str) -> str:
    from .models.base import ALIGN_MODES

    return _one_of("alignment", mode, ALIGN_MODES)


class Eval(_Closed):
    protocol: Annotated[str, AfterValidator(_protocol)] = "none"
    resize: Literal["train", "pad"] = Field("train", description="predict at the training size (train) or the "
                                        "full frame padded (pad: models trained on crops)")
    max_depth: Optional[float] = Field(None, gt=0.0)
    align: Optional[Annotated[str, AfterValidator(_align)]] = None
    flip: bool = False


class Recipe(_Closed):
    name: str = "recipe"
    seed: int = 0
    out: str = "runs/quick"
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


def _factories(section: str):
    if section == "model":
        from .models import MODELS
        return MODELS
    if section == "loss":
        from .losses import LOSSES
        return LOSSES
    from .data import DATASETS
    return DATASETS


def _check_named(section: str, value: Named) -> None:
    """Unknown keys of a named section, against its factory's signature (factories taking **kwargs pass)."""
    registry = _factories(section)
    factory = registry.get_factory(value.name)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    known = [k for k in params if k not in ("self", "split", "size")]
    for key in value.kwargs:
        if key not in params:
            raise DepthforgeError(_unknown(f"{section}.{key}", [f"{section}.{k}" for k in known],
                                           f" ({registry.kind} {value.name!r} takes: {', '.join(known)})"))


def _unknown(key: str, known: list[str], extra: str = "", what: str = "key") -> str:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown {what} {key!r}{hint}{extra}"


def _known_keys() -> list[str]:
    keys = []
    for name, field in Recipe.model_fields.items():
        ann = field.annotation
        sub = getattr(ann, "model_fields", None)
        if sub is None and field.default_factory is not None:
            sub = getattr(field.default_factory, "model_fields", None)
        keys.append(name)
        if isinstance(sub, dict) and ann is not Named:
            keys += [f"{name}.{k}" for k in sub]
    return keys


def _error_line(where: str, e: ValidationError) -> str:
    err = e.errors()[0]
    # pydantic names union members and validators in the location ("hflip.bool"): keep the keys only
    types = {"bool", "int", "float", "str", "dict"}
    loc = ".".join(str(p) for p in err["loc"]
                   if not (str(p) in types or "[" in str(p) or str(p).startswith("function-")))
    if err["type"] == "missing":
        return f"{where}: missing {'section' if '.' not in loc else 'key'} {loc!r}"
    if err["type"] == "extra_forbidden":
        return f"{where}: {_unknown(loc, _known_keys())}"
    if err["type"] == "unknown_name":  # ``_one_of``'s line, with its did-you-mean
        return f"{where}: {loc}: {err['msg']}"
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{where}: {loc}: {err['msg'][0].lower() + err['msg'][1:]}{shown}"


def validate(cfg: dict[str, Any], where: str = "recipe") -> Recipe:
    """A recipe dict -> ``Recipe``; one-line DepthforgeError naming the key and the problem."""
    if not isinstance(cfg, dict):
        raise DepthforgeError(f"{where}: a recipe must be a YAML mapping")
    try:
        recipe = Recipe.model_validate(cfg)
    except ValidationError as e:
        raise DepthforgeError(_error_line(where, e)) from None
    for section in ("model", "loss", "data", "test_data"):
        value = getattr(recipe, section)
        if value is not None:
            try:
                _check_named(section, value)
            except DepthforgeError as e:
                raise DepthforgeError(f"{where}: {e}") from None
    return recipe


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path) -> dict[str, Any]:
    """A recipe by name (``quick``, ``seed-nyu``) or path to a YAML file -> dict (not yet validated)."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise DepthforgeError(f"{name_or_path}: recipe not found (known: {', '.join(config_names())})")
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DepthforgeError(f"{path}: not a readable YAML recipe ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise DepthforgeError(f"{path}: a recipe must be a YAML mapping")
    cfg.setdefault("name", path.stem)
    return cfg


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``cfg`` with ``key.sub=value`` overrides applied (values parsed as YAML). Keys are checked
    against the schema when the result is validated."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or "" in key.split("."):
            raise DepthforgeError(f"override {item!r}: expected key.sub=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        if parts[0] not in Recipe.model_fields:
            raise DepthforgeError(f"override {item!r}: {_unknown(parts[0], list(Recipe.model_fields))}")
        node = cfg
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise DepthforgeError(f"override {item!r}: {'.'.join(parts[:depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return cfg


def resolve(config: str | Path | dict[str, Any] = "quick", overrides: list[str] | None = None) -> Recipe:
    """Recipe name, path or dict + overrides -> a validated ``Recipe``."""
    cfg = load_config(config) if not isinstance(config, dict) else config
    where = f"recipe {cfg.get('name', config)!s}" if isinstance(cfg, dict) else "recipe"
    return validate(apply_overrides(cfg, overrides or []), where)
