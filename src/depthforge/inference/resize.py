"""Running a depth network on images of any size: the contract's resize policy in, and back out.

The policy (``models.base.Contract``: ``resize``, ``size_multiple``, ``resample``, ``align_corners``, ``pad``,
``output_resample``) is what a Hugging Face image processor does before the network and what its
``post_process_depth_estimation`` does after; depthforge-trained models resize to their training size.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.nn import functional as F

from ..errors import DepthforgeError
from ..models.base import Contract

Forward = Callable[[torch.Tensor], torch.Tensor]


def reflect_pad(n: int) -> int:
    """ZoeDepth's padding for a side of n pixels: int(√(n/2)·3) (the original ZoeDepth's ``pad_input``)."""
    return int(math.sqrt(n / 2) * 3)


def _to_multiple(value: float, multiple: int) -> int:
    # transformers' constrain_to_multiple_of (DPT, ZoeDepth): nearest multiple, halves to even, may reach 0
    return int(round(value / multiple) * multiple)


def network_size(policy: Contract, h: int, w: int) -> tuple[int, int]:
    """The (H, W) ``policy`` resizes an h×w image to (after its ``pad``; see ``infer``)."""
    m, size = policy.size_multiple, policy.input_size
    if policy.resize == "none" or (policy.resize == "fixed" and size is None):
        return h, w
    if policy.resize == "floor":
        return h // m * m, w // m * m
    scale_h, scale_w = size[0] / h, size[1] / w
    if policy.resize == "keep_aspect":  # scale as little as possible, as transformers' keep_aspect_ratio
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h
    return _to_multiple(scale_h * h, m), _to_multiple(scale_w * w, m)


def padded_size(policy: Contract, h: int, w: int) -> tuple[int, int]:
    """The size of an h×w image after the policy's ``pad`` (before resizing)."""
    if policy.pad == "reflect":
        return h + 2 * reflect_pad(h), w + 2 * reflect_pad(w)
    return h, w


