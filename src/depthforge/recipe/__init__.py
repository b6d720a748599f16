"""recipe/: what a run is made of. YAML files in configs/, validated against one typed schema (pydantic) that knows
every key the code reads, with its default. Every field can be overridden from the command line as
``key.sub=value`` (values parsed as YAML); a misspelt key fails with one line naming the close ones.

Sections: ``model``, ``loss``, ``data`` and ``test_data`` name a registered factory (``name:``) and pass their
other keys to it, checked against the factory's signature; ``augment``, ``train`` and ``eval`` are closed. Every
value has its allowed range in the schema (finite numbers, probabilities in [0, 1], sizes >= 1 ...); a value
outside it is refused in one line naming the key and the range.

A named section is replaced whole from the command line with ``SECTION=NAME`` (the factory's defaults) or
``SECTION={name: NAME, key: value}``; the section's own keys (``data.size``, ``data.val_fraction``) carry over.

The schema is in ``schema``, its error lines in ``messages``, the files in ``load``, the command-line overrides in
``overrides``; this module validates (the named sections against their factories) and re-exports them.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..errors import DepthforgeError
from .load import CONFIG_DIR, MAX_RECIPE_BYTES, MAX_RECIPE_VALUES, config_names, load_config, parse_yaml
from .messages import describe, short, validation_line
from .overrides import NAMED_SECTIONS, apply_overrides
from .schema import (ACCELERATORS, MAX_SIDE, PRECISIONS, Augment, DataSection, Eval, ModelSection, Named,
                     NonNegative, Probability, Recipe, Side, Train, unknown)

__all__ = ["ACCELERATORS", "CONFIG_DIR", "MAX_RECIPE_BYTES", "MAX_RECIPE_VALUES", "MAX_SIDE", "NAMED_SECTIONS",
           "PRECISIONS", "Augment", "DataSection", "Eval", "ModelSection", "Named", "NonNegative", "Probability",
           "Recipe", "Side", "Train", "apply_overrides", "config_names", "load_config", "parse_yaml", "resolve",
           "validate"]


def _factories(section: str):
    if section == "model":
        from ..models import MODELS
        return MODELS
    if section == "loss":
        from ..losses import LOSSES
        return LOSSES
    from ..data import DATASETS
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
            raise DepthforgeError(unknown(f"{section}.{key}", [f"{section}.{k}" for k in known],
                                          f" ({registry.kind} {value.name!r} takes: {', '.join(known)}; "
                                          f"{section}={value.name} replaces the whole section)"))
    _check_types(section, value, factory)


def _check_types(section: str, value: Named, factory) -> None:
    """Each keyword argument against the factory's annotation, so ``model.width=abc`` is one line here rather
    than a TypeError deep inside the model. A number where only text is taken becomes its text: YAML reads
    ``model.size=34`` (or ``size: 34``) as a number, and a shell strips the quotes that would make it text."""
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
            if _as_text(adapter, given):
                value.model_extra[key] = str(given)
                continue
            msg = e.errors()[0]["msg"]
            raise DepthforgeError(f"{section}.{key}: {msg[0].lower() + msg[1:]} (got {short(given)}); allowed: "
                                  f"{describe(param.annotation)}") from None


def _as_text(adapter: TypeAdapter, given: Any) -> bool:
    """Whether ``given`` is a number that ``adapter`` takes as text (``str(given)``)."""
    if isinstance(given, bool) or not isinstance(given, (int, float)):
        return False
    try:
        adapter.validate_python(str(given))
    except ValidationError:
        return False
    return True


def validate(cfg: dict[str, Any], where: str = "recipe") -> Recipe:
    """A recipe dict -> ``Recipe``; one-line DepthforgeError naming the key and the problem."""
    if not isinstance(cfg, dict):
        raise DepthforgeError(f"{where}: a recipe must be a YAML mapping")
    try:
        recipe = Recipe.model_validate(cfg)
    except ValidationError as e:
        raise DepthforgeError(validation_line(where, e)) from None
    for section in ("model", "loss", "data", "test_data"):
        value = getattr(recipe, section)
        if value is not None:
            try:
                _check_named(section, value)
            except DepthforgeError as e:
                raise DepthforgeError(f"{where}: {e}") from None
    return recipe


def resolve(config: str | Path | dict[str, Any] = "quick", overrides: list[str] | None = None) -> Recipe:
    """Recipe name, path or dict + overrides -> a validated ``Recipe``."""
    cfg = load_config(config) if not isinstance(config, dict) else config
    where = f"recipe {cfg.get('name', config)!s}" if isinstance(cfg, dict) else "recipe"
    return validate(apply_overrides(cfg, overrides or []), where)
