"""Recipe files: the named recipes in configs/, and YAML read with a cap on size and on expanded aliases."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import DepthforgeError, error_line

# the recipes ship inside the package (depthforge/configs, package-data), one level above this folder
CONFIG_DIR = Path(__file__).parents[1] / "configs"
MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_VALUES = 100_000  # values once YAML aliases are expanded; a real recipe has a few hundred


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
