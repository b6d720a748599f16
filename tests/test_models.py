import pytest
import torch

from depthforge.models import MODELS, build_model, count_parameters


def test_seed_unet_matches_the_seeds_keras_parameter_count():
    model = build_model("seed-unet")
    assert count_parameters(model) == 8_634_593
    moving = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert count_parameters(model) + moving == 8_638_433


def test_seed_unet_layers_follow_the_seed():
    model = build_model("seed-unet")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs[:8]] == [32, 32, 64, 64, 128, 128, 256, 256]
    acts = [m for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert acts and all(a.negative_slope == 0.2 for a in acts)
    assert convs[-1].out_channels == 1


@pytest.mark.parametrize("width,levels,size", [(1.0, 4, (48, 64)), (0.5, 3, (40, 56)), (0.25, 5, (64, 96))])
def test_output_is_metres_at_input_size(width, levels, size):
    model = build_model("seed-unet", width=width, levels=levels, max_depth=10.0).eval()
    with torch.no_grad():
        y = model(torch.rand(2, 3, *size))
    assert y.shape == (2, 1, *size)
    assert float(y.min()) >= 0 and float(y.max()) <= 10.0
    assert model.metric and model.multiple == 2**levels


def test_normalized_head_is_relative_and_in_unit_range():
    model = build_model("seed-unet", width=0.25, head="normalized").eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 32, 32))
    assert not model.metric and float(y.max()) <= 1.0


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match="seed-unet"):
        build_model("nope")
    assert "seed-unet" in MODELS
