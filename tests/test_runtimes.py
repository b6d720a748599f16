"""int8 (onnxruntime QDQ) and OpenVINO back ends against PyTorch fp32 on real photos; metadata, files, errors."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from depthforge import build_model
from depthforge.errors import DepthforgeError
from depthforge.inference.export import export_module
from depthforge.inference.openvino import core, load_openvino, openvino_forward, save_openvino
from depthforge.inference.quantize import calibration_images, quantize_onnx, read_export_metadata
from depthforge.models.checkpoint import meta

from conftest import REALDATA, TINY

SIZE = (96, 128)  # a multiple of the tiny U-Net's 8
# Worst pixel of the depth difference vs PyTorch fp32 on held-out photos, in metres, for the tiny model below
# whose depth spans 2.3-6.9 m (std 0.35); measured 0.058 (int8, onnxruntime and OpenVINO; mean 0.011),
# 0.017 (OpenVINO bf16), 1.4e-6 (OpenVINO fp32). About twice the measured worst case.
TOL = {"fp32": 1e-4, "bf16": 0.04, "int8": 0.12}


def _photos(names) -> list[Path]:
    paths = [REALDATA / "nyu" / f"rgb_{i}.png" for i in names]
    if not all(p.exists() for p in paths):
        pytest.skip(f"{REALDATA} not present (../shared is absent)")
    return paths


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny seed U-Net exported to ONNX, and the module. A random U-Net's depth is nearly flat (~0.01 m
    spread), which would hide quantisation errors; scaling its output conv makes depth vary with the image."""
    torch.manual_seed(0)
    model = build_model("seed-unet", **TINY).eval()
    with torch.no_grad():
        model.out.weight *= 30
        model.out.bias.zero_()
    path = tmp_path_factory.mktemp("rt") / "tiny.onnx"
    model.set_contract(replace(model.contract, input_size=SIZE))
    export_module(model, meta("seed-unet", TINY, model), path, check=False)
    return path, model


@pytest.fixture(scope="module")
def int8(exported, tmp_path_factory):
    src, _ = exported
    dst = tmp_path_factory.mktemp("rt") / "tiny-int8.onnx"
    calib = calibration_images(_photos((1, 2)), SIZE)
    return quantize_onnx(src, dst, calib)


def _held_out(model) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.concatenate(calibration_images(_photos((3, 4, 5)), SIZE, flips=False)))
    with torch.no_grad():
        return x, model(x)


def _check_close(depth: torch.Tensor, ref: torch.Tensor, tol: float) -> None:
    assert depth.shape == ref.shape and depth.dtype == torch.float32
    assert float(ref.std()) > 0.2  # the check means something only if depth varies
    assert float((depth - ref).abs().max()) < tol
    corr = np.corrcoef(depth.flatten().numpy(), ref.flatten().numpy())[0, 1]
    assert corr > 0.99


