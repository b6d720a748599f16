"""Exports that carry what the contract adds: Depth Pro's field of view (a second output) and Prompt Depth
Anything's depth prompt (a second input), in ONNX Runtime and OpenVINO, through predict, eval and serve."""
from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import depthforge
from depthforge.cli import main
from depthforge.evaluation.evaluate import evaluate
from depthforge.inference.export import export_onnx
from depthforge.serve.app import create_app
from depthforge.viz.pointcloud import read_ply
from test_models_camera import depth_pro, prompt_da  # noqa: F401  (the tiny random models, as fixtures)

RUNTIMES = [None, "openvino"]  # None: onnxruntime, the default for an .onnx


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random uint8 RGB photo (smooth: the tiny models' depth then varies over it, not per pixel)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


@pytest.fixture(scope="module")
def exports(depth_pro, prompt_da, tmp_path_factory):  # noqa: F811
    """{"depth-pro": (folder, export, PyTorch predictor), "prompt-da": (...)}, exported by ``depthforge export``'s
    code."""
    tmp = tmp_path_factory.mktemp("exports")
    out = {}
    for name, (folder, _) in (("depth-pro", depth_pro), ("prompt-da", prompt_da)):
        result = export_onnx(folder, tmp / f"{name}.onnx")
        assert result["max_abs_diff"] < 1e-4, name
        out[name] = folder, tmp / f"{name}.onnx", depthforge.load(folder, device="cpu")
    return out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_depth_pro_export_returns_the_camera_estimate_as_pytorch(exports, runtime):
    _, path, torch_ = exports["depth-pro"]
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == ["depth", "fov"]
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["depthforge.contract"]["camera"] is True and "tan(fov/2)" in props["depthforge.io"]["fov"]
    export = depthforge.load(path, runtime=runtime)
    assert export.estimates_camera
    fovs = []
    for seed in (0, 1):  # one size: OpenVINO compiles each shape anew (other sizes: export's own check)
        a, b = torch_.predict(photo(45, 60, seed)), export.predict(photo(45, 60, seed))
        assert np.abs(a.depth - b.depth).max() <= 1e-4 * a.depth.max()
        assert b.fov == pytest.approx(a.fov, rel=1e-4)
        np.testing.assert_allclose(b.intrinsics, a.intrinsics, rtol=1e-4)
        fovs.append(a.fov)
    assert abs(fovs[0] - fovs[1]) > 1e-3, "the estimate must depend on the photo, else the comparison is vacuous"
    # the export is fixed at batch 1 (transformers' patch encoder): a batch of three runs one image at a time
    three = export([photo(45, 60, s) for s in (0, 2, 1)])  # the last as the loop's last
    assert np.abs(three[2] - a.depth).max() <= 1e-4 * a.depth.max()


def test_predict_ply_with_an_exported_depth_pro_uses_its_estimate_and_says_so(exports, tmp_path, caplog):
    _, path, torch_ = exports["depth-pro"]
    Image.fromarray(photo(45, 60, 0)).save(tmp_path / "room.png")
    with caplog.at_level(logging.INFO):
        assert main(["predict", str(tmp_path / "room.png"), "--checkpoint", str(path), "--out",
                     str(tmp_path / "out"), "--ply"]) == 0
    said = [r.getMessage() for r in caplog.records if "point cloud" in r.getMessage()]
    assert len(said) == 1 and "model's estimate of the camera" in said[0]
    k = torch_.predict(tmp_path / "room.png").intrinsics
    depth = np.load(tmp_path / "out" / "room.npy")
    points, _ = read_ply(tmp_path / "out" / "room.ply")
    u = np.nonzero(depth[0] > 0)[0][-1]  # the last valid pixel of row 0 lands at x = (u - cx) · z / fx
    assert points[(depth[0] > 0).sum() - 1, 0] == pytest.approx((u - k[0, 2]) * depth[0, u] / k[0, 0], rel=1e-4)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_prompt_depth_anything_export_takes_the_prompt_as_pytorch(exports, runtime):
    _, path, torch_ = exports["prompt-da"]
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["image", "prompt"]
    export = depthforge.load(path, runtime=runtime)
    prompt = np.random.default_rng(0).uniform(0.8, 3.0, (12, 16)).astype(np.float32)
    image = photo(60, 80, 4)
    a, b = torch_.predict(image, prompt=prompt).depth, export.predict(image, prompt=prompt).depth
    assert np.abs(a - b).max() <= 1e-4 * a.max()
    assert np.abs(torch_.predict(image).depth - a).max() > 1e-2  # the prompt changes the depth


def test_predict_prompt_depth_with_the_export_as_with_pytorch(exports, tmp_path):
    """predict --prompt-depth: a 16-bit millimetre PNG, read and checked as for the PyTorch model."""
    folder, path, _ = exports["prompt-da"]
    Image.fromarray(photo(60, 80, 5)).save(tmp_path / "desk.png")
    mm = np.random.default_rng(1).uniform(800, 2500, (12, 16))
    Image.fromarray(mm.astype(np.uint16)).save(tmp_path / "lidar.png")
    for source, out in ((folder, "torch"), (path, "export")):
        assert main(["predict", str(tmp_path / "desk.png"), "--checkpoint", str(source), "--out", str(tmp_path / out),
                     "--prompt-depth", str(tmp_path / "lidar.png"), "--device", "cpu"]) == 0
    a, b = np.load(tmp_path / "torch" / "desk.npy"), np.load(tmp_path / "export" / "desk.npy")
    assert np.abs(a - b).max() <= 1e-4 * a.max()


def _room_dataset(root):
    """A depthforge folder dataset (test split): two 48×64 photos, millimetre depth, intrinsics.txt (fx 40 px)."""
    for i in range(2):
        for sub in ("rgb", "depth"):
            (root / "test" / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(48, 64, 10 + i)).save(root / "test" / "rgb" / f"{i}.png")
        mm = 900 + 50 * np.arange(48)[:, None] + 20 * np.arange(64)[None] + 300 * i
        Image.fromarray(mm.astype(np.uint16)).save(root / "test" / "depth" / f"{i}.png")
    (root / "test" / "intrinsics.txt").write_text("40 40 31.5 23.5\n")
    return str(root)


def test_eval_of_the_exports_feeds_the_prompt_and_reports_the_focal_error_as_pytorch(exports, tmp_path):
    data = _room_dataset(tmp_path / "data")
    for name, key in (("prompt-da", "abs_rel"), ("depth-pro", "focal_rel_err")):
        folder, path, _ = exports[name]
        got = [evaluate(source, data=data, pictures=False, progress=False, device="cpu", limit=1,
                        out=tmp_path / f"{name}-{i}") for i, source in enumerate((folder, path))]
        assert got[1]["model"][key] == pytest.approx(got[0]["model"][key], rel=1e-4), name
        assert got[1]["model"]["abs_rel"] == pytest.approx(got[0]["model"]["abs_rel"], rel=1e-4), name
        assert got[1]["prompt"] == got[0]["prompt"], name  # "ground truth downsampled to 192 rows", or None


def test_prompt_errors_of_exports_are_one_line(exports, tmp_path, capsys):
    Image.fromarray(photo(45, 60, 0)).save(tmp_path / "room.png")
    np.save(tmp_path / "lidar.npy", np.full((6, 8), 2.0, np.float32))
    cases = (("depth-pro", ["--prompt-depth", str(tmp_path / "lidar.npy")], "takes no depth prompt"),
             ("prompt-da", [], "export takes a depth prompt beside each image"))
    for name, extra, message in cases:
        out = tmp_path / name
        code = main(["predict", str(tmp_path / "room.png"), "--checkpoint", str(exports[name][1]), "--out", str(out),
                     *extra])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and "Traceback" not in err and len(errors) == 1 and message in errors[0], name
        assert not (out / "room.npy").exists()


def test_the_web_page_uses_the_camera_estimate_of_pytorch_and_exported_depth_pro(exports, tmp_path):
    _, path, torch_ = exports["depth-pro"]
    image = photo(40, 56, 6)
    buf = tmp_path / "p.png"
    Image.fromarray(image).save(buf)
    for predictor in (torch_, depthforge.load(path)):
        with TestClient(create_app(predictor, workdir=str(tmp_path / "w"))) as c:
            body = c.post("/api/predict", files={"file": ("p.png", buf.read_bytes(), "image/png")}).json()
        assert body["intrinsics"].startswith("the model's own estimate"), predictor
        assert body["focal_px"] == pytest.approx(float(predictor.predict(image).intrinsics[0, 0]), rel=1e-5)


def test_int8_export_of_a_prompt_model_calibrates_with_prompts(exports, tmp_path, caplog):
    """``export --int8``: calibration feeds the prompt input (each room's ground truth downsampled, as eval does);
    the int8 file keeps both inputs and the metadata, and runs with a prompt."""
    folder = exports["prompt-da"][0]
    result = export_onnx(folder, tmp_path / "pda.onnx", check=False, int8=2)
    assert result["int8_images"] == 2
    model = onnx.load(result["int8_path"])
    assert [i.name for i in model.graph.input] == ["image", "prompt"]
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert "prompt" in json.loads({p.key: p.value for p in model.metadata_props}["depthforge.io"])
    prompt = np.random.default_rng(0).uniform(0.8, 3.0, (12, 16)).astype(np.float32)
    int8 = depthforge.load(result["int8_path"])
    depth, farther = (int8.predict(photo(60, 80, 4), prompt=p).depth for p in (prompt, 2 * prompt))
    assert np.isfinite(depth).all() and np.median(farther) > 1.5 * np.median(depth)  # the metres follow the prompt
