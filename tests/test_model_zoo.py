"""Every registered model, in its tiny test size: the declared contract against a real forward pass, prediction
at an odd size through the predictor, a checkpoint round trip, and training steps through the training module
(its auxiliary outputs and extra losses included) with a falling loss and an output that is not constant."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from depthforge.inference.predictor import from_module
from depthforge.models import MODELS, build_model
from depthforge.models.base import OUTPUT_KINDS
from depthforge.models.checkpoint import load_checkpoint, meta, save_model

NAMES = sorted(MODELS)


def tiny(name: str):
    return build_model(name, **MODELS.info[name]["test"])


def test_every_model_has_a_test_size_and_listing_facts():
    for name in NAMES:
        info = MODELS.info[name]
        assert "test" in info and info.get("family") and info.get("weights"), name


@pytest.mark.parametrize("name", NAMES)
def test_contract_matches_a_forward_pass(name):
    torch.manual_seed(0)
    model = tiny(name).eval()
    c = model.contract
    assert c.output in OUTPUT_KINDS and c.max_depth > 0 and c.multiple >= 1
    m = c.multiple
    h, w = 2 * m if m >= 14 else 4 * m, 3 * m if m >= 14 else 6 * m
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 1, h, w) and y.dtype == torch.float32 and torch.isfinite(y).all()
    if c.output == "metric":
        assert float(y.min()) >= 0 and float(y.max()) <= c.max_depth * (1 + 1e-5)
    # normalisation happens inside: the declared mean/std are what the model subtracts and divides by
    assert torch.allclose(model.normalize(torch.ones(1, 3, 1, 1)).flatten(),
                          (1 - torch.tensor(c.mean)) / torch.tensor(c.std))


@pytest.mark.parametrize("name", NAMES)
def test_predictor_takes_an_odd_size_and_checkpoints_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = tiny(name).eval()
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3)).astype(np.uint8)
    info = meta(name, MODELS.info[name]["test"], model)
    depth = from_module(model, info, "cpu", resize="pad")(image)
    assert depth.shape == (37, 53) and np.isfinite(depth).all()
    save_model(tmp_path / "m.ckpt", model, info)
    again, _ = load_checkpoint(tmp_path / "m.ckpt")  # rebuilt offline from the saved keywords
    assert again.contract == model.contract
    assert np.array_equal(from_module(again, info, "cpu", resize="pad")(image), depth)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_training_module_steps_make_the_loss_fall(name):
    from depthforge.recipe import resolve
    from depthforge.training.module import DepthModule

    torch.manual_seed(0)
    contract = tiny(name).contract
    # affine-invariant depth (Marigold) trains with the scale-and-shift-invariant loss in depth, as its fine-tuning
    loss = ("ssi-gradient" if contract.output == "disparity" else
            "ssi-gradient, space: depth" if contract.shift else "silog")
    recipe = resolve("quick", ["model={name: %s}" % name,
                               *[f"model.{k}={v}" for k, v in MODELS.info[name]["test"].items()],
                               f"loss={{name: {loss}}}", "data.size=[56, 84]"])
    module = DepthModule(recipe)
    m = module.model.multiple
    h, w = -(-56 // m) * m, -(-84 // m) * m
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    depth = (2 + 3 * yy + torch.sin(6 * xx))[None, None].repeat(2, 1, 1, 1)  # smooth rooms of 2-6 m
    image = torch.stack([depth[:, 0] / 6, 1 - depth[:, 0] / 6, xx.expand(2, h, w)], 1)
    batch = {"image": image, "depth": depth, "valid": depth > 0}
    opt = torch.optim.Adam(module.model.parameters(), lr=1e-3)
    losses = []
    for _ in range(16):  # ZoeDepth's bins take ~12 steps to move; the others fall within 8
        loss_value = module._loss(module(batch["image"]), batch)
        opt.zero_grad()
        loss_value.backward()
        opt.step()
        losses.append(loss_value.item())
        if losses[-1] < 0.9 * losses[0]:
            break
    assert np.isfinite(losses).all() and losses[-1] < 0.9 * losses[0], losses
    # Not constant, in the output's own units (metres or disparity) and against its level: a ReLU head at its
    # kink (outputs ~1e-4, which scale-invariant losses still fit) or bins stuck on one value fail here.
    with torch.no_grad():
        depth = module.model(batch["image"])
    spread = float(depth.std())
    assert spread > max(1e-3, 1e-2 * float(depth.abs().mean())), (spread, float(depth.mean()))


@pytest.mark.parametrize("name", NAMES)
def test_a_new_network_starts_with_every_pixel_open(name):
    """Built from scratch, no output pixel is shut: a head that ends in a ReLU and starts at 0 on a pixel gets no
    gradient there, and one shut everywhere never learns (transformers' init, and PyTorch's default bias on some
    seeds, did that to DPT and Depth Anything V2)."""
    m = tiny(name).multiple
    x = torch.rand(1, 3, -(-56 // m) * m, -(-56 // m) * m)
    for seed in range(2):  # PyTorch's default last bias alone shuts a micro DPT's every pixel on seed 0
        torch.manual_seed(seed)
        model = tiny(name).eval()
        with torch.no_grad():
            y = model(x)
        assert (y > 0).all(), f"seed {seed}: {float((y <= 0).float().mean()):.0%} of the pixels at 0"
