"""Running a depth network on images of any size: resize or pad to what the network takes, and back."""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

Forward = Callable[[torch.Tensor], torch.Tensor]


def infer(forward: Forward, images: torch.Tensor, multiple: int = 1,
          size: tuple[int, int] | None = None, flip: bool = False) -> torch.Tensor:
    """Depth for ``images`` [N,3,H,W] in [0,1] -> [N,1,H,W] at the input's H×W.

    ``forward`` is the network (PyTorch module or ONNX session wrapper). With ``size`` the batch is resized to
    it (the resolution the model was trained at, so its sense of scale holds) and the output resized back;
    without, it is padded by edge replication up to a multiple of ``multiple`` and the output cropped.
    ``flip`` averages with the prediction of the mirrored image (test-time augmentation).
    """
    h, w = images.shape[-2:]
    if size is not None and tuple(size) != (h, w):
        x = F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    else:
        x = images
    th, tw = x.shape[-2:]
    ph, pw = (-th) % multiple, (-tw) % multiple
    if ph or pw:
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
    y = forward(x)
    if flip:
        y = 0.5 * (y + forward(x.flip(-1)).flip(-1))
    y = y[..., ph // 2: ph // 2 + th, pw // 2: pw // 2 + tw]
    if (th, tw) != (h, w):
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
    return y
