"""The smp-style U-Net over transformers backbones (resnet-unet, convnext-unet), at the "micro" backbone size."""
import time

import pytest
import torch

from depthforge.errors import DepthforgeError
from depthforge.inference.resize import infer
from depthforge.models import MODELS, build_model
from depthforge.models.base import IMAGENET_MEAN, IMAGENET_STD

NAMES = ["resnet-unet", "convnext-unet"]


def micro(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name, size="micro", max_depth=10.0)


@pytest.mark.parametrize("name", NAMES)
def test_odd_size_padded_to_the_multiple_gives_metres_at_input_size(name):
    model = micro(name).eval()
    assert model.multiple == 32
    with torch.no_grad():
        y = infer(model, torch.rand(2, 3, 45, 71), multiple=model.multiple)
    assert y.shape == (2, 1, 45, 71)
    assert torch.isfinite(y).all() and float(y.min()) > 0 and float(y.max()) < 10.0
    with pytest.raises(DepthforgeError, match="not a multiple of 32"):
        model(torch.rand(1, 3, 45, 71))


@pytest.mark.parametrize("name", NAMES)
def test_contract_and_encoder(name):
    model = micro(name)
    c = model.contract
    assert (c.output, c.max_depth, c.multiple) == ("metric", 10.0, 32)
    assert (c.mean, c.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert MODELS.info[name]["family"]
    enc = model.encoder()
    assert enc is model.backbone
    assert {id(p) for p in enc.parameters()} < {id(p) for p in model.parameters()}


def test_decoder_follows_smp():
    """smp's Unet decoder: channels (256, 128, 64, 32, 16); skips at 1/16, 1/8, 1/4; none at 1/2 and 1/1."""
    model = micro("resnet-unet")
    c1, c2, c3, c4 = model.backbone.channels
    first_convs = [block.convs[0][0] for block in model.blocks]
    assert [c.in_channels for c in first_convs] == [c4 + c3, 256 + c2, 128 + c1, 64, 32]
    assert [c.out_channels for c in first_convs] == [256, 128, 64, 32, 16]
    assert all(c.bias is None for c in first_convs)  # conv -> BN -> ReLU
    assert model.head.out_channels == 1


@pytest.mark.parametrize("name", NAMES)
def test_rebuild_from_spec_kwargs_and_state_dict_is_identical(name):
    model = micro(name)
    model.train()
    model(torch.rand(2, 3, 64, 64))  # moves the BatchNorm statistics away from their init
    model.eval()
    spec = model.spec_kwargs({"size": "micro", "max_depth": 10.0})
    assert spec["pretrained"] is None and isinstance(spec["backbone_config"], dict)
    torch.manual_seed(123)  # a different random init, overwritten by the state dict
    again = build_model(name, **spec).eval()
    again.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_with_dynamic_batch_and_size_matches_pytorch(name, tmp_path):
    """The project's export (dynamic batch, height and width), checked by onnxruntime at another batch and size
    than traced: the deformable attention's level shapes must follow the input."""
    from depthforge.inference.export import export_module
    from depthforge.models.checkpoint import meta

    model = micro(name).eval()
    result = export_module(model, meta(name, {"size": "micro"}, model), tmp_path / "m.onnx")
    assert result["max_abs_diff"] <= 1e-4


def test_hub_id_without_network_is_one_line_error_fast(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(DepthforgeError) as e:
        build_model("resnet-unet", pretrained="depthforge-tests/no-such-resnet")
    assert time.monotonic() - start < 10
    assert "\n" not in str(e.value) and "depthforge-tests/no-such-resnet" in str(e.value)
    with pytest.raises(DepthforgeError, match="no pretrained weights"):
        build_model("convnext-unet", size="micro", pretrained=True)


def test_a_numeric_size_from_a_recipe_names_the_resnet():
    """`model.size=34` on the command line reads as the int 34; it must build ResNet-34, as "34" does."""
    from depthforge.models.backbones import build_backbone

    def count(size):
        return sum(p.numel() for p in build_backbone("resnet", size).parameters())

    assert count(34) == count("34") > count("18")
