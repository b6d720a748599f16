"""ONNX export: metadata, dynamic shapes, parity with PyTorch (<= 1e-4 m) on real and synthetic images."""
from __future__ import annotations

import io
import json

import numpy as np
import onnx
import pytest
import torch
from dataclasses import replace

import depthforge
from depthforge import DepthforgeError, build_model
from depthforge.models.checkpoint import meta, save_model
from depthforge.cli import main
from depthforge.inference.export import export_onnx
from depthforge.inference.onnx import load_onnx

KWARGS = {"width": 0.25, "levels": 3}
TOL = 1e-4  # metres


def trained_like_model(seed=0):
    """A small seed U-Net whose BatchNorm statistics are not the identity, as after training."""
    torch.manual_seed(seed)
    model = build_model("seed-unet", **KWARGS)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    ckpt = tmp / "model.ckpt"
    model = trained_like_model()
    model.set_contract(replace(model.contract, input_size=(96, 128)))
    save_model(ckpt, model, meta("seed-unet", KWARGS, model))
    result = export_onnx(ckpt, tmp / "model.onnx")
    return ckpt, tmp / "model.onnx", result


def test_export_writes_metadata_and_dynamic_axes(exported):
    ckpt, path, result = exported
    assert result["path"] == str(path) and result["opset"] == 17 and result["max_abs_diff"] < TOL
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["depthforge"]) == depthforge.load(ckpt).info
    contract = json.loads(props["depthforge.contract"])
    assert (contract["output"], contract["max_depth"], contract["multiple"]) == ("metric", 10.0, 8)
    assert contract["input_size"] == [96, 128]
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert model.graph.input[0].name == "image" and dims == ["batch", "", "height", "width"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.ckpt", "model.onnx"]  # atomic


def test_onnx_predictor_has_the_same_api(exported):
    ckpt, path, _ = exported
    p, q = depthforge.load(ckpt, device="cpu"), depthforge.load(path)
    assert q.backend.details["providers"] == ["CPUExecutionProvider"] and q.module is None
    assert (q.metric, q.max_depth, q.multiple, q.train_size, q.info) == (p.metric, p.max_depth, p.multiple,
                                                                        p.train_size, p.info)
    depths = q([np.zeros((33, 47), np.uint8), np.ones((20, 20, 4), np.uint8)])
    assert [d.shape for d in depths] == [(33, 47), (20, 20)] and depths[0].dtype == np.float32


@pytest.mark.parametrize("resize", ["train", "pad"])
def test_parity_on_real_photos(exported, realdata, resize):
    ckpt, path, _ = exported
    p, q = depthforge.load(ckpt, device="cpu"), depthforge.load(path)
    for photo in ("nyu/rgb_1.png", "kitti/rgb_0000000005.png", "sunrgbd/rgb.jpg"):
        a, b = p(realdata / photo, resize=resize), q(realdata / photo, resize=resize)
        assert a.shape == b.shape
        diff = float(np.abs(a - b).max())
        assert diff <= TOL, f"{photo} ({resize}): ONNX differs from PyTorch by {diff:.2e} m"
        assert np.ptp(a) > 1e-3  # the model's output really varies over the image


def test_parity_on_synthetic_images_and_batches(exported):
    ckpt, path, _ = exported
    p, q = depthforge.load(ckpt, device="cpu"), depthforge.load(path)
    g = torch.Generator().manual_seed(0)
    for shape in [(1, 3, 96, 128), (3, 3, 64, 200), (2, 3, 123, 171), (1, 3, 8, 8)]:
        x = torch.rand(shape, generator=g)
        for flip in (False, True):
            a, b = p.predict_tensor(x, resize="pad", flip=flip), q.predict_tensor(x, resize="pad", flip=flip)
            assert a.shape == b.shape == (shape[0], 1, *shape[2:])
            assert float((a - b).abs().max()) <= TOL
    # smooth synthetic scene: a gradient with a box, through the resize-to-training-size path
    yy, xx = np.mgrid[0:240, 0:320] / np.array([240.0, 320.0])[:, None, None]
    scene = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1).astype(np.float32)
    scene[80:160, 100:200] = [0.9, 0.2, 0.1]
    assert float(np.abs(p(scene) - q(scene)).max()) <= TOL


