"""inference/: running a model on images — resizing/padding, the predictor and its back ends, export."""
from .resize import infer

__all__ = ["infer"]
