"""Recipes: YAML files in configs/, every field overridable from the command line as ``key.sub=value``."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .errors import DepthforgeError

CONFIG_DIR = Path(__file__).parent / "configs"
# Sections whose keys are passed through to a factory, so an override may add a key the YAML leaves out.
OPEN_SECTIONS = {"model", "loss", "data", "augment", "test_data"}


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path) -> dict[str, Any]:
    """A config by name (``quick``, ``seed-nyu``) or path to a YAML file -> dict."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise DepthforgeError(f"{name_or_path}: config not found (known: {', '.join(config_names())})")
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DepthforgeError(f"{path}: not a readable YAML config ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise DepthforgeError(f"{path}: a config must be a YAML mapping")
    cfg.setdefault("name", path.stem)
    return cfg


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``cfg`` with ``key.sub=value`` overrides applied (values parsed as YAML)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise DepthforgeError(f"override {item!r}: expected key.sub=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        node = cfg
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None and (depth == 0 and part in OPEN_SECTIONS):
                child = node[part] = {}
            if not isinstance(child, dict):
                raise DepthforgeError(f"override {item!r}: {'.'.join(parts[:depth + 1])} is not a section")
            node = child
        last = parts[-1]
        if last not in node and not (len(parts) > 1 and parts[0] in OPEN_SECTIONS):
            raise DepthforgeError(f"override {item!r}: unknown key {key!r}")
        node[last] = value
    return cfg


def split_name(section: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``{"name": n, **kw}`` -> (n, kw)."""
    kw = dict(section)
    return kw.pop("name"), kw


def dataset_spec(section: dict[str, Any], size) -> dict[str, Any]:
    """A config's ``data``/``test_data`` section -> what ``build_dataset`` takes: the training-only key dropped
    and the model's input size (H, W) added, at which synthetic scenes render (file datasets ignore it)."""
    spec = {k: v for k, v in section.items() if k != "val_fraction"}
    spec["size"] = tuple(spec.get("size") or size)
    return spec
