"""DepthFormer (Swin + conv stem, HAHI neck, DenseDepth decoder) at the "micro" size."""
import time

import numpy as np
import pytest
import torch
from transformers.models.deformable_detr.modeling_deformable_detr import DeformableDetrMultiscaleDeformableAttention

from depthforge.errors import DepthforgeError
from depthforge.inference.resize import infer
from depthforge.losses import build_loss
from depthforge.models import MODELS, build_model
from depthforge.models.base import IMAGENET_MEAN, IMAGENET_STD


def micro(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return build_model("depthformer", size="micro", **kwargs)


def test_odd_size_padded_to_the_multiple_gives_metres_at_input_size():
    model = micro(max_depth=10.0).eval()
    with torch.no_grad():
        y = infer(model, torch.rand(2, 3, 45, 71), multiple=model.multiple)
    assert y.shape == (2, 1, 45, 71)
    assert torch.isfinite(y).all() and float(y.min()) >= 1e-3 and float(y.max()) <= 10.0
    with pytest.raises(DepthforgeError, match="not a multiple of 32"):
        model(torch.rand(1, 3, 45, 71))


def test_contract_encoder_and_levels():
    model = micro(max_depth=80.0)
    c = model.contract
    assert (c.output, c.max_depth, c.multiple) == ("metric", 80.0, 32)
    assert (c.mean, c.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert "HAHI" in MODELS.info["depthformer"]["family"]
    assert model.encoder() is model.backbone and model.backbone.family == "swin"
    x = model.normalize(torch.rand(1, 3, 64, 96))
    feats = [model.stem(x), *model.backbone(x)]
    assert [f.shape[1] for f in feats] == [64, *model.backbone.channels]
    assert [f.shape[-1] for f in feats] == [48, 24, 12, 6, 3]  # 1/2 .. 1/32
    # the toolbox's Swin drop-path 0.3, spread linearly over the blocks
    probs = [m.drop_prob for m in model.backbone.modules() if type(m).__name__ == "SwinDropPath"]
    assert probs and max(probs) == pytest.approx(0.3)


def test_hahi_interacts_across_levels_and_branches():
    """HI: a change at 1/32 reaches the 1/4 level (deformable self-attention over all four levels);
    HA: it reaches the 1/2 conv level too (the conv feature queries the transformer tokens)."""
    model = micro().eval()
    neck = model.neck
    attns = [m for m in neck.modules() if isinstance(m, DeformableDetrMultiscaleDeformableAttention)]
    assert len(attns) == 2 and all((a.n_heads, a.n_points, a.n_levels) == (8, 8, 4) for a in attns)
    torch.manual_seed(1)
    feats = [torch.randn(1, c, 32 // 2**i, 48 // 2**i) for i, c in enumerate([64, *model.backbone.channels])]
    changed = list(feats)
    changed[4] = feats[4] + torch.randn_like(feats[4])
    with torch.no_grad():
        a, b = neck(feats), neck(changed)
    assert [o.shape for o in a] == [f.shape for f in feats]
    assert not torch.allclose(a[1], b[1])  # 1/4 transformer level
    assert not torch.allclose(a[0], b[0])  # 1/2 conv level


def test_rebuild_from_spec_kwargs_and_state_dict_is_identical():
    model = micro(embed_dim=16)
    model.train()
    model(torch.rand(2, 3, 64, 64))  # moves the BatchNorm statistics away from their init
    model.eval()
    spec = model.spec_kwargs({"size": "micro", "embed_dim": 16})
    assert spec["pretrained"] is None and isinstance(spec["backbone_config"], dict)
    torch.manual_seed(123)
    again = build_model("depthformer", **spec).eval()
    again.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_onnx_export_with_dynamic_batch_and_size_matches_pytorch(tmp_path):
    """The project's export (dynamic batch, height and width), checked by onnxruntime at another batch and size
    than traced: the deformable attention's level shapes must follow the input."""
    from depthforge.inference.export import export_module
    from depthforge.models.checkpoint import meta

    model = micro().eval()
    torch.nn.init.normal_(model.out.weight, std=0.05)  # an output that varies, so the comparison means something
    result = export_module(model, meta("depthformer", {"size": "micro"}, model), tmp_path / "m.onnx")
    assert result["max_abs_diff"] <= 1e-4


def smooth_batch(n: int = 2, h: int = 32, w: int = 64, seed: int = 0):
    """A fixed batch: smooth random depth (1-6 m) and an image that shows it (so there is something to learn)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 4, 4, generator=g)
    depth = 1.0 + 5.0 * torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic",
                                                        align_corners=True).clamp(0, 1)
    image = torch.cat([1 - depth / 6, (depth / 6) ** 2, torch.rand(n, 1, h, w, generator=g) * 0.1], 1)
    return image.clamp(0, 1), depth


@pytest.mark.parametrize("head", ["relu", "sigmoid"])
def test_a_few_adam_steps_lower_the_silog_loss(head):
    model = micro(head=head, embed_dim=16).train()
    image, depth = smooth_batch()
    loss_fn = build_loss("silog")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss = loss_fn(model.forward_train(image)["depth"], depth, depth > 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert min(losses[-3:]) < 0.7 * losses[0], losses


def test_bad_arguments_and_hub_id_without_network_are_one_line_errors(monkeypatch):
    import huggingface_hub.constants

    with pytest.raises(DepthforgeError, match="unknown size 'huge'"):
        build_model("depthformer", size="huge")
    with pytest.raises(DepthforgeError, match="min_depth"):
        build_model("depthformer", size="micro", min_depth=20.0, max_depth=10.0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(DepthforgeError) as e:
        build_model("depthformer", size="micro", pretrained="depthforge-tests/no-such-swin")
    assert time.monotonic() - start < 10
    assert "\n" not in str(e.value) and "depthforge-tests/no-such-swin" in str(e.value)
