"""The model contract: what every depthforge model declares about its input and output.

A model is a ``DepthModel``: ``forward(image)`` maps images [N,3,H,W] float32 RGB in [0,1] (H and W multiples of
``multiple``) to [N,1,H,W] at the same H×W, and normalises its input inside. What the output *is* is declared,
never guessed:

- ``output``: ``"metric"`` (metres), ``"relative"`` (depth up to an unknown scale, and shift if the model says so)
  or ``"disparity"`` (relative inverse depth, as Depth Anything V2's and MiDaS's relative heads). Evaluation
  aligns the last two explicitly (see ``evaluation.align``).
- ``shift``: a relative output is also shift-invariant (affine-invariant depth, as Marigold's): evaluation fits
  scale and shift by least squares, not the median scale alone.
- ``max_depth``: the largest depth the model can output, metres (for relative outputs: the depth the output's
  unit stands for when the model was trained on a known range, else the range evaluation caps at).
- ``multiple``: H and W must be multiples of it (the predictor pads or resizes to it).
- ``input_size``: the (H, W) the model prefers (it was trained at, or its processor's size); None = any.
- ``mean``/``std``: the normalisation applied inside ``forward`` (ImageNet's unless a model says otherwise).

How a photo of any size becomes the network's input and the output comes back (``inference.resize.infer``
follows it; a Hugging Face model's comes from its ``preprocessor_config.json``):

- ``resize``: ``"fixed"`` (to ``input_size`` exactly, aspect ratio not kept: depthforge-trained models, DPT's ViT
  checkpoints; no resize without an ``input_size``), ``"keep_aspect"`` (transformers' ``keep_aspect_ratio``: one scale for both sides, the one of
  height or width to ``input_size`` that is closest to 1, each side rounded to ``size_multiple``), ``"floor"``
  (each side rounded down to ``size_multiple``: GLPN's ``size_divisor``) or ``"none"``.
- ``size_multiple``: what the resize rounds sides to (the network's ``multiple`` is then met by padding).
- ``resample``: ``"bilinear"`` or ``"bicubic"``; ``align_corners`` False = as PIL resizes (antialiased,
  clamped to [0, 1]), True = plain ``torch`` interpolation with align_corners (ZoeDepth's processor).
- ``pad``: ``"none"`` or ``"reflect"`` (ZoeDepth: int(√(h/2)·3) rows and int(√(w/2)·3) columns by reflection
  at the photo's size before resizing, cut off the output after).
- ``output_resample``: how the prediction is resized back to the photo (``"bilinear"``; ``"bicubic"`` as
  transformers' ``post_process_depth_estimation``, clamped at 0).

What a model gives and takes besides one image and one depth map:

- ``camera``: the model also estimates the camera: ``forward_camera(image)`` returns the depth and the horizontal
  field of view [N] in degrees of the image it was given (Depth Pro); the predictor turns that into pinhole
  intrinsics at the photo's size. A model without it leaves the camera to the user (or a default guess).
- ``prompt``: the model takes an optional low-resolution depth prompt [N,1,h,w] in metres as ``forward(image,
  prompt)`` (Prompt Depth Anything: a phone's LiDAR); its metres come from the prompt's range.

Training may ask for more than depth: ``forward_train`` returns a dict with ``depth`` and, optionally, ``aux``
(a list of (weight, depth [N,1,h,w])) for deep supervision and ``bins`` (bin centres [N,K], metres) for a bins
loss; ``extra_loss(outputs, batch)`` adds model-specific terms (e.g. scene classification); ``encoder()`` names the
pretrained part that recipes train at a fraction of the decoder's learning rate. The defaults make a plain model
need none of them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from ..registry import Registry

OutputKind = Literal["metric", "relative", "disparity"]
# How evaluation brings a relative or disparity output to metres (``evaluation.metrics.to_metres``); here, next to
# the output kinds, so that recipes (a layer below evaluation) check ``eval.align`` against the same names.
ALIGN_MODES = ("none", "median", "lstsq", "median-disparity", "lstsq-disparity")
OUTPUT_KINDS = ("metric", "relative", "disparity")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZES = ("fixed", "keep_aspect", "floor", "none")
RESAMPLES = ("bilinear", "bicubic")
PADS = ("none", "reflect")
# Each model registers with facts for listings: family, weights (where pretrained weights come from), catalog
# (keywords of the listed architecture, built without downloading) and test (keywords of a tiny version).
MODELS = Registry("model")


@dataclass(frozen=True)
class Contract:
    """What a model's output is and what input it takes (see the module docstring)."""

    output: OutputKind
    max_depth: float
    multiple: int = 1
    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    resize: str = "fixed"
    size_multiple: int = 1
    resample: str = "bilinear"
    align_corners: bool = False
    pad: str = "none"
    output_resample: str = "bilinear"
    shift: bool = False
    camera: bool = False
    prompt: bool = False

    def __post_init__(self):
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f"output must be one of {', '.join(OUTPUT_KINDS)}, not {self.output!r}")
        if self.shift and self.output != "relative":
            raise ValueError(f"shift applies to relative outputs, not {self.output!r}")
        if not self.max_depth > 0:
            raise ValueError(f"max_depth must be > 0 metres, not {self.max_depth!r}")
        if int(self.multiple) < 1:
            raise ValueError(f"multiple must be >= 1, not {self.multiple!r}")
        if self.input_size is not None:
            try:
                h, w = (int(s) for s in self.input_size)
            except (TypeError, ValueError):
                raise ValueError(f"input_size must be [H, W], not {self.input_size!r}") from None
            if h < 1 or w < 1:
                raise ValueError(f"input_size must be [H, W] of positive integers, not {[h, w]}")
            object.__setattr__(self, "input_size", (h, w))
        for key, allowed in (("resize", RESIZES), ("resample", RESAMPLES), ("pad", PADS),
                             ("output_resample", RESAMPLES)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, not {getattr(self, key)!r}")
        if self.resize == "keep_aspect" and self.input_size is None:
            raise ValueError("resize 'keep_aspect' needs an input_size")
        if int(self.size_multiple) < 1:
            raise ValueError(f"size_multiple must be >= 1, not {self.size_multiple!r}")

    def preprocessing(self) -> dict[str, Any]:
        """The resize policy alone (see the module docstring), as ``to_dict`` writes it."""
        d = self.to_dict()
        return {k: d[k] for k in ("input_size", "resize", "size_multiple", "resample", "align_corners", "pad",
                                  "output_resample")}

    def trained_at(self, size: tuple[int, int]) -> "Contract":
        """This contract for weights trained on images resized to ``size``: predict at that size (fixed resize,
        bilinear both ways, no padding), so the network sees the scale it learned."""
        return replace(self, input_size=tuple(size), resize="fixed", size_multiple=1, resample="bilinear",
                       align_corners=False, pad="none", output_resample="bilinear")
    @property
    def metric(self) -> bool:
        return self.output == "metric"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Contract":
        d = dict(d)
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(d[key])
        if d.get("input_size") is not None:
            d["input_size"] = tuple(d["input_size"])
        return cls(**d)


class DepthModel(nn.Module):
    """Base class of every model. Subclasses set ``self.contract`` in ``__init__`` and implement ``forward``."""

    contract: Contract
    # The batch size an ONNX export is fixed at (None: dynamic), for a network whose Python code bakes the batch
    # into the traced graph; the exported model's back ends then run a larger batch in chunks of this size.
    export_batch: int | None = None

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.register_buffer("_mean", mean, persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def set_contract(self, contract: Contract) -> None:
        """Declare the contract; the normalisation buffers follow its mean/std."""
        self.contract = contract
        self._mean = torch.tensor(contract.mean, dtype=torch.float32).view(1, 3, 1, 1).to(self._mean.device)
        self._std = torch.tensor(contract.std, dtype=torch.float32).view(1, 3, 1, 1).to(self._std.device)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] in [0,1] -> (image − mean) / std, the contract's normalisation."""
        return (image - self._mean.to(image.dtype)) / self._std.to(image.dtype)

    # Shorthands every consumer uses; the contract is the one source.
    @property
    def output(self) -> str:
        return self.contract.output

    @property
    def metric(self) -> bool:
        return self.contract.metric

    @property
    def max_depth(self) -> float:
        return self.contract.max_depth

    @property
    def multiple(self) -> int:
        return self.contract.multiple

    def encoder(self) -> nn.Module | None:
        """The pretrained part, trained at ``train.encoder_lr_factor`` × the learning rate (None: no split)."""
        return None

    def forward_train(self, image: torch.Tensor) -> dict[str, Any]:
        """Training outputs: {"depth": [N,1,H,W], optional "aux": [(weight, depth)], "bins": [N,K]}."""
        return {"depth": self(image)}

    def forward_camera(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(depth [N,1,H,W] as ``forward``, horizontal field of view [N] in degrees), for ``contract.camera``."""
        raise NotImplementedError(f"{type(self).__name__} does not estimate the camera (contract.camera is False)")

    def extra_loss(self, outputs: dict[str, Any], batch: dict[str, Any]) -> torch.Tensor | None:
        """Model-specific training terms beyond the recipe's depth loss (None: none)."""
        return None

    def spec_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The constructor keywords that rebuild this architecture offline from a checkpoint (given the ones it
        was built with). Models that download weights replace the hub id by the architecture's config here."""
        return dict(kwargs)