def runs_at(policy: Contract, h: int, w: int) -> tuple[int, int]:
    """The (H, W) the network gets for an h×w image: the policy's size, padded up to ``policy.multiple``; one
    line when the image is too small for the policy."""
    th, tw = network_size(policy, *padded_size(policy, h, w))
    if th < 1 or tw < 1 or (policy.pad == "reflect" and min(h, w) < 5):
        rule = (f"{policy.resize} resize to {list(policy.input_size)}" if policy.input_size else
                f"{policy.resize} resize")
        raise DepthforgeError(f"image {w}x{h}: too small for this model's preprocessing ({rule}, multiple of "
                              f"{policy.size_multiple}{', reflect padding' if policy.pad == 'reflect' else ''}: "
                              f"it would be {tw}x{th})")
    m = policy.multiple
    return -(-th // m) * m, -(-tw // m) * m


def _resize_image(x: torch.Tensor, size: tuple[int, int], policy: Contract) -> torch.Tensor:
    if policy.align_corners:  # ZoeDepth's processor: torch's own interpolation on the float image
        return F.interpolate(x, size=size, mode=policy.resample, align_corners=True)
    # PIL's resize (transformers' processors, depthforge's data): antialiased; PIL's uint8 output is clamped
    return F.interpolate(x, size=size, mode=policy.resample, align_corners=False, antialias=True).clamp(0, 1)


def _resize_depth(y: torch.Tensor, size: tuple[int, int], policy: Contract) -> torch.Tensor:
    if policy.output_resample == "bicubic":
        # transformers' post-processing; bicubic overshoots below 0 at edges, where depth cannot be
        return F.interpolate(y, size=size, mode="bicubic", align_corners=False).clamp(min=0)
    return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


def infer(forward: Forward, images: torch.Tensor, multiple: int = 1, size: tuple[int, int] | None = None,
          flip: bool = False, policy: Contract | None = None, prompt: torch.Tensor | None = None) -> torch.Tensor:
    """Depth for ``images`` [N,3,H,W] in [0,1] -> [N,1,H,W] at the input's H×W.

    ``forward`` is the network (PyTorch module or ONNX session wrapper). ``policy``: a contract whose resize
    policy is followed (see ``models.base``): pad (reflect), resize to ``network_size``, pad by edge replication
    up to ``policy.multiple``, run, crop, resize back with ``output_resample``, crop the reflect padding. Without
    a policy: resize to ``size`` if given (bilinear), pad to ``multiple``. ``flip`` averages with the prediction
    of the mirrored image (test-time augmentation; ZoeDepth's post-processing averages the same way).
    ``prompt``: a depth prompt [N,1,h,w] covering the same view, passed as ``forward(x, prompt)`` (see
    ``infer_camera``).
    """
    return _infer(forward, images, multiple, size, flip, policy, prompt)[0]


def infer_camera(forward: Forward, images: torch.Tensor, flip: bool = False, policy: Contract | None = None,
                 prompt: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """As ``infer`` for a network that also estimates the camera, ``forward(x) -> (depth, horizontal FoV [N]
    degrees of x)`` -> (depth [N,1,H,W], focal lengths [N,2] (fx, fy) in pixels of the H×W images).

    The field of view is of what the network saw: the image after padding and resizing. Its focal length in the
    network's pixels is brought back to the photo's by the resize's scale on each axis (a squash resize gives
    fx ≠ fy)."""
    y, fov, (rh, rw), (th, tw), (sh, sw) = _infer(forward, images, 1, None, flip, policy, prompt)
    f = 0.5 * rw / torch.tan(torch.deg2rad(fov.to(torch.float64)) / 2)
    return y, torch.stack([f * sw / tw, f * sh / th], dim=1).to(torch.float32)


def _infer(forward, images, multiple, size, flip, policy, prompt):
    """``infer``'s work: (depth, FoV or None, network input size, resized size, padded photo size)."""
    if policy is None:
        policy = Contract("relative", 1.0, multiple=multiple, input_size=size)  # only its resize fields matter
    h, w = images.shape[-2:]
    rh, rw = runs_at(policy, h, w)
    x = images
    ph = pw = 0
    if policy.pad == "reflect":
        ph, pw = reflect_pad(h), reflect_pad(w)
        x = F.pad(x, (pw, pw, ph, ph), mode="reflect")
    sh, sw = x.shape[-2:]
    th, tw = network_size(policy, sh, sw)
    if (th, tw) != (sh, sw):
        x = _resize_image(x, (th, tw), policy)
    mh, mw = rh - th, rw - tw
    if mh or mw:
        x = F.pad(x, (mw // 2, mw - mw // 2, mh // 2, mh - mh // 2), mode="replicate")
    if prompt is not None and (mh or mw or ph or pw):
        # padding widens the view: the prompt, at the network's size, gets the same padding to stay aligned
        prompt = F.interpolate(prompt, size=(h, w), mode="nearest")
        if ph or pw:
            prompt = F.pad(prompt, (pw, pw, ph, ph), mode="reflect")
        prompt = F.interpolate(prompt, size=(th, tw), mode="nearest")
        prompt = F.pad(prompt, (mw // 2, mw - mw // 2, mh // 2, mh - mh // 2), mode="replicate")

    def run(x, prompt):
        out = forward(x) if prompt is None else forward(x, prompt)
        return out if isinstance(out, tuple) else (out, None)

    y, fov = run(x, prompt)
    if flip:
        yf, fovf = run(x.flip(-1), None if prompt is None else prompt.flip(-1))
        y = 0.5 * (y + yf.flip(-1))
        fov = None if fov is None else 0.5 * (fov + fovf)  # mirroring keeps the field of view
    y = y[..., mh // 2: mh // 2 + th, mw // 2: mw // 2 + tw]
    if (th, tw) != (sh, sw):
        y = _resize_depth(y, (sh, sw), policy)
    return y[..., ph:ph + h, pw:pw + w], fov, (rh, rw), (th, tw), (sh, sw)
