"""depthforge: monocular depth estimation — datasets, models, training, evaluation, prediction and export."""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

from .errors import DepthforgeError

# Imported on first use: `import depthforge` (every CLI command) must not pay for torch and transformers when a
# command needs neither (``depthforge models`` reads recorded facts).
_LAZY = {"build_model": ".models", "count_parameters": ".models", "load": ".inference.load",
         "Predictor": ".inference.predictor"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'depthforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


__all__ = ["DepthforgeError", "build_model", "count_parameters", "load", "Predictor", "__version__"]
