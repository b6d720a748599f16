import torch
from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

from depthforge.models import build_model
from depthforge.models.msda import LevelwiseDeformableSampling


def test_levelwise_sampling_matches_the_reference_forward_and_backward():
    torch.manual_seed(0)
    n, heads, dim, q, points = 2, 4, 8, 30, 3
    shapes = [(6, 8), (3, 4), (2, 2)]
    value = torch.randn(n, sum(h * w for h, w in shapes), heads, dim, requires_grad=True)
    loc = torch.rand(n, q, heads, len(shapes), points, 2, requires_grad=True)
    weights = torch.rand(n, q, heads, len(shapes), points).softmax(-1).requires_grad_()
    spatial, start = torch.tensor(shapes), torch.tensor([0, 48, 60])
    results = []
    for module in (MultiScaleDeformableAttention(), LevelwiseDeformableSampling()):
        out = module(value, spatial, shapes, start, loc, weights, 64)
        grads = torch.autograd.grad(out.square().sum(), (value, loc, weights))
        results.append((out, *grads))
    for ref, ours in zip(*results):
        assert ref.shape == ours.shape and torch.allclose(ref, ours, atol=1e-5, rtol=1e-5)
    assert results[0][0].abs().max() > 0.1  # not a trivially zero comparison


def test_depthformer_and_binsformer_sample_level_by_level():
    for name in ("depthformer", "binsformer"):
        model = build_model(name, size="micro")
        kinds = {type(m) for m in model.modules()}
        assert LevelwiseDeformableSampling in kinds and MultiScaleDeformableAttention not in kinds, name
