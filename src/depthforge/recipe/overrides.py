"""Command-line overrides (``key.sub=value``) applied to a recipe dict before it is validated."""
from __future__ import annotations

import copy
from typing import Any

import yaml

from ..errors import DepthforgeError
from .load import parse_yaml
from .schema import DataSection, Recipe, unknown

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
            raise DepthforgeError(f"override {item!r}: {unknown(parts[0], list(Recipe.model_fields))}")
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
