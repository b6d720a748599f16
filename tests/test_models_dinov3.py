"""DINOv3 encoders: the ViT and ConvNeXt backbones against transformers' own DINOv3 models loaded from the same
``save_pretrained`` folder (a real DINOv3 checkpoint's layout: DINOv3ViTModel / DINOv3ConvNextModel weights), and
the families over them (``dinov3-dpt``, ``dinov3-unet``) loading such a folder as their encoder."""
from __future__ import annotations

import pytest
import torch

from conftest import liven
from depthforge.errors import DepthforgeError
from depthforge.models import build_model
from depthforge.models.backbones import SIZES, build_backbone


def save_dinov3(folder, family: str):
    """A random DINOv3 image model of the family's micro size, saved as the hub's checkpoints are."""
    import transformers

    kind = {"dinov3_vit": "DINOv3ViT", "dinov3_convnext": "DINOv3ConvNext"}[family]
    torch.manual_seed(0)
    model = getattr(transformers, f"{kind}Model")(getattr(transformers, f"{kind}Config")(**SIZES[family]["micro"][1]))
    liven(model)
    model.save_pretrained(folder)
    return model.eval()


def test_vit_features_are_transformers_layer_normed_patch_tokens(tmp_path):
    reference = save_dinov3(tmp_path, "dinov3_vit")
    backbone = build_backbone("dinov3_vit", pretrained=str(tmp_path)).eval()
    x = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        feats = backbone(x)
        hidden = reference(x, output_hidden_states=True).hidden_states
    cfg = reference.config
    skip = 1 + cfg.num_register_tokens  # the class and register tokens
    assert [f.shape for f in feats] == [(2, cfg.hidden_size, 3, 5)] * 4 and backbone.multiple == 16
    for f, layer in zip(feats, (1, 2, 3, 4)):  # four evenly spaced layers of 4
        tokens = reference.norm(hidden[layer])[:, skip:]
        expected = tokens.transpose(1, 2).reshape(f.shape)
        assert float(expected.std()) > 0.1 and torch.allclose(f, expected, atol=1e-5, rtol=0)


def test_convnext_features_are_transformers_stage_outputs(tmp_path):
    reference = save_dinov3(tmp_path, "dinov3_convnext")
    backbone = build_backbone("dinov3_convnext", pretrained=str(tmp_path)).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats = backbone(x)
        hidden = reference(x, output_hidden_states=True).hidden_states
    assert backbone.strides == [4, 8, 16, 32] and backbone.multiple == 32
    for f, expected in zip(feats, hidden[1:]):
        assert float(expected.std()) > 0.1 and torch.allclose(f, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,family", [("dinov3-dpt", "dinov3_vit"), ("dinov3-unet", "dinov3_convnext")])
def test_families_take_a_dinov3_folder_as_encoder(name, family, tmp_path):
    reference = save_dinov3(tmp_path, family)
    model = build_model(name, pretrained=str(tmp_path)).eval()
    ours = model.encoder().model.state_dict()
    theirs = {k.removeprefix("model."): v for k, v in reference.state_dict().items()}
    assert all(torch.equal(v, theirs[k.removeprefix("model.")]) for k, v in ours.items())
    with torch.no_grad():
        y = model(torch.rand(1, 3, 64, 96))
    assert y.shape == (1, 1, 64, 96) and torch.isfinite(y).all()


def test_another_models_folder_is_refused_in_one_line(tmp_path):
    save_dinov3(tmp_path, "dinov3_convnext")
    with pytest.raises(DepthforgeError, match="dinov3_convnext model, not a dinov3_vit backbone") as e:
        build_model("dinov3-dpt", pretrained=str(tmp_path))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["dinov3-dpt", "dinov3-unet"])
def test_onnx_export_follows_the_input_size(name, tmp_path):
    """The export is checked by onnxruntime at another batch and size than traced: the head's upsampling and
    DINOv3's rotary position embedding must follow the input."""
    from depthforge.inference.export import export_module
    from depthforge.models.checkpoint import meta

    torch.manual_seed(0)
    model = build_model(name, size="micro").eval()
    result = export_module(model, meta(name, {"size": "micro"}, model), tmp_path / "m.onnx")
    assert result["max_abs_diff"] <= 1e-4
