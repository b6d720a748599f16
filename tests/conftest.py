from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

# Tests must not re-exec or spawn worker processes unless they ask to.
os.environ.setdefault("DEPTHFORGE_NO_MALLOC_TUNING", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEPTHFORGE_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
REALDATA = SHARED / "realdata"


def need(path: Path) -> Path:
    """Skip the calling test when a file from ../shared is absent."""
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is absent)")
    return path


@pytest.fixture
def fixtures() -> Path:
    return need(FIXTURES)


@pytest.fixture
def realdata() -> Path:
    return need(REALDATA)


def liven(net: torch.nn.Module, seed: int = 0) -> None:
    """Random weights of unit gain: transformers' init (std 0.02) makes outputs ~1e-7, which any wrong
    normalisation or resize would still match to 1e-5. With fan-in scaled weights outputs vary by O(1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif name.endswith("bias"):
                p.copy_((torch.rand(p.shape, generator=g) - 0.5) * 0.2)


TINY = {"width": 0.25, "levels": 3}  # a seed U-Net small enough for fast tests


def make_checkpoint(path: Path, size=(96, 128), seed: int = 0) -> Path:
    """Save a tiny untrained seed U-Net as a depthforge checkpoint trained (per its config) at ``size``."""
    from dataclasses import replace

    from depthforge import build_model
    from depthforge.models.checkpoint import meta, save_model

    torch.manual_seed(seed)
    model = build_model("seed-unet", **TINY)
    model.set_contract(replace(model.contract, input_size=size))
    save_model(path, model, meta("seed-unet", TINY, model))
    return path


@pytest.fixture(autouse=True)
def _restore_sigchld():
    """Put SIGCHLD's handler back after each test. A DataLoader with workers installs torch's process-wide
    handler once (``_set_SIGCHLD_handler``); it then runs on every later child exit in this process — every
    subprocess the rest of the suite starts. A handler left by one test must not run in another's. (The suite's
    old exit-139 crashes were such a handler running on a signal stack OpenVINO had freed; see
    ``inference.openvino.core``.)"""
    before = signal.getsignal(signal.SIGCHLD)
    yield
    if signal.getsignal(signal.SIGCHLD) is not before:
        signal.signal(signal.SIGCHLD, before if before is not None else signal.SIG_DFL)