def test_dynamo_exporter(exported, tmp_path):
    ckpt, _, _ = exported
    result = export_onnx(ckpt, tmp_path / "dynamo.onnx", exporter="dynamo")
    assert result["opset"] == 18 and result["max_abs_diff"] <= TOL
    x = torch.rand(2, 3, 40, 56)
    np.testing.assert_allclose(depthforge.load(tmp_path / "dynamo.onnx").predict_tensor(x, resize="pad"),
                               depthforge.load(ckpt).predict_tensor(x, resize="pad"), atol=TOL)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_a_model_over_the_one_file_limit_keeps_its_weights_beside_the_graph(exported, tmp_path, monkeypatch,
                                                                             exporter):
    """Over 2 GiB a protobuf cannot hold the model (Depth Pro: 3.8 GB of weights). Above the threshold (here 0)
    the weights go to NAME.onnx.data beside the graph, which both runtimes read; int8 refuses such a model."""
    from depthforge.inference import export
    from depthforge.inference.quantize import quantize_onnx

    ckpt, _, _ = exported
    monkeypatch.setattr(export, "EXTERNAL_ABOVE", 0)
    out = tmp_path / "out" / "big.onnx"
    result = export_onnx(ckpt, out, exporter=exporter)
    data = out.with_name("big.onnx.data")
    assert result["data"] == str(data) and sorted(p.name for p in out.parent.iterdir()) == ["big.onnx",
                                                                                            "big.onnx.data"]
    assert result["bytes"] == out.stat().st_size + data.stat().st_size and data.stat().st_size > out.stat().st_size
    assert result["max_abs_diff"] <= TOL
    x = torch.rand(2, 3, 40, 56)
    ref = depthforge.load(ckpt).predict_tensor(x, resize="pad")
    for runtime in ("onnxruntime", "openvino"):
        got = depthforge.load(out, runtime=runtime).predict_tensor(x, resize="pad")
        np.testing.assert_allclose(got, ref, atol=TOL)
    with pytest.raises(DepthforgeError, match=r"big\.onnx: its weights are in an external data file"):
        quantize_onnx(out, tmp_path / "q.onnx", [np.zeros((1, 3, 96, 128), np.float32)])
    with pytest.raises(DepthforgeError, match=r"int8 quantisation takes models of up to 0\.0 GB"):
        export_onnx(ckpt, tmp_path / "again.onnx", int8=2)
    assert not (tmp_path / "again.onnx").exists()


def test_the_export_traces_without_autograd(tmp_path):
    """With autograd on, the (default) TorchScript exporter's trace keeps every activation for a backward pass
    that never comes (a 0.4 GB Depth Pro at its 1536x1536: 17.8 GB peak against 6.4 GB; the real one's export was
    killed at 24 GB): the model runs with gradients off."""
    from depthforge.inference.export import export_module

    model = trained_like_model()
    seen, forward = [], model.forward

    def recording(x):
        seen.append(torch.is_grad_enabled())
        return forward(x)

    model.forward = recording
    export_module(model, meta("seed-unet", KWARGS, model), tmp_path / "m.onnx", check=False)
    assert seen and not any(seen)


def test_cli_export(exported, tmp_path, capsys):
    ckpt, _, _ = exported
    assert main(["export", "--checkpoint", str(ckpt), "--onnx", str(tmp_path / "cli.onnx"), "--opset", "18"]) == 0
    out = capsys.readouterr().out
    assert "cli.onnx" in out and "opset 18" in out and "max |difference|" in out
    assert (tmp_path / "cli.onnx").is_file()
    assert main(["export", "--checkpoint", str(tmp_path / "nope.ckpt"), "--onnx", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path / 'nope.ckpt'}: checkpoint not found"
    assert main(["export", "--checkpoint", str(ckpt), "--onnx", str(tmp_path / "x.bin")]) == 1
    assert "must end in .onnx" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_loading_foreign_or_damaged_onnx_files(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(DepthforgeError, match="junk.onnx: not a loadable ONNX model"):
        depthforge.load(tmp_path / "junk.onnx")
    buf = io.BytesIO()
    torch.onnx.export(torch.nn.Conv2d(3, 1, 1), (torch.rand(1, 3, 4, 4),), buf, dynamo=False)
    (tmp_path / "plain.onnx").write_bytes(buf.getvalue())
    with pytest.raises(DepthforgeError, match="plain.onnx: not a depthforge export"):
        depthforge.load(tmp_path / "plain.onnx")
    with pytest.raises(DepthforgeError, match="missing.onnx: ONNX model not found"):
        load_onnx(tmp_path / "missing.onnx")


def test_cli_int8_export_calibrates_on_the_recipe_data(tmp_path, capsys):
    """--int8 writes NAME-int8.onnx calibrated on training images of the checkpoint's recipe, loadable by
    onnxruntime and OpenVINO behind the same predictor."""
    import depthforge

    run = tmp_path / "run"
    assert main(["train", f"out={run}", "data.n=12", "data.size=[32,48]", "test_data.n=2", "model.width=0.125",
                 "model.levels=3", "train.epochs=1", "train.batch_size=4", "--no-progress"]) == 0
    assert main(["export", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), "--onnx",
                 str(tmp_path / "m.onnx"), "--int8", "6"]) == 0
    assert "m-int8.onnx (int8, calibrated on 6 training images)" in capsys.readouterr().out
    photo = np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8)
    ref = depthforge.load(run / "checkpoints" / "last.ckpt", device="cpu")(photo)
    assert ref.std() > 0.003  # the float model's depth varies over the photo (measured: 0.013 m)
    for runtime in ("onnxruntime", "openvino"):
        depth = depthforge.load(tmp_path / "m-int8.onnx", runtime=runtime)(photo)
        assert depth.shape == ref.shape and np.abs(depth - ref).max() < 0.5  # int8 of a 10 m range
        # and follows it pixel by pixel (measured: correlation 0.996), which a constant map within range does not
        assert np.corrcoef(depth.ravel(), ref.ravel())[0, 1] > 0.9, runtime
