"""The predictor: a model behind interchangeable back ends, as ``depthforge.load(source)`` returns it.

    import depthforge
    predict = depthforge.load("runs/quick/checkpoints/best.ckpt")  # or "model.onnx", a Hugging Face folder or
    depth = predict("photo.jpg")                                  # hub id; device="cuda"; runtime="openvino"
    depths = predict([rgb_uint8, gray_uint16, pil_image])         # a list in -> a list out
    print(predict.output, predict.max_depth, predict.contract.input_size)
    result = predict.predict("photo.jpg")                         # depth, and the model's camera estimate
    result.depth, result.intrinsics, result.fov                   # (Depth Pro; None for other models)
    predict.predict("photo.jpg", prompt=lidar_metres)             # a depth prompt (Prompt Depth Anything)

The predictor reads everything from the model's contract (``models.base.Contract``) and runs the network through
an interchangeable back end: PyTorch, ONNX Runtime or OpenVINO (``Backend``).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, NamedTuple, Sequence, Union

import numpy as np
import torch
from PIL import Image

from ..data.io import pil_to_array, read_image
from ..errors import DepthforgeError
from ..models.base import Contract, DepthModel
from .prompt import check_prompt
from .resize import infer, infer_camera, runs_at

log = logging.getLogger(__name__)
ImageLike = Union[str, os.PathLike, np.ndarray, Image.Image]
RESIZE_MODES = ("train", "pad")


def default_device(device: str | torch.device | None = None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise DepthforgeError(f"device {device!r}: not a device name (use cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda", "mps", "xpu"):
        raise DepthforgeError(f"device {device!r}: not supported (use cpu, cuda or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DepthforgeError(f"device {device}: CUDA is not available on this machine (use device='cpu')")
    return device


@dataclass
class Backend:
    """How a predictor runs the network: ``forward(x [N,3,H,W] float32 on device) -> [N,1,H,W]``."""

    name: str  # "torch", "onnxruntime" or "openvino"
    forward: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    module: torch.nn.Module | None = None  # the PyTorch model, when the back end is PyTorch
    # forward_camera(x) -> (depth, horizontal FoV [N] degrees), for a model that estimates the camera
    camera: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    # an export whose graph takes a depth prompt: forward(x, prompt) and camera(x, prompt) need one (PyTorch's
    # prompt model also runs without)
    needs_prompt: bool = False
    details: dict[str, Any] = field(default_factory=dict)  # e.g. onnxruntime's providers


class Prediction(NamedTuple):
    """One photo's result: depth (H,W) float32 as ``Predictor.__call__`` gives it, and the model's estimate of the
    camera when it makes one (``contract.camera``; else None): ``intrinsics`` (3,3) pinhole at the photo's size,
    principal point at its centre, and ``fov`` its horizontal field of view in degrees."""

    depth: np.ndarray
    intrinsics: np.ndarray | None = None
    fov: float | None = None


def to_image(x: ImageLike, name: str = "image") -> np.ndarray:
    """An image in any accepted form -> float32 RGB (H,W,3) in [0,1].

    Accepts a path (read with ``read_image``), a PIL image, or an array: (H,W) gray, (H,W,1), (H,W,3) RGB or
    (H,W,4) RGBA (alpha dropped); uint8 (/255), uint16 (/65535), bool, or float already in [0,1].
    """
    if isinstance(x, (str, os.PathLike)):
        return read_image(x)
    if isinstance(x, Image.Image):
        return pil_to_array(x)
    if isinstance(x, torch.Tensor):
        raise DepthforgeError(f"{name}: got a torch tensor; use predictor.predict_tensor for [N,3,H,W] tensors")
    if not isinstance(x, np.ndarray):
        raise DepthforgeError(f"{name}: expected a path, PIL image or NumPy array, got {type(x).__name__}")
    a = x
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        a = a[..., :3] if a.shape[2] >= 3 else a[..., 0]
    if a.ndim != 2 and not (a.ndim == 3 and a.shape[2] == 3):
        raise DepthforgeError(f"{name}: image array must be (H,W), (H,W,3) or (H,W,4), got shape {x.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise DepthforgeError(f"{name}: image array is empty (shape {x.shape})")
    if a.dtype == np.uint8 or a.dtype == np.bool_:
        a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise DepthforgeError(f"{name}: float image has NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise DepthforgeError(f"{name}: float image values must be in [0, 1], got [{lo:g}, {hi:g}] "
                                  "(divide uint8 data by 255)")
    else:
        raise DepthforgeError(f"{name}: unsupported image dtype {a.dtype} (use uint8, uint16 or float in [0,1])")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a)


class Predictor:
    """Depth for images of any size with a network behind a ``Backend``, as its ``Contract`` declares.

    Call it on one image (path, PIL image or array; see ``to_image``) to get float32 (H,W) at the image's size —
    metres for ``output == "metric"``, relative depth for "relative", relative disparity for "disparity" — or on
    a list to get a list (same-size images run as one batch). ``resize="train"`` follows the contract's resize
    policy (its processor's for a Hugging Face model: e.g. 518 short side keeping the aspect ratio for Depth
    Anything V2; the training size for depthforge's), padding to ``multiple``; ``"pad"`` never resizes, only
    pads. ``flip=True`` averages with the prediction of the mirrored image.
    """

    def __init__(self, backend: Backend, contract: Contract, info: dict, resize: str = "train", flip: bool = False,
                 batch_size: int = 8, source: str = ""):
        if resize not in RESIZE_MODES:
            raise DepthforgeError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise DepthforgeError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.backend, self.contract, self.info = backend, contract, info
        self.resize, self.flip, self.batch_size, self.source = resize, bool(flip), batch_size, source

    # the contract's facts, read by every consumer
    output = property(lambda self: self.contract.output)
    metric = property(lambda self: self.contract.metric)
    max_depth = property(lambda self: self.contract.max_depth)
    multiple = property(lambda self: self.contract.multiple)
    train_size = property(lambda self: self.contract.input_size)
    device = property(lambda self: self.backend.device)
    module = property(lambda self: self.backend.module)

    def __repr__(self) -> str:
        name = (self.info.get("model") or {}).get("name", "?")
        return (f"Predictor({name!r}, {self.backend.name} on {self.device}, output={self.output}, "
                f"input_size={self.train_size} ({self.contract.resize}), resize={self.resize!r})")

    def policy(self, resize: str | None = None) -> Contract:
        """The contract whose resize policy ``infer`` follows: the model's ("train"), or no resize ("pad")."""
        resize = self.resize if resize is None else resize
        if resize not in RESIZE_MODES:
            raise DepthforgeError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
        return self.contract if resize == "train" else replace(self.contract, resize="none")

    def runs_at(self, h: int, w: int, resize: str | None = None) -> tuple[int, int]:
        """The (H, W) the network gets for an h×w image."""
        return runs_at(self.policy(resize), h, w)

    @torch.inference_mode()
    def predict_tensor(self, images: torch.Tensor, resize: str | None = None, flip: bool | None = None,
                       prompt: torch.Tensor | None = None, camera: bool = False):
        """Images [N,3,H,W] float in [0,1] (any H, W) -> [N,1,H,W] float32 (see the class), on the input's device.
        ``prompt``: a depth prompt [N,1,h,w] metres (``contract.prompt``). With ``camera`` (a model that
        ``estimates_camera``): (depth, focal lengths [N,2] (fx, fy) in pixels of the images)."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise DepthforgeError(f"predict_tensor expects a [N,3,H,W] tensor, got {shape}")
        if camera and not self.estimates_camera:
            raise DepthforgeError(f"{self.source or 'model'}: does not estimate the camera (its contract's camera)")
        depth, focal = self._run(images, resize, flip, prompt, camera)
        return (depth, focal) if camera else depth

    def _run(self, images: torch.Tensor, resize: str | None, flip: bool | None, prompt: torch.Tensor | None = None,
             camera: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(depth [N,1,H,W], focal lengths [N,2] (fx, fy) px when ``camera``, else None)."""
        x = images.to(self.device, torch.float32)
        if prompt is not None:
            self.check_prompt_taken()
            prompt = prompt.to(self.device, torch.float32)
        else:
            self.check_prompt_needed()
        flip, policy = self.flip if flip is None else flip, self.policy(resize)
        focal = None
        if camera:
            y, focal = infer_camera(self.backend.camera, x, flip=flip, policy=policy, prompt=prompt)
        else:
            y = infer(self.backend.forward, x, flip=flip, policy=policy, prompt=prompt)
        if not torch.isfinite(y).all():
            raise DepthforgeError(f"{self.source or 'model'}: the model's output is not finite (NaN or infinite): its "
                                  "weights are damaged or come from a diverged training")
        return y.to(images.device), focal

    @property
    def estimates_camera(self) -> bool:
        """Whether ``predict`` returns the model's estimate of the camera (its contract says so, and the back end
        runs it)."""
        return self.contract.camera and self.backend.camera is not None

    def check_prompt_taken(self) -> None:
        """One line when this model takes no depth prompt (before anything runs)."""
        if not self.contract.prompt:
            raise DepthforgeError(f"{self.name}: takes no depth prompt (a model whose contract has prompt, such as "
                                  "prompt-depth-anything, does)")
        if self.backend.name != "torch" and not self.backend.needs_prompt:
            raise DepthforgeError(f"{self.name}: this {self.backend.name} export takes the image alone (exported "
                                  "before exports carried the prompt input); export it again")

    def check_prompt_needed(self) -> None:
        """One line when this model cannot run without a depth prompt (an export whose graph takes one)."""
        if self.backend.needs_prompt:
            raise DepthforgeError(f"{self.name}: this {self.backend.name} export takes a depth prompt beside each "
                                  "image (predict --prompt-depth FILE, predictor.predict(photo, prompt=metres)); "
                                  "the PyTorch model also runs without one")

    @property
    def name(self) -> str:
        """The model's registered name, else where it was loaded from: what error lines call it."""
        return (self.info.get("model") or {}).get("name") or self.source or "this model"

    @torch.inference_mode()
    def predict(self, image: ImageLike, prompt: np.ndarray | None = None, resize: str | None = None,
                flip: bool | None = None) -> Prediction:
        """One image (as ``__call__``) -> ``Prediction``: its depth and, for a model that estimates the camera,
        the estimated intrinsics and field of view. ``prompt``: a depth prompt (h,w) float metres, 0 = no
        reading (see ``inference.prompt``), for a model whose contract takes one."""
        a = to_image(image, image if isinstance(image, (str, os.PathLike)) else "image")
        x = torch.from_numpy(a.transpose(2, 0, 1).copy())[None]
        # checked here too: an array handed to the API may hold millimetres or holes
        p = None if prompt is None else torch.from_numpy(check_prompt(prompt))[None, None]
        y, focal = self._run(x, resize, flip, p, camera=self.estimates_camera)
        depth = y[0, 0].cpu().numpy().astype(np.float32)
        if focal is None:
            return Prediction(depth)
        if not torch.isfinite(focal).all() or not bool((focal > 0).all()):
            log.warning("%s: the model's focal length estimate %s px is unusable (untrained field-of-view head?); "
                        "no camera estimate", self.source or "model", focal[0].tolist())
            return Prediction(depth)
        h, w = depth.shape
        fx, fy = (float(v) for v in focal[0])
        k = np.array([[fx, 0, (w - 1) / 2], [0, fy, (h - 1) / 2], [0, 0, 1]], dtype=np.float32)
        return Prediction(depth, k, math.degrees(2 * math.atan(0.5 * w / fx)))

    def __call__(self, images: ImageLike | Sequence[ImageLike], resize: str | None = None,
                 flip: bool | None = None) -> np.ndarray | list[np.ndarray]:
        """Depth (H,W) float32 for one image, or a list of them for a list/tuple of images."""
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        arrays = [to_image(x, x if isinstance(x, (str, os.PathLike)) else f"image {i}") for i, x in enumerate(items)]
        out: list[np.ndarray | None] = [None] * len(arrays)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, a in enumerate(arrays):
            by_size.setdefault(a.shape[:2], []).append(i)
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                batch = torch.from_numpy(np.stack([arrays[i] for i in chunk]).transpose(0, 3, 1, 2).copy())
                depth = self.predict_tensor(batch, resize, flip)[:, 0].cpu().numpy().astype(np.float32)
                for i, d in zip(chunk, depth):
                    out[i] = d
        return out[0] if single else out


def from_module(model: DepthModel, info: dict, device: str | torch.device | None = None,
                **options: Any) -> Predictor:
    """A Predictor around a PyTorch depth model (e.g. one just trained) and its checkpoint metadata."""
    device = default_device(device)
    model = model.to(device).eval()
    camera = model.forward_camera if model.contract.camera else None
    return Predictor(Backend("torch", model, device, module=model, camera=camera), model.contract, info, **options)
