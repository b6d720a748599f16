"""AdaBins' bin-centre chamfer loss (Bhat et al., AdaBins, CVPR 2021, ``loss.py`` ``BinsChamferLoss``; the same as
the Monocular-Depth-Estimation-Toolbox's ``depth/models/losses/chamferloss.py``).

Per image: the bidirectional chamfer distance between the K bin centres and the image's valid ground-truth depths,
both as 1-D point sets in metres, with squared distances and pytorch3d's default reductions:

    mean_k min_j (c_k − y_j)² + mean_j min_k (y_j − c_k)²

then the mean over the images of the batch. AdaBins weights it 0.1 beside SILog; BinsFormer's published configs
turn it off (``with_loss_chamfer=False``).

Deviations: ground truth counts where the project's mask holds (``valid``, finite) and depth >= ``min_depth``
(AdaBins: >= 1e-3); images without a valid pixel are left out of the mean (AdaBins would give NaN), and an
all-invalid batch gives 0 with a zero gradient. At most ``max_points`` gt depths per image take part, drawn
uniformly without replacement (AdaBins uses all; this keeps the K × M distance matrix small on a CPU).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import LOSSES, Tensor, valid_mask

MAX_POINTS = 8192


def bins_chamfer(centres: Tensor, target: Tensor, valid: Tensor | None = None, max_points: int | None = MAX_POINTS,
                 min_depth: float = 1e-3, generator: torch.Generator | None = None) -> Tensor:
    """Chamfer loss between bin centres [N,K] (metres) and ground truth [N,1,H,W] (metres) -> scalar, m².

    ``valid``: optional bool [N,1,H,W]. ``max_points``: cap on gt points per image (None: all), drawn with
    ``generator`` (None: a fresh one seeded 0, so a call is reproducible).
    """
    n, k = centres.shape
    if target.shape[0] != n:
        raise ValueError(f"bins_chamfer: {n} images of bin centres but {target.shape[0]} depth maps")
    mask = (valid_mask(target, valid) & (target >= min_depth)).reshape(n, -1)
    flat = target.reshape(n, -1)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    points = []
    for t, m in zip(flat, mask):
        y = t[m]
        if max_points is not None and y.numel() > max_points:
            pick = torch.randperm(y.numel(), generator=generator)[:max_points].to(y.device)
            y = y[pick]
        points.append(y)
    counts = torch.tensor([p.numel() for p in points], device=centres.device)
    if int(counts.max()) == 0:
        return centres.sum() * 0.0
    y = nn.utils.rnn.pad_sequence(points, batch_first=True).to(centres.dtype)  # [N,M], 0-padded
    present = torch.arange(y.shape[1], device=y.device)[None] < counts[:, None]  # [N,M]
    d = (centres[:, :, None] - y[:, None, :]).square()  # [N,K,M]
    inf = torch.finfo(d.dtype).max
    d = torch.where(present[:, None, :], d, inf)
    to_gt = d.min(2).values.mean(1)  # [N]: each centre to its nearest gt depth
    to_bins = torch.where(present, d.min(1).values, 0).sum(1) / counts.clamp(min=1)  # [N]: each gt to a centre
    has = counts > 0
    return torch.where(has, to_gt + to_bins, 0).sum() / has.sum()


# inputs="bins": unlike the depth losses it takes bin centres [N,K], not a depth map, as its first argument.
@LOSSES.register("bins-chamfer", inputs="bins")
class BinsChamferLoss(nn.Module):
    """``bins_chamfer`` as a module: ``forward(centres [N,K], target [N,1,H,W], valid) -> scalar``. Its own
    generator (seeded ``seed``) draws the capped gt points, so a run's draws are reproducible and vary by step."""

    def __init__(self, max_points: int | None = MAX_POINTS, min_depth: float = 1e-3, seed: int = 0):
        super().__init__()
        if max_points is not None and int(max_points) < 1:
            raise ValueError(f"max_points must be >= 1 or None, not {max_points!r}")
        self.max_points, self.min_depth = (None if max_points is None else int(max_points)), float(min_depth)
        self.generator = torch.Generator().manual_seed(int(seed))

    def forward(self, centres: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        return bins_chamfer(centres, target, valid, self.max_points, self.min_depth, self.generator)

    def extra_repr(self) -> str:
        return f"max_points={self.max_points}, min_depth={self.min_depth}"
