"""depthforge: monocular depth estimation — datasets, models, training, evaluation, prediction and export."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import DepthforgeError
from .models import build_model, count_parameters
from .inference.load import load
from .inference.predictor import Predictor

__all__ = ["DepthforgeError", "build_model", "count_parameters", "load", "Predictor", "__version__"]
