"""Models that estimate the camera (Depth Pro) or take a depth prompt (Prompt Depth Anything): tiny random models
saved with save_pretrained, loaded through depthforge, against transformers' own pipeline; the predictor's camera
estimate and prompt, ``predict --ply`` / ``--prompt-depth``, and the one-line refusals."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from torch.nn import functional as F

import depthforge
from conftest import liven
from depthforge.cli import main
from depthforge.data import build_dataset
from depthforge.errors import DepthforgeError
from depthforge.inference.prompt import fit_prompt, prompt_from_depth, read_prompt
from depthforge.models import MODELS, hf
from depthforge.viz.pointcloud import read_ply

IMAGENET = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
DEPTH_PRO_SIZE = 32  # the tiny Depth Pro's network size: patch_size 16 / smallest scale 0.5


@pytest.fixture(scope="module")
def depth_pro(tmp_path_factory):
    """(folder, transformers model) of a tiny random Depth Pro with a FoV head, and apple/DepthPro-hf's processor
    config at the tiny size (written as JSON: DepthProImageProcessor itself needs torchvision)."""
    torch.manual_seed(0)
    net = transformers.DepthProForDepthEstimation(transformers.DepthProConfig.from_dict(dict(hf.DepthPro.micro)))
    liven(net.eval())
    with torch.no_grad():
        net.fov_model.head.layers[-1].bias.fill_(55.0)  # a camera's field of view, not liven's ±0.1°
        net.head.layers[-2].bias.add_(1.0)  # inverse depth mostly > 0: fewer pixels at the 1e4 m clamp
    folder = tmp_path_factory.mktemp("depth-pro")
    net.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(dict(
        image_processor_type="DepthProImageProcessorFast", do_resize=True, do_rescale=True, do_normalize=True,
        rescale_factor=1 / 255, resample=2, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        size={"height": DEPTH_PRO_SIZE, "width": DEPTH_PRO_SIZE})))
    return folder, net


@pytest.fixture(scope="module")
def prompt_da(tmp_path_factory):
    """(folder, transformers model) of a tiny random Prompt Depth Anything saved with its PIL image processor."""
    torch.manual_seed(0)
    net = transformers.PromptDepthAnythingForDepthEstimation(
        transformers.PromptDepthAnythingConfig.from_dict(dict(hf.PromptDepthAnything.micro)))
    liven(net.eval())
    folder = tmp_path_factory.mktemp("prompt-da")
    net.save_pretrained(folder)
    transformers.PromptDepthAnythingImageProcessorPil(size={"height": 70, "width": 98}, keep_aspect_ratio=True,
                                                      ensure_multiple_of=14, **IMAGENET).save_pretrained(folder)
    return folder, net


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.uniform(0, 255, (1, 3, h // 6 + 1, w // 6 + 1)).astype(np.float32))
    smooth = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    return np.clip(smooth + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)


def _depth_pro_reference(net, photo: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """DepthProImageProcessor (rescale, normalise, then resize bilinear without antialiasing) -> the network ->
    post_process_depth_estimation, step by step as transformers 5.25 writes them."""
    h, w = photo.shape[:2]
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() * (1 / 255)
    x = F.interpolate((x - 0.5) / 0.5, size=(DEPTH_PRO_SIZE,) * 2, mode="bilinear", antialias=False)
    with torch.no_grad():
        out = net(pixel_values=x)
    depth, fov = out.predicted_depth[0], out.field_of_view[0]
    focal = 0.5 * w / torch.tan(0.5 * torch.deg2rad(fov))
    depth = F.interpolate((depth * w / focal)[None, None], size=(h, w), mode="bilinear").squeeze()
    return 1.0 / torch.clamp(depth, min=1e-4, max=1e4), fov


@pytest.mark.parametrize("shape", [(45, 60), (50, 34)])
def test_depth_pro_matches_transformers_depth_and_focal_length(depth_pro, shape):
    folder, net = depth_pro
    predictor = depthforge.load(folder, device="cpu")
    c = predictor.contract
    assert (c.output, c.camera, c.prompt, c.input_size, c.mean) == ("metric", True, False, (32, 32), (0.5,) * 3)
    photo = _photo(*shape)
    want, fov = _depth_pro_reference(net, photo)
    got = predictor.predict(photo)
    assert float(want.std()) > 1e-3 * float(want.mean()), "a constant depth would make the comparison vacuous"
    # compared as inverse depth, what the network outputs (depth near the 1e4 m clamp magnifies float rounding)
    inverse = 1 / want.numpy()
    assert np.abs(1 / got.depth - inverse).max() <= 1e-5 * inverse.max()
    assert got.fov == pytest.approx(float(fov), abs=1e-5)
    focal = 0.5 * shape[1] / np.tan(np.radians(float(fov)) / 2)
    assert got.intrinsics[0, 0] == pytest.approx(focal, rel=1e-5) and got.intrinsics[1, 1] == got.intrinsics[0, 0]
    assert got.intrinsics[:2, 2] == pytest.approx([(shape[1] - 1) / 2, (shape[0] - 1) / 2])


def test_prompt_depth_anything_matches_transformers_with_the_same_prompt(prompt_da):
    folder, net = prompt_da
    model = hf.from_pretrained_path(folder).eval()
    c = model.contract
    assert (c.output, c.prompt, c.camera, c.multiple, c.input_size) == ("metric", True, False, 14, (70, 98))
    photos = [_photo(70, 98, seed=s) for s in (0, 1)]
    prompts = [(np.random.default_rng(s).uniform(500, 4000, (6, 8))).astype(np.float32) for s in (0, 1)]  # mm
    proc = transformers.PromptDepthAnythingImageProcessorPil.from_pretrained(folder)
    inputs = proc(images=photos, prompt_depth=prompts, do_resize=False, return_tensors="pt")
    with torch.no_grad():
        want = net(**inputs).predicted_depth[:, None]
        x = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 255
        got = model(x, torch.from_numpy(np.stack(prompts))[:, None] / 1000)
    assert float(want.std()) > 1e-3
    assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())
    # the metres come from the prompt: the head's ReLU output lands at or above its nearest reading
    assert float(got.min()) >= min(p.min() for p in prompts) / 1000 - 1e-6


def test_predict_ply_uses_the_models_camera_and_says_so(depth_pro, tmp_path, caplog):
    folder, _ = depth_pro
    Image.fromarray(_photo(45, 60)).save(tmp_path / "room.png")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        assert main(["predict", str(tmp_path / "room.png"), "--checkpoint", str(folder), "--out", str(out),
                     "--ply", "--device", "cpu"]) == 0
    said = [r.getMessage() for r in caplog.records if "point cloud" in r.getMessage()]
    assert len(said) == 1 and "model's estimate of the camera" in said[0]
    fov = depthforge.load(folder, device="cpu").predict(tmp_path / "room.png")
    points, _ = read_ply(out / "room.ply")
    depth = np.load(out / "room.npy")
    # a pixel at column u lands at x = (u - cx) · z / fx with the estimated fx, not a 60° guess's
    u = np.nonzero(depth[0] > 0)[0][-1]
    k = fov.intrinsics
    row0 = points[: (depth[0] > 0).sum()]
    assert row0[-1, 0] == pytest.approx((u - k[0, 2]) * depth[0, u] / k[0, 0], rel=1e-4)
    caplog.clear()
    with caplog.at_level(logging.INFO):  # the user's intrinsics win, and the log says so
        assert main(["predict", str(tmp_path / "room.png"), "--checkpoint", str(folder), "--out", str(tmp_path / "o2"),
                     "--ply", "--intrinsics", "50", "50", "30", "22", "--device", "cpu"]) == 0
    assert any("given camera intrinsics" in r.getMessage() for r in caplog.records)


def test_predict_prompt_depth_files(prompt_da, tmp_path, caplog, capsys):
    folder, _ = prompt_da
    Image.fromarray(_photo(60, 80)).save(tmp_path / "desk.png")
    mm = np.random.default_rng(0).uniform(800, 2500, (12, 16)).astype(np.uint16)
    Image.fromarray(mm).save(tmp_path / "lidar.png")
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "desk.png"), "--checkpoint", str(folder), "--device", "cpu"]
    assert main([*args, "--out", str(out), "--prompt-depth", str(tmp_path / "lidar.png")]) == 0
    depth = np.load(out / "desk.npy")
    assert depth.min() >= 0.79  # metres from the prompt's millimetres (at or above its nearest reading)
    # the same prompt as .npy metres gives the same depth
    np.save(tmp_path / "lidar.npy", mm.astype(np.float32) / 1000)
    assert main([*args, "--out", str(tmp_path / "o2"), "--prompt-depth", str(tmp_path / "lidar.npy")]) == 0
    assert np.allclose(np.load(tmp_path / "o2" / "desk.npy"), depth, rtol=1e-5)
    # another aspect ratio: used, stretched, and a log line says so
    np.save(tmp_path / "square.npy", np.full((16, 16), 1.5, np.float32) + np.eye(16, dtype=np.float32))
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--out", str(tmp_path / "o3"), "--prompt-depth", str(tmp_path / "square.npy")]) == 0
    assert any("another aspect ratio" in r.getMessage() for r in caplog.records)
    # millimetres in a .npy: refused with the reason, nothing written for the photo
    np.save(tmp_path / "mm.npy", mm.astype(np.float32))
    assert main([*args, "--out", str(tmp_path / "o4"), "--prompt-depth", str(tmp_path / "mm.npy")]) == 1
    assert any("not plausible" in r.getMessage() and "millimetres" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "o4" / "desk.npy").exists()


def test_a_prompt_for_a_model_that_takes_none_is_one_line(depth_pro, tmp_path, capsys):
    folder, _ = depth_pro
    Image.fromarray(_photo(45, 60)).save(tmp_path / "room.png")
    np.save(tmp_path / "lidar.npy", np.full((6, 8), 2.0, np.float32))
    code = main(["predict", str(tmp_path / "room.png"), "--checkpoint", str(folder), "--out", str(tmp_path / "out"),
                 "--prompt-depth", str(tmp_path / "lidar.npy"), "--device", "cpu"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "takes no depth prompt" in errors[0] and "Traceback" not in err
    assert not (tmp_path / "out" / "room.npy").exists()


@pytest.mark.parametrize("values, why", [(np.zeros((4, 4)), "no valid reading"),
                                         (np.full((4, 4), 0.01), "not plausible"),
                                         (np.full((4, 4), 1500.0), "millimetres")])
def test_implausible_prompts_are_refused_with_the_reason(values, why, tmp_path):
    np.save(tmp_path / "p.npy", values.astype(np.float32))
    with pytest.raises(DepthforgeError, match=why):
        read_prompt(tmp_path / "p.npy")
    Image.fromarray(np.full((4, 4), 3, np.uint8)).save(tmp_path / "p8.png")
    with pytest.raises(DepthforgeError, match="16-bit"):
        read_prompt(tmp_path / "p8.png")


def test_prompt_holes_are_filled_and_ground_truth_becomes_a_low_resolution_prompt():
    d = np.full((480, 640), 3.0, np.float32)
    d[:240] = 1.0
    d[100:120, 100:200] = 0  # a hole
    p = prompt_from_depth(d)
    assert p.shape == (192, 256) and p.min() == 1.0 and p.max() == 3.0
    assert fit_prompt(p, (480, 640)) is p


def test_a_folder_of_an_architecture_depthforge_does_not_wrap_lists_the_known_ones(tmp_path):
    for model_type in ("bert", "not_a_model"):
        (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
        with pytest.raises(DepthforgeError) as e:
            hf.from_pretrained_path(tmp_path)
        msg = str(e.value)
        assert "\n" not in msg and model_type in msg
        assert all(known in msg for known in ("depth_anything", "dpt", "depth_pro", "prompt_depth_anything")), msg


def test_depth_pro_fine_tunes_its_encoder_at_a_fraction_and_rebuilds_offline(depth_pro):
    folder, _ = depth_pro
    model = hf.from_pretrained_path(folder)
    enc = {id(p) for p in model.encoder().parameters()}
    assert 0 < len(enc) < len(list(model.parameters()))
    assert {id(p) for p in model.net.fov_model.fov_encoder.model.parameters()} <= enc
    spec = json.loads(json.dumps(model.spec_kwargs({"pretrained": str(folder)})))
    again = MODELS.build("depth-pro", **spec).eval()
    again.load_state_dict(model.state_dict())
    assert again.contract == model.eval().contract
    x = torch.rand(1, 3, 40, 50)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def _dataset(root, fx: float = 40.0):
    """A depthforge folder dataset (test split) of two 48×64 photos, millimetre depth and intrinsics.txt."""
    for i in range(2):
        (root / "test" / "rgb").mkdir(parents=True, exist_ok=True)
        (root / "test" / "depth").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_photo(48, 64, seed=i)).save(root / "test" / "rgb" / f"{i}.png")
        mm = 1000 + 100 * np.arange(48)[:, None] + 10 * np.arange(64)[None] + 200 * i
        Image.fromarray(mm.astype(np.uint16)).save(root / "test" / "depth" / f"{i}.png")
    (root / "test" / "intrinsics.txt").write_text(f"{fx} {fx} 31.5 23.5\n")
    return root


def test_eval_reports_the_focal_length_error_where_the_data_has_intrinsics(depth_pro, tmp_path):
    from depthforge.evaluation.evaluate import evaluate

    folder, _ = depth_pro
    data = _dataset(tmp_path / "data", fx=40.0)
    results = evaluate(folder, data=str(data), pictures=False, progress=False, device="cpu", out=tmp_path / "eval")
    predictor = depthforge.load(folder, device="cpu")
    want = []
    for sample in build_dataset({"name": "folder", "root": str(data), "size": (240, 320)}, split="test"):
        fx_gt = float(sample["intrinsics"][0, 0])
        assert fx_gt == pytest.approx(40.0)
        _, focal = predictor.predict_tensor(sample["image"][None], camera=True)
        want.append(abs(float(focal[0, 0]) - fx_gt) / fx_gt)
    assert results["model"]["focal_rel_err"] == pytest.approx(np.mean(want), rel=1e-5)
    assert "focal_rel_err" not in results["baselines"].get("constant", {})


def test_eval_feeds_a_prompt_model_the_downsampled_ground_truth_and_says_so(prompt_da, tmp_path, caplog):
    from depthforge.evaluation.evaluate import evaluate
    from depthforge.evaluation.metrics import compute_metrics, get_protocol

    folder, _ = prompt_da
    data = _dataset(tmp_path / "data")
    with caplog.at_level(logging.INFO):
        results = evaluate(folder, data=str(data), pictures=False, progress=False, device="cpu", limit=1,
                           out=tmp_path / "eval")
    assert results["prompt"] == "ground truth downsampled to 192 rows"
    assert any("ground truth downsampled" in r.getMessage() for r in caplog.records)
    # the same image and prompt by hand give the same AbsRel; without the prompt it differs
    sample = build_dataset({"name": "folder", "root": str(data)}, split="test")[0]
    gt = sample["depth"][0].numpy()
    prompt = torch.from_numpy(prompt_from_depth(gt))[None, None]
    assert prompt.shape[-2:] == (48, 64)  # never upsampled: the 48-row frames are below 192 rows
    predictor = depthforge.load(folder, device="cpu")
    proto = get_protocol(results["protocol"], results["max_depth"])
    mask = proto.mask(gt, gt > 0)
    for p, same in ((prompt, True), (None, False)):
        pred = predictor.predict_tensor(sample["image"][None], prompt=p)[0, 0].numpy()
        abs_rel = compute_metrics(pred, gt, proto, valid=mask)["abs_rel"]
        assert (abs_rel == pytest.approx(results["model"]["abs_rel"], rel=1e-4)) is same, (abs_rel, p is None)