def test_int8_close_to_torch(exported, int8):
    import onnxruntime as ort

    _, model = exported
    assert int8["images"] == 4 and int8["size"] == list(SIZE) and int8["quantized"] > 0
    assert int8["bytes"] < 0.5 * int8["src_bytes"]  # int8 weights
    x, ref = _held_out(model)
    session = ort.InferenceSession(int8["path"], providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in __import__("onnx").load(int8["path"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    depth = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
    _check_close(depth, ref, TOL["int8"])


def test_metadata_carried_through(exported, int8, tmp_path):
    src, _ = exported
    before, after = read_export_metadata(src), read_export_metadata(int8["path"])
    assert before == after and after[1].multiple == 8 and after[1].input_size == SIZE
    _, info = openvino_forward(int8["path"])
    assert (info["depthforge"], info["contract"]) == before
    predictor = load_openvino(int8["path"])  # the same Predictor as PyTorch's, on the OpenVINO back end
    assert predictor.backend.name == "openvino" and predictor.train_size == SIZE
    assert predictor(np.zeros((50, 70, 3), np.uint8)).shape == (50, 70)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_close_to_torch(exported, precision):
    path, model = exported
    x, ref = _held_out(model)
    forward, info = openvino_forward(path, precision)
    # bf16 where the CPU has it; OpenVINO runs a bf16 hint as f32 elsewhere (AVX2 only), and says so
    runs = {"fp32": "f32", "bf16": "bf16" if _native_bf16() else "f32"}[precision]
    assert info["precision"] == precision and info["inference_precision"] == runs
    _check_close(forward(x), ref, TOL[precision])


@pytest.mark.parametrize("fast", [False, True])
def test_openvino_auto_takes_bf16_only_where_it_is_the_faster(exported, monkeypatch, fast):
    """OpenVINO's own default is bf16 wherever the CPU has AVX512-BF16, where without AMX it is slower (DA-V2
    Small at 518x518: 742 ms against 435 ms in f32); "auto" asks for bf16 only where ``fast_bf16`` says so."""
    from depthforge.inference import openvino

    path, model = exported
    monkeypatch.setattr(openvino, "fast_bf16", lambda: fast)
    forward, info = openvino_forward(path, "auto")
    assert info["inference_precision"] == ("bf16" if fast and _native_bf16() else "f32")
    x, ref = _held_out(model)
    _check_close(forward(x), ref, TOL["bf16" if fast else "fp32"])


def _native_bf16() -> bool:
    return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _vnni() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return any(f in flags.split() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def test_openvino_int8_close_to_torch(exported, int8):
    """Without VNNI (AVX2 only, e.g. the AMD EPYC here) OpenVINO multiplies u8 by s8 with pmaddubsw, whose int16
    pair sums saturate: the largest error grows (0.140 m measured against <= 0.12 with VNNI/AMX) while the typical
    error stays about 1 % of the depth, which the mean bound checks on every CPU."""
    _, model = exported
    x, ref = _held_out(model)
    forward, _ = openvino_forward(int8["path"], "auto", threads=1)
    depth = forward(x)
    _check_close(depth, ref, TOL["int8"] if _vnni() else 0.2)
    assert float((depth - ref).abs().mean()) < 0.04  # 0.027 m measured on the AMD EPYC, depths of 2-7 m


def test_openvino_leaves_a_usable_signal_stack(exported):
    """OpenVINO's CPU plugin swaps the thread's signal stack in and out with each Core; two Cores released in the
    order they were made used to leave it on freed memory, and the next Python signal handler — here a SIGCHLD
    one, as a DataLoader with workers installs — killed the process (exit 139, no traceback: the suite's
    intermittent crash). Run in a child process so that a crash fails this test, not the suite."""
    script = f"""
import gc, os, signal, time
import torch
from depthforge.inference.openvino import openvino_forward
x = torch.rand(1, 3, {SIZE[0]}, {SIZE[1]})
first = openvino_forward({str(exported[0])!r}, "fp32"); first[0](x)
second = openvino_forward({str(exported[0])!r}, "fp32"); second[0](x)
del first; gc.collect(); del second; gc.collect()
got = []
signal.signal(signal.SIGCHLD, lambda *a: got.append(1))
if os.fork() == 0:
    os._exit(0)
os.wait()
print("handled", len(got))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "handled 1", (done.returncode, done.stderr[-500:])


def test_openvino_shapes(exported):
    """Dynamic H, W and N: each shape compiles on first use; repeated and interleaved calls agree."""
    path, model = exported
    forward, _ = openvino_forward(path, "fp32")
    a, b = torch.rand(2, 3, 64, 96), torch.rand(1, 3, 40, 48)
    ya, yb = forward(a), forward(b)
    assert ya.shape == (2, 1, 64, 96) and yb.shape == (1, 1, 40, 48)
    with torch.no_grad():
        assert float((ya - model(a)).abs().max()) < TOL["fp32"]
    assert torch.equal(forward(a), ya) and torch.equal(forward(b[:1]), yb)  # outputs are copies, not reused buffers


def test_save_openvino_ir(exported, tmp_path):
    path, model = exported
    result = save_openvino(path, tmp_path / "tiny.xml")
    assert Path(result["bin"]).stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.bin", "tiny.xml"]  # no temporary files left
    forward, info = openvino_forward(result["xml"], "fp32")
    assert info["contract"] == read_export_metadata(path)[1]
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert float((forward(x) - model(x)).abs().max()) < TOL["fp32"]


def test_quantize_writes_atomically(exported, tmp_path):
    """A failed quantisation leaves the old file as it was and no temporary files."""
    src, _ = exported
    dst = tmp_path / "int8.onnx"
    dst.write_bytes(b"old")
    bad = [np.zeros((1, 3, 32, 32), np.float32), np.full((1, 3, 32, 32), 2.0, np.float32)]
    with pytest.raises(DepthforgeError, match="calibration image 1 must be finite values in"):
        quantize_onnx(src, dst, bad)
    with pytest.raises(DepthforgeError, match="no calibration images"):
        quantize_onnx(src, dst, [])
    assert dst.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["int8.onnx"]
    result = quantize_onnx(src, dst, [np.random.default_rng(0).random((1, 3, 32, 32), np.float32)],
                           method="minmax")
    assert result["images"] == 1 and read_export_metadata(dst) == read_export_metadata(src)
    assert [p.name for p in tmp_path.iterdir()] == ["int8.onnx"]


def test_errors_are_one_line(exported, tmp_path):
    src, _ = exported
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    calib = [np.zeros((1, 3, 32, 32), np.float32)]
    cases = [
        (lambda: openvino_forward(junk), "junk.onnx: not a readable ONNX model"),
        (lambda: openvino_forward(tmp_path / "absent.onnx"), "absent.onnx: model not found"),
        (lambda: openvino_forward(src, precision="fp8"), "precision must be one of"),
        (lambda: quantize_onnx(junk, tmp_path / "q.onnx", calib), "junk.onnx: not a readable ONNX model"),
        (lambda: quantize_onnx(src, tmp_path / "q.bin", calib), "must end in .onnx"),
        (lambda: quantize_onnx(src, tmp_path / "q.onnx", calib, method="mean"), "calibration method must be"),
        (lambda: quantize_onnx(src, tmp_path / "q.onnx", [np.zeros((3, 32, 32), np.float32)]), r"\[N,3,H,W\]"),
        (lambda: save_openvino(src, tmp_path / "x.onnx"), "must end in .xml"),
    ]
    for call, message in cases:
        with pytest.raises(DepthforgeError, match=message) as e:
            call()
        assert "\n" not in str(e.value)


def test_no_metadata_is_an_error(exported, tmp_path):
    """An ONNX file that is not a depthforge export is refused by name, not failed on later."""
    import onnx

    model = onnx.load(str(exported[0]))
    del model.metadata_props[:]
    path = tmp_path / "plain.onnx"
    onnx.save(model, str(path))
    with pytest.raises(DepthforgeError, match="plain.onnx: not a depthforge export"):
        openvino_forward(path)
    with pytest.raises(DepthforgeError, match="plain.onnx: not a depthforge export"):
        read_export_metadata(path)
