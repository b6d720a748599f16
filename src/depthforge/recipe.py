"""Recipes: YAML files in configs/, validated against one typed schema (pydantic) that knows every key the code
reads, with its default. Every field can be overridden from the command line as ``key.sub=value`` (values parsed
as YAML); a misspelt key fails with one line naming the close ones.

Sections: ``model``, ``loss``, ``data`` and ``test_data`` name a registered factory (``name:``) and pass their
other keys to it, checked against the factory's signature; ``augment``, ``train`` and ``eval`` are closed. Every
value has its allowed range in the schema (finite numbers, probabilities in [0, 1], sizes >= 1 ...); a value
outside it is refused in one line naming the key and the range.

A named section is replaced whole from the command line with ``SECTION=NAME`` (the factory's defaults) or
``SECTION={name: NAME, key: value}``; the section's own keys (``data.size``, ``data.val_fraction``) carry over.
"""
from __future__ import annotations

import copy
import difflib
import inspect
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from .errors import DepthforgeError, error_line

CONFIG_DIR = Path(__file__).parent / "configs"
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")
MAX_SIDE = 16384  # pixels: a side beyond this is a typo, not an image
MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_VALUES = 100_000  # values once YAML aliases are expanded; a real recipe has a few hundred

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


def _one_of(what: str, value: str, known) -> str:
    """``value`` if it is one of ``known``, else an "unknown_name" error whose message ``_error_line`` prints."""
    if value not in known:
        message = _unknown(value, list(known), f"; allowed: {', '.join(known)}", what)
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
                                           f" ({registry.kind} {value.name!r} takes: {', '.join(known)}; "
                                           f"{section}={value.name} replaces the whole section)"))
    _check_types(section, value, factory)


def _check_types(section: str, value: Named, factory) -> None:
    """Each keyword argument against the factory's annotation, so ``model.width=abc`` is one line here rather
    than a TypeError deep inside the model."""
    try:
        params = inspect.signature(factory, eval_str=True).parameters
    except Exception:  # an annotation that names what only type checkers import: nothing to check against
        return
    for key, given in value.kwargs.items():
        param = params[key]
        if param.annotation is param.empty or (given is None and param.default is None):
            continue
        try:
            adapter = TypeAdapter(param.annotation)
        except Exception:  # not a type pydantic knows (a torch module, a callable ...)
            continue
        try:
            adapter.validate_python(given)
        except ValidationError as e:
            msg = e.errors()[0]["msg"]
            raise DepthforgeError(f"{section}.{key}: {msg[0].lower() + msg[1:]} (got {_short(given)}); allowed: "
                                  f"{_describe(param.annotation)}") from None


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


def _bounds(meta: list) -> str:
    lo = next(((">=", "[", m.ge) for m in meta if getattr(m, "ge", None) is not None), None) or \
        next(((">", "(", m.gt) for m in meta if getattr(m, "gt", None) is not None), None)
    hi = next((("<=", "]", m.le) for m in meta if getattr(m, "le", None) is not None), None) or \
        next((("<", ")", m.lt) for m in meta if getattr(m, "lt", None) is not None), None)
    if lo and hi:
        return f" in {lo[1]}{_num(lo[2])}, {_num(hi[2])}{hi[1]}"
    return f" {lo[0]} {_num(lo[2])}" if lo else f" {hi[0]} {_num(hi[2])}" if hi else ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _plural(text: str) -> str:
    return text.replace("an integer", "integers").replace("a finite number", "finite numbers")


def _describe(ann: Any, meta: list | None = None) -> str:
    """A field's type and range in words: "a finite number in [0, 1]", "true/false or [H, W] ..."."""
    meta = list(meta or [])
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is Annotated:
        extra = [m for a in args[1:] for m in (getattr(a, "metadata", None) or [a])]
        return _describe(args[0], meta + extra)
    if origin is Union:
        return " or ".join("null" if a is type(None) else _describe(a, meta) for a in args)
    if origin is Literal:
        return str(args[0]) if len(args) == 1 else "one of " + ", ".join(str(a) for a in args)
    if origin is tuple:
        parts = [_describe(a) for a in args]
        if len(parts) == 2 and parts[0] == parts[1]:
            return f"a pair of {_plural(parts[0])}"
        return "[" + ", ".join(parts) + "]"
    if origin is list:
        return "a non-empty list of " + _plural(_describe(args[0]))
    if origin is dict:
        return "a mapping of " + _describe(args[0]) + " to " + _describe(args[1])
    if ann is bool:
        return "true/false"
    if ann is int:
        return "an integer" + _bounds(meta)
    if ann is float:
        return "a finite number" + _bounds(meta)
    if ann is str:
        return "non-empty text" if any(getattr(m, "min_length", 0) for m in meta) else "text"
    return "a section" if isinstance(ann, type) and issubclass(ann, BaseModel) else str(ann)


