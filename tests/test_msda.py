import shutil

import pytest
import torch
from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

from depthforge.models import build_model
from depthforge.models import msda
from depthforge.models.msda import LevelwiseDeformableSampling

SHAPES = [(6, 8), (3, 4), (2, 2)]


def inputs(dtype=torch.float32, n=2, heads=4, dim=8, q=30, points=3, seed=0):
    """Sampling inputs; a fifth of the points fall outside the maps (zero padding) and some on their borders."""
    g = torch.Generator().manual_seed(seed)
    value = torch.randn(n, sum(h * w for h, w in SHAPES), heads, dim, generator=g, dtype=dtype)
    loc = torch.rand(n, q, heads, len(SHAPES), points, 2, generator=g, dtype=dtype) * 1.4 - 0.2
    loc[0, 0, 0, 0, 0] = torch.tensor([0.0, 1.0], dtype=dtype)  # exactly on the edges
    weights = torch.rand(n, q, heads, len(SHAPES), points, generator=g, dtype=dtype).softmax(-1)
    return [t.requires_grad_() for t in (value, loc, weights)]


def run(fn, value, loc, weights):
    out = fn(value, loc, weights)
    return (out, *torch.autograd.grad(out.square().sum(), (value, loc, weights)))


def reference(value, loc, weights):
    spatial, start = torch.tensor(SHAPES), torch.tensor([0, 48, 60])
    return MultiScaleDeformableAttention()(value, spatial, SHAPES, start, loc, weights, 64)


def fused(value, loc, weights):
    return msda.fused(value, torch.tensor(SHAPES), torch.tensor([0, 48, 60]), loc, weights)


def levelwise(value, loc, weights):
    return msda.levelwise(value, SHAPES, loc, weights)


def needs_kernel():
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler: the fused kernel cannot be built here")
    assert msda.native_kernel() is not None, "a compiler is here, yet the fused kernel did not build"


@pytest.mark.parametrize("path", ["levelwise", "fused"])
def test_sampling_matches_transformers_forward_and_backward(path):
    if path == "fused":
        needs_kernel()
    fn = {"levelwise": levelwise, "fused": fused}[path]
    x = inputs()
    ref, ours = run(reference, *x), run(fn, *x)
    for name, a, b in zip(("output", "d value", "d locations", "d weights"), ref, ours):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-5), (path, name)
    assert ref[0].abs().max() > 0.1 and ref[2].abs().max() > 0.1  # not a trivially zero comparison


def test_fused_kernel_gradients_are_exact_in_double():
    needs_kernel()
    value, loc, weights = inputs(torch.float64, n=1, heads=2, dim=3, q=5, points=2, seed=1)
    assert torch.autograd.gradcheck(fused, (value, loc, weights))


def test_the_module_takes_the_kernel_except_when_told_or_traced(monkeypatch):
    needs_kernel()
    calls = []
    real = msda.fused
    monkeypatch.setattr(msda, "fused", lambda *a: calls.append(1) or real(*a))
    module, x = LevelwiseDeformableSampling(), inputs()
    args = (torch.tensor(SHAPES), SHAPES, torch.tensor([0, 48, 60]), x[1], x[2])
    module(x[0], *args)
    assert calls == [1]
    monkeypatch.setenv("DEPTHFORGE_MSDA", "torch")
    module(x[0], *args)
    monkeypatch.delenv("DEPTHFORGE_MSDA")
    torch.jit.trace(lambda v, loc, w: module(v, args[0], SHAPES, args[2], loc, w), (x[0], x[1], x[2]),
                    check_trace=False)
    assert calls == [1]  # neither the override nor the trace (what ONNX export sees) took the kernel


def test_fused_kernel_in_bf16_returns_bf16_close_to_float32():
    needs_kernel()
    value, loc, weights = (t.detach() for t in inputs())
    exact = fused(value, loc, weights)
    half = fused(value.bfloat16(), loc.bfloat16(), weights.bfloat16())
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), exact, atol=0.05, rtol=0.02)


def test_a_failed_build_falls_back_to_pytorch_with_one_line(monkeypatch, caplog, tmp_path):
    broken = tmp_path / "msda.cpp"
    broken.write_text("this is not C++\n")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(msda, "_native", None)
    monkeypatch.setattr(msda, "SOURCE", broken)
    assert msda.native_kernel() is None and msda.native_kernel() is None
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "could not be built" in m]) == len([m for m in said if "building the" in m]) == 1
    assert "error:" in said[-1]  # the compiler's own line, not its command
    x = inputs()
    out = LevelwiseDeformableSampling()(x[0], torch.tensor(SHAPES), SHAPES, torch.tensor([0, 48, 60]), x[1], x[2])
    assert torch.allclose(out, reference(*x), atol=1e-5)


def test_a_built_kernel_loads_without_the_building_line(caplog):
    needs_kernel()
    caplog.clear()
    assert msda._build() is not None
    assert not [r for r in caplog.records if "building the" in r.getMessage()]


def test_depthformer_and_binsformer_sample_level_by_level():
    for name in ("depthformer", "binsformer"):
        model = build_model(name, size="micro")
        kinds = {type(m) for m in model.modules()}
        assert LevelwiseDeformableSampling in kinds and MultiScaleDeformableAttention not in kinds, name


@pytest.mark.parametrize("name", ["depthformer", "binsformer"])
def test_a_models_gradients_are_the_same_with_the_kernel_and_without(name, monkeypatch):
    """End to end through the family's own attention modules: one loss, every parameter's gradient. The offsets
    are moved off their initial grid first: at a whole pixel, bilinear sampling has no derivative, and float
    rounding alone picks the side each path takes."""
    needs_kernel()
    torch.manual_seed(0)
    model = build_model(name, size="micro").train()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("sampling_offsets.bias"):
                p.add_(torch.empty_like(p).uniform_(-0.4, 0.4))
    x = torch.rand(2, 3, 64, 96)
    grads = []
    for choice in ("fused", "torch"):
        monkeypatch.setenv("DEPTHFORGE_MSDA", choice)
        torch.manual_seed(1)  # the same dropout masks
        model.zero_grad()
        model(x).log().square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    sampled = [n for n in grads[0] if "sampling_offsets" in n]
    assert sampled and all(grads[0][n].abs().max() > 0 for n in sampled)  # the kernel's location gradients reach them
    # float32: the two paths sum in other orders, so relative to each gradient's scale, and to the largest one for
    # gradients that are rounding of an exact zero (a bias before a softmax or a batch norm)
    largest = max(g.abs().max() for g in grads[1].values())
    for n in grads[0]:
        assert (grads[0][n] - grads[1][n]).abs().max() <= 1e-3 * grads[1][n].abs().max() + 1e-6 * largest, n
