"""Bad input around the runtimes: a runtime's package not installed, an export a runtime cannot read. Each is one
line naming the file or the package and what is wrong (exit 1 from the CLI), never a traceback."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import depthforge
from depthforge.cli import main
from depthforge.errors import DepthforgeError

from conftest import make_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny seed U-Net as a checkpoint, an ONNX export, an OpenVINO IR, their damaged copies and a photo."""
    from depthforge.inference.export import export_onnx
    from depthforge.inference.openvino import save_openvino

    tmp = tmp_path_factory.mktemp("runtime-errors")
    ckpt = make_checkpoint(tmp / "tiny.ckpt", size=(32, 48))
    onnx = tmp / "tiny.onnx"
    export_onnx(ckpt, onnx, check=False)
    xml = Path(save_openvino(onnx, tmp / "tiny.xml")["xml"])
    data = onnx.read_bytes()
    (tmp / "half.onnx").write_bytes(data[:len(data) // 2])  # an interrupted copy
    text = xml.read_text()
    (tmp / "half.xml").write_text(text[:len(text) // 2])
    for name in ("nobin", "badbin"):  # an IR whose weights are missing, or cut short
        (tmp / f"{name}.xml").write_text(text)
    (tmp / "badbin.bin").write_bytes(xml.with_suffix(".bin").read_bytes()[:100])
    photo = tmp / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), np.uint8)).save(photo)
    return {"ckpt": ckpt, "onnx": onnx, "xml": xml, "photo": photo, **{
        n: tmp / n for n in ("half.onnx", "half.xml", "nobin.xml", "badbin.xml")}}


def _one_line(call, match: str) -> None:
    with pytest.raises(DepthforgeError, match=match) as e:
        call()
    assert "\n" not in str(e.value)


def _cli(argv, capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("package, source, runtime", [
    ("openvino", "xml", None),  # an IR runs on OpenVINO only
    ("openvino", "onnx", "openvino"),
    ("openvino", "ckpt", "openvino"),  # the missing package is named before "export it first"
    ("onnxruntime", "onnx", None),  # an .onnx runs on onnxruntime by default
    ("onnxruntime", "onnx", "onnxruntime"),
])
def test_a_runtime_not_installed_is_named_with_its_install_line(files, monkeypatch, package, source, runtime):
    monkeypatch.setitem(sys.modules, package, None)  # what `import package` meets where it is not installed
    _one_line(lambda: depthforge.load(files[source], runtime=runtime, device="cpu"),
              rf"^runtime {package} is not installed: pip install {package}")


def test_the_cli_says_which_runtime_to_install(files, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    err = _cli(["predict", str(files["photo"]), "--checkpoint", str(files["onnx"]), "--out", str(tmp_path)], capsys)
    assert err == "error: runtime onnxruntime is not installed: pip install onnxruntime (onnxruntime-gpu for CUDA)"
    monkeypatch.setitem(sys.modules, "openvino", None)
    err = _cli(["eval", "--checkpoint", str(files["xml"]), "--data", "synth", "--out", str(tmp_path / "e")], capsys)
    assert err == "error: runtime openvino is not installed: pip install openvino"
    # export and int8 need onnx and onnxruntime's quantiser
    err = _cli(["export", "--checkpoint", str(files["ckpt"]), "--onnx", str(tmp_path / "m.onnx"), "--int8", "1"],
               capsys)
    assert err.startswith("error: runtime onnxruntime is not installed")
    monkeypatch.setitem(sys.modules, "onnx", None)
    err = _cli(["export", "--checkpoint", str(files["ckpt"]), "--onnx", str(tmp_path / "m.onnx")], capsys)
    assert err == "error: package onnx (ONNX export) is not installed: pip install onnx onnxscript"


def test_a_broken_install_says_why_it_does_not_import(monkeypatch):
    from depthforge.inference import runtime

    def broken(name):
        raise ImportError("libopenvino.so.2026: cannot open shared object file")

    monkeypatch.setattr(runtime.importlib, "import_module", broken)
    _one_line(lambda: runtime.need("openvino"), r"^runtime openvino does not import \(libopenvino.so.2026: cannot "
                                                r"open shared object file\): pip install --force-reinstall openvino$")


@pytest.mark.parametrize("name, runtime, reason", [
    ("half.onnx", None, r"half.onnx: not a loadable ONNX model \(.*Protobuf parsing failed"),
    ("half.onnx", "openvino", r"half.onnx: not a readable ONNX model \(FrontEnd API failed with GeneralFailure: "
                              r"Model can't be parsed\)"),
    ("half.xml", None, r"half.xml: not a readable XML model \(.+ at offset \d+\)$"),  # the XML parser's reason
    ("nobin.xml", None, r"nobin.xml: not a readable XML model \(Empty weights data in bin file or bin file cannot "
                        r"be found!\)"),
    ("badbin.xml", None, r"badbin.xml: not a readable XML model \(Incorrect weights in bin file!\)"),
])
def test_an_export_a_runtime_cannot_read_is_one_line_with_its_reason(files, name, runtime, reason):
    _one_line(lambda: depthforge.load(files[name], runtime=runtime, device="cpu"), reason)


def test_the_cli_refuses_a_damaged_export_in_one_line(files, capsys, tmp_path):
    err = _cli(["predict", str(files["photo"]), "--checkpoint", str(files["half.onnx"]), "--out", str(tmp_path)],
               capsys)
    assert err.startswith(f"error: {files['half.onnx']}: not a loadable ONNX model (")
    assert depthforge.load(files["xml"])(str(files["photo"])).shape == (40, 56)  # the intact IR runs