def _field(keys: list[str]):
    """The pydantic field at ``keys`` (["train", "lr"]), or None."""
    model, field = Recipe, None
    for key in keys:
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict) or key not in fields:
            return None
        field = fields[key]
        model = next((a for a in (field.annotation, *typing.get_args(field.annotation))
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return field


# constraint errors say more than a union's "input should be a valid boolean"
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number",
                 "too_short", "too_long", "string_too_short", "value_error", "literal_error"}


def _error_line(where: str, e: ValidationError) -> str:
    # pydantic names union members and validators in the location ("hflip.bool"): keep the keys only
    types = {"bool", "int", "float", "str", "dict", "list", "tuple", "literal"}

    def keys(err) -> list[str]:
        return [str(p) for p in err["loc"] if not (str(p).split("[")[0] in types or "[" in str(p)
                                                     or str(p).startswith(("function-", "constrained-")))]

    errors = e.errors()
    first = keys(errors[0])
    same = [err for err in errors if keys(err)[:len(first)] == first or first[:len(keys(err))] == keys(err)]
    err = next((x for x in same if x["type"] in _RANGE_ERRORS), errors[0])
    loc = ".".join(keys(err))
    if err["type"] == "missing" and any(isinstance(p, int) for p in err["loc"]):  # a short list: a bad value
        err = {**err, "type": "too_short", "msg": "Too few values", "input": _input(e, keys(err))}
    if err["type"] == "missing":
        return f"{where}: missing {'section' if '.' not in loc else 'key'} {loc!r}"
    if err["type"] == "extra_forbidden":
        return f"{where}: {_unknown(loc, _known_keys())}"
    if err["type"] == "unknown_name":  # ``_one_of``'s line, with its did-you-mean
        return f"{where}: {loc}: {err['msg']}"
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f" (got {_short(got)})"
    msg = err["msg"].removeprefix("Value error, ")
    field = _field(keys(err)[:2])
    allowed = f"; allowed: {_describe(field.annotation, field.metadata)}" if field is not None else ""
    return f"{where}: {loc}: {msg[0].lower() + msg[1:]}{shown}{allowed}"


def _input(e: ValidationError, keys: list[str]) -> Any:
    """What the user gave at the field named by ``keys`` (the first two: section and key)."""
    value = e.errors()[0].get("input")
    for err in e.errors():
        if [str(p) for p in err["loc"][:2]] == keys[:2]:
            return err.get("input")
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


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
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise DepthforgeError(f"{path}: {path.stat().st_size:,} bytes, too large for a recipe "
                                  f"(at most {MAX_RECIPE_BYTES:,})")
        cfg = parse_yaml(path.read_text(), str(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DepthforgeError(f"{path}: not a readable YAML recipe ({error_line(e)})") from None
    if not isinstance(cfg, dict):
        raise DepthforgeError(f"{path}: a recipe must be a YAML mapping")
    cfg.setdefault("name", path.stem)
    return cfg


def parse_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` that counts values as if aliases were expanded before building any object: a few
    lines of nested anchors ("billion laughs") would otherwise become gigabytes once printed or validated."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, {}) > MAX_RECIPE_VALUES:
                raise DepthforgeError(f"{where}: more than {MAX_RECIPE_VALUES:,} values once its YAML aliases are "
                                      "expanded; a recipe has a few hundred")
        except RecursionError:
            raise DepthforgeError(f"{where}: nested too deeply (or an alias inside itself) for a recipe") from None
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int | None]) -> int:
    """Values under ``node`` counting each alias use in full; ``sizes`` memoises shared nodes (None: being
    counted, i.e. an alias inside its own anchor)."""
    key = id(node)
    if key in sizes:
        if sizes[key] is None:
            raise RecursionError
        return sizes[key]  # type: ignore[return-value]
    sizes[key] = None
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[key] = total
    return min(total, MAX_RECIPE_VALUES + 1)


# sections that name a factory; ``SECTION=NAME`` or ``SECTION={name: ...}`` replaces one whole
NAMED_SECTIONS = ("model", "loss", "data", "test_data")


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``cfg`` with ``key.sub=value`` overrides applied (values parsed as YAML). Keys are checked
    against the schema when the result is validated.

    ``SECTION=NAME`` or ``SECTION={name: NAME, key: value}`` replaces a named section (model, loss, data,
    test_data) whole: the factory's defaults plus the keys given. The section's own keys (``data.size``,
    ``data.val_fraction``) carry over unless given."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or "" in key.split("."):
            raise DepthforgeError(f"override {item!r}: expected key.sub=value")
        try:
            value = parse_yaml(raw, f"override {key}")
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        if parts[0] not in Recipe.model_fields:
            raise DepthforgeError(f"override {item!r}: {_unknown(parts[0], list(Recipe.model_fields))}")
        if len(parts) == 1 and key in NAMED_SECTIONS and value is not None:
            value = _replaced_section(key, cfg.get(key), value, item)
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


def _replaced_section(section: str, old: Any, new: Any, item: str) -> dict[str, Any]:
    if isinstance(new, str):
        new = {"name": new}
    if not isinstance(new, dict) or not isinstance(new.get("name"), str):
        raise DepthforgeError(f"override {item!r}: expected {section}=NAME or {section}={{name: NAME, key: value}}")
    own = DataSection.model_fields.keys() - {"name"} if section in ("data", "test_data") else ()
    kept = {k: v for k, v in (old or {}).items() if k in own} if isinstance(old, dict) else {}
    return {**kept, **new}


def resolve(config: str | Path | dict[str, Any] = "quick", overrides: list[str] | None = None) -> Recipe:
    """Recipe name, path or dict + overrides -> a validated ``Recipe``."""
    cfg = load_config(config) if not isinstance(config, dict) else config
    where = f"recipe {cfg.get('name', config)!s}" if isinstance(cfg, dict) else "recipe"
    return validate(apply_overrides(cfg, overrides or []), where)
