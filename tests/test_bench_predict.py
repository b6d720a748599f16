"""``bench``'s prediction table: every runtime's latency and its agreement with PyTorch fp32 (max |Δ|, δ1 of one
against the other), the issue's target met or the gap, a Hugging Face folder as the source, a size the model
cannot take refused in one line."""
from __future__ import annotations

import json
import time

import pytest
import torch

from depthforge.bench.predict import _measure, _target, agreement, predict_table
from depthforge.bench.report import predict_markdown
from depthforge.cli import main
from depthforge.errors import DepthforgeError

from test_compare import hf_folder

ROWS = {"torch_fp32", "torch_bf16", "onnxruntime_fp32", "onnxruntime_int8", "openvino_fp32", "openvino_bf16",
        "openvino_int8"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A micro Depth Anything V2 saved as a Hugging Face folder, its weights of unit gain (``liven``)."""
    return hf_folder(tmp_path_factory.mktemp("da-v2-micro"), live=True)


def test_agreement_is_delta1_of_one_prediction_against_the_other():
    ref = torch.tensor([1.0, 2.0, 4.0, 8.0, 0.0, 0.004])  # the last two: no ratio (0, below FLOOR × 8), left out
    assert agreement(ref, ref) == 1
    pred = torch.tensor([1.2, 2.6, 4.0, -1.0, 5.0, 1.0])  # 1.2: in; 1.3: out; equal: in; negative: out
    assert agreement(pred, ref) == pytest.approx(0.5)
    assert agreement(torch.tensor([[float("nan"), 1.0], [float("inf"), 2.0]]), torch.ones(2, 2)) == 0.25  # pooled
    assert agreement(ref, pred.clamp_min(0) * 0) != agreement(ref, ref)  # a zero reference has no pixels
    assert agreement(torch.ones(3), torch.zeros(3)) != agreement(torch.ones(3), torch.zeros(3))  # NaN


def test_target_names_the_gap():
    row = {"speedup_vs_torch_fp32": 2.5, "disagreement": 0.034}
    _target(row)
    assert not row["target_met"] and row["gap"] == "2.50x of 5x (2.0x short); δ1 disagreement 3.40 % > 1 %"
    row = {"speedup_vs_torch_fp32": 6.0, "disagreement": 0.004}
    _target(row)
    assert row["target_met"] and "gap" not in row


def test_a_slow_runtime_is_timed_and_compared_within_its_budget():
    calls = []

    def slow(x):
        calls.append(x)
        time.sleep(0.05)
        return x[:, :1]

    images = torch.rand(6, 3, 4, 4)
    row = _measure(slow, images, None, n=5, test_n=6, budget=0.06)  # one call fits: one timed, one image
    assert row["repeats"] == 1 and row["images"] == 1 and len(calls) == 2 and row["ms"] >= 50
    assert torch.equal(row["preds"], images[:1, :1])
    calls.clear()
    row = _measure(slow, images, None, n=3, test_n=6, budget=10)
    assert row["repeats"] == 3 and row["images"] == 6 and len(calls) == 1 + 3 + 5
    assert row["ms"] <= row["ms_median"] and torch.equal(row["preds"], images[:, :1])


@pytest.mark.slow
def test_every_runtime_on_a_hugging_face_folder_against_pytorch_fp32(folder):
    p = predict_table(folder, size=(28, 42), test_n=2, calib_n=1, n=1)
    json.dumps(p)
    assert p["size"] == [28, 42] and p["output"] == "disparity" and set(p["backends"]) == ROWS
    for name, row in p["backends"].items():
        assert "error" not in row, (name, row)
        assert row["ms"] > 0 and row["images"] == 2 and 0 <= row["d1_agreement"] <= 1
        assert row["disagreement"] == pytest.approx(1 - row["d1_agreement"])
        assert isinstance(row["target_met"], bool) and row["target_met"] != ("gap" in row)
    rows = p["backends"]
    assert rows["torch_fp32"]["max_abs_diff"] == 0 and rows["torch_fp32"]["disagreement"] == 0
    assert rows["torch_fp32"]["gap"].startswith("1.00x of 5x")  # the reference is never 5x itself
    for name in ("onnxruntime_fp32", "openvino_fp32"):  # the same network in fp32
        assert rows[name]["max_abs_diff"] < 1e-3 and rows[name]["disagreement"] < 1e-3
    table = predict_markdown(p)
    assert table.count("\n") == 2 + len(ROWS) - 1 and "| PyTorch fp32 (28×42) |" not in table
    assert "| onnxruntime int8 |" in table


@pytest.mark.slow
def test_a_model_with_its_weights_beside_the_graph_is_timed_without_int8(folder, monkeypatch):
    """Depth Pro's 3.8 GB export keeps its weights in NAME.onnx.data, which int8 quantisation does not take: the
    table still times every other runtime, and the int8 rows say why they are empty (here with the threshold
    lowered to 0)."""
    from depthforge.inference import export

    monkeypatch.setattr(export, "EXTERNAL_ABOVE", 0)
    p = predict_table(folder, size=(28, 42), test_n=1, calib_n=1, n=1)
    rows = p["backends"]
    for name in ("onnxruntime_int8", "openvino_int8"):
        assert "no int8 model: int8 quantisation takes models of up to 0.0 GB" in rows[name]["error"]
    for name in ROWS - {"onnxruntime_int8", "openvino_int8"}:
        assert "error" not in rows[name], (name, rows[name])
    assert rows["onnxruntime_fp32"]["max_abs_diff"] < 1e-3 and rows["openvino_fp32"]["max_abs_diff"] < 1e-3


@pytest.mark.slow  # the CLI measures the matrix-multiply ceiling first: ~15 s
def test_a_size_that_is_not_a_multiple_of_the_patch_is_one_line(folder, capsys):
    with pytest.raises(DepthforgeError, match=r"^bench --predict-size 30 42: depth-anything-v2 takes sides that are "
                                              r"multiples of 14 \(its size multiple\); e.g. --predict-size 28 42$"):
        predict_table(folder, size=(30, 42))
    capsys.readouterr()
    # through the CLI: the table runs in a subprocess, whose bad input becomes the parent's one line and exit 1
    code = main(["bench", "--only", "predict", "--checkpoint", str(folder), "--predict-size", "266", "351", "--json"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == ("error: bench --predict-size 266 351: depth-anything-v2 takes sides that are "
                                 "multiples of 14 (its size multiple); e.g. --predict-size 266 350")


def test_int8_ops_conv_matmul_quantises_a_transformers_matrix_products_too(folder, tmp_path, capsys):
    """``--int8-ops conv,matmul`` (export and bench) also quantises MatMul/Gemm — a ViT's linear layers, where its
    time goes — and the result still runs and tracks fp32; a bad list is one line before anything is written."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from depthforge.inference.export import export_module
    from depthforge.inference.load import open_module
    from depthforge.inference.quantize import parse_ops, quantize_onnx

    assert parse_ops("conv") == ("Conv",) and parse_ops(" Conv , matmul") == ("Conv", "MatMul", "Gemm")
    for bad in ("", "conv,attention"):
        with pytest.raises(DepthforgeError, match="--int8-ops .*conv, matmul"):
            parse_ops(bad)
    model, info, _ = open_module(folder)
    src = tmp_path / "m.onnx"
    export_module(model, info, src, check=False)
    x = torch.rand(2, 3, 28, 42)
    calib = [x[i:i + 1].numpy() for i in range(2)]
    ref = model.eval()(x).detach().numpy()
    counts = {}
    for ops in ("conv", "conv,matmul"):
        dst = tmp_path / f"{ops.replace(',', '_')}.onnx"
        quantize_onnx(src, dst, calib, ops=parse_ops(ops))
        graph = onnx.load(str(dst)).graph
        quantised = {n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
        counts[ops] = {op: sum(n.op_type == op and any(i in quantised or i.endswith("DequantizeLinear_Output")
                                                        for i in n.input) for n in graph.node)
                       for op in ("Conv", "MatMul")}
        sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
        out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.9, ops
    assert counts["conv"]["Conv"] > 0 and counts["conv"]["MatMul"] == 0
    assert counts["conv,matmul"]["MatMul"] > 0 and counts["conv,matmul"]["Conv"] == counts["conv"]["Conv"]
    assert main(["export", "--checkpoint", str(folder), "--onnx", str(tmp_path / "x.onnx"), "--int8",
                 "--int8-ops", "conv,bins"]) == 1
    assert "--int8-ops 'conv,bins'" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
