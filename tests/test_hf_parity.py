"""End to end against transformers on real photos: ``depthforge.load(folder)(photo)`` versus transformers' image
processor -> model -> ``post_process_depth_estimation``, for a tiny random model of each Hugging Face family saved
with the processor config its real hub checkpoint ships.

The photos have three shapes: landscape (NYU 640×480), portrait (a SUN RGB-D photo transposed) and a wide
panorama (a KITTI frame). The network must get the same input size (captured with forward pre-hooks) and the depth
must agree to a median relative difference under 0.5 % (measured: at most 0.15 %; resizing the output back
bilinear instead of bicubic gives 0.75 % on the panorama). The differences that remain, and why they are not zero:

- transformers resizes the photo with PIL on uint8 pixels (rounded to whole grey levels); depthforge resizes the
  float image with torch's antialiased interpolation (PIL's filters, not rounded): the network inputs differ by
  about half a grey level per pixel. ZoeDepth's processor resizes with torch in both, so there they agree.
- depthforge clamps the bicubic resize of the output at 0 (bicubic overshoots below it at edges), transformers
  does not; and for DPT's ViT the head's output is resized to the network size first, then to the photo.
- ZoeDepth's ``post_process_depth_estimation`` needs torchvision (not installable here): the reference repeats its
  steps with ``torch.nn.functional.interpolate`` (bicubic, no antialiasing: what torchvision's tensor resize does).

Real weights cannot be downloaded here; the tiny networks get unit-gain random weights (``liven``) so that
their depth varies with the image.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from torch.nn import functional as F

import depthforge
from conftest import REALDATA, REPO, liven, need
from depthforge.errors import DepthforgeError
from depthforge.models import hf

IMAGENET = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
HALF = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
# DPT-Large's architecture, shrunk: a plain ViT at 384×384 (its position embeddings fit 384 only as shipped).
DPT_VIT = dict(is_hybrid=False, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
               image_size=384, patch_size=16, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 32, 32],
               fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5], readout_type="project")

# family -> (config class, model class, architecture, processor class, the hub checkpoint's processor settings)
FAMILIES = {
    # depth-anything/Depth-Anything-V2-*-hf: 518, keep aspect, multiple of 14, bicubic, ImageNet statistics
    "depth-anything-v2": ("DepthAnythingConfig", "DepthAnythingForDepthEstimation", hf.DepthAnythingV2.micro,
                          "DPTImageProcessorPil", dict(size={"height": 518, "width": 518}, keep_aspect_ratio=True,
                                                       ensure_multiple_of=14, resample=3, **IMAGENET)),
    "depth-anything-v2-metric": ("DepthAnythingConfig", "DepthAnythingForDepthEstimation",
                                 hf.DepthAnythingV2Metric.micro, "DPTImageProcessorPil",
                                 dict(size={"height": 518, "width": 518}, keep_aspect_ratio=True,
                                      ensure_multiple_of=14, resample=3, **IMAGENET)),
    # Intel/dpt-large: 384×384 without keeping the aspect ratio, bicubic, mean = std = 0.5
    "dpt": ("DPTConfig", "DPTForDepthEstimation", DPT_VIT, "DPTImageProcessorPil",
            dict(size={"height": 384, "width": 384}, keep_aspect_ratio=False, ensure_multiple_of=1, resample=3,
                 **HALF)),
    # Intel/zoedepth-*: 384×512 keep aspect, multiple of 32, reflect padding, bilinear, mean = std = 0.5
    "zoedepth": ("ZoeDepthConfig", "ZoeDepthForDepthEstimation", hf.ZoeDepth.micro, "ZoeDepthImageProcessorPil",
                 dict(size={"height": 384, "width": 512}, keep_aspect_ratio=True, ensure_multiple_of=32, do_pad=True,
                      resample=2, **HALF)),
    # vinvino02/glpn-*: sides rounded down to multiples of 32, bilinear, no normalisation
    "glpn": ("GLPNConfig", "GLPNForDepthEstimation", hf.GLPN.micro, "GLPNImageProcessorPil",
             dict(size_divisor=32, resample=2)),
}


def _save(family: str, folder) -> torch.nn.Module:
    config, model, arch, processor, settings = FAMILIES[family]
    torch.manual_seed(0)
    net = getattr(transformers, model)(getattr(transformers, config).from_dict(dict(arch))).eval()
    liven(net)
    if family in ("depth-anything-v2", "dpt"):
        _lift(net, (384, 384) if family == "dpt" else (98, 126))
    net.save_pretrained(folder)
    getattr(transformers, processor)(**settings).save_pretrained(folder)
    return net


def _lift(net: torch.nn.Module, size: tuple[int, int]) -> None:
    """Bias the relative heads' last layer (before their ReLU) so that 95 % of pixels are above 0: with random
    weights most are below, and a map of zeros would compare equal whatever the preprocessing."""
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 1][-1]
    seen = []
    hook = last.register_forward_hook(lambda m, a, out: seen.append(out))
    with torch.no_grad():
        net(pixel_values=torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)))
        last.bias -= torch.quantile(seen[0].flatten(), 0.05)
    hook.remove()


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    """Three real photos as uint8 RGB: landscape, portrait, panorama."""
    def read(name):
        with Image.open(need(REALDATA / name)) as im:
            return np.asarray(im.convert("RGB"))

    return {"landscape": read("nyu/rgb_1.png"),
            "portrait": np.ascontiguousarray(read("sunrgbd/rgb.jpg").transpose(1, 0, 2)),
            "panorama": read("kitti/rgb_0000000005.png")}


def _transformers(family: str, folder, net, photo: np.ndarray) -> tuple[torch.Size, torch.Tensor]:
    """(the network's input shape, depth at the photo's size) the transformers way."""
    proc = transformers.AutoImageProcessor.from_pretrained(folder)
    seen = []
    hook = net.register_forward_pre_hook(lambda m, a, k: seen.append(k["pixel_values"].shape), with_kwargs=True)
    h, w = photo.shape[:2]
    try:
        with torch.no_grad():
            out = net(**proc(images=Image.fromarray(photo), return_tensors="pt"))
    finally:
        hook.remove()
    if family != "zoedepth":
        return seen[0], proc.post_process_depth_estimation(out, target_sizes=[(h, w)])[0]["predicted_depth"]
    # ZoeDepthImageProcessor.post_process_depth_estimation(outputs, source_sizes=[(h, w)]), as the pipeline calls
    # it, step by step: resize to the padded photo's size (bicubic), crop the padding off
    ph, pw = int(np.sqrt(h / 2) * 3), int(np.sqrt(w / 2) * 3)
    d = F.interpolate(out.predicted_depth[:, None], size=(h + 2 * ph, w + 2 * pw), mode="bicubic",
                      align_corners=False)
    return seen[0], d[0, 0, ph:ph + h, pw:pw + w]


def _depthforge(folder, photo: np.ndarray) -> tuple[torch.Size, np.ndarray]:
    predict = depthforge.load(folder, device="cpu")
    seen = []
    hook = predict.module.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    try:
        depth = predict(photo)
    finally:
        hook.remove()
    return seen[0], depth


@pytest.mark.parametrize("family", list(FAMILIES))
def test_depthforge_matches_transformers_on_real_photos(family, photos, tmp_path):
    net = _save(family, tmp_path)
    for shape, photo in photos.items():
        want_in, want = _transformers(family, tmp_path, net, photo)
        got_in, got = _depthforge(tmp_path, photo)
        assert tuple(got_in[-2:]) == tuple(want_in[-2:]), f"{shape}: network input"
        want = want.numpy()
        assert got.shape == want.shape == photo.shape[:2]
        assert float(want.std()) > 1e-3 * float(np.abs(want).max()), "a constant output would make this vacuous"
        big = np.abs(want) > 1e-3 * np.abs(want).max()
        rel = np.median(np.abs(got - want)[big] / np.abs(want)[big])
        assert rel < 0.005, f"{family}, {shape} photo: median relative difference {rel:.4f}"
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99, f"{family}, {shape} photo"


def test_depth_anything_v2_runs_a_landscape_photo_at_518x686(photos, tmp_path):
    """Issue 23's figure: transformers' processor feeds 518×686 (aspect kept), not the 518×518 square."""
    _save("depth-anything-v2", tmp_path)
    got_in, _ = _depthforge(tmp_path, photos["landscape"])
    assert tuple(got_in) == (1, 3, 518, 686)
    predict = depthforge.load(tmp_path, device="cpu")
    assert predict.runs_at(480, 640) == (518, 686)
    assert predict.contract.preprocessing() == {"input_size": [518, 518], "resize": "keep_aspect",
                                                "size_multiple": 14, "resample": "bicubic", "align_corners": False,
                                                "pad": "none", "output_resample": "bicubic"}


def test_policy_survives_checkpoint_and_onnx_export(tmp_path):
    """A checkpoint and an ONNX export of the Depth Anything folder keep its processor's policy."""
    from depthforge.inference.export import export_module
    from depthforge.models.checkpoint import load_checkpoint, meta, save_model

    _save("depth-anything-v2", tmp_path / "hf")
    model = hf.from_pretrained_path(tmp_path / "hf")
    info = meta("depth-anything-v2", {"pretrained": str(tmp_path / "hf")}, model)
    save_model(tmp_path / "m.ckpt", model, info)
    again, _ = load_checkpoint(tmp_path / "m.ckpt")
    assert again.contract == model.contract and again.contract.resize == "keep_aspect"
    export_module(model, info, tmp_path / "m.onnx", check=False)
    onnx_predict = depthforge.load(tmp_path / "m.onnx")
    assert onnx_predict.contract == model.contract
    assert onnx_predict.runs_at(480, 640) == (518, 686)


def test_trained_checkpoints_keep_the_train_size_resize():
    """What training records: a fixed resize to the recipe's size, bilinear, whatever the processor said."""
    model = hf.DepthAnythingV2(config=hf.DepthAnythingV2.micro)  # the hub checkpoints' processor by default
    assert model.contract.resize == "keep_aspect"
    trained = model.contract.trained_at((70, 98))
    assert trained.preprocessing() == {"input_size": [70, 98], "resize": "fixed", "size_multiple": 1,
                                       "resample": "bilinear", "align_corners": False, "pad": "none",
                                       "output_resample": "bilinear"}


@pytest.mark.parametrize("key, value", [("resample", 1), ("rescale_factor", 1.0), ("do_pad", True),
                                        ("size", {"shortest_edge": 518})])
def test_a_processor_config_depthforge_cannot_follow_is_one_line_naming_the_key(key, value, tmp_path):
    _save("depth-anything-v2", tmp_path)
    path = tmp_path / "preprocessor_config.json"
    config = json.loads(path.read_text())
    config[key] = value
    path.write_text(json.dumps(config))
    with pytest.raises(DepthforgeError, match=f"preprocessor_config.json: {key} .*cannot be followed"):
        depthforge.load(tmp_path, device="cpu")
    if key == "resample":  # and on the command line: one line, exit 1
        photo = tmp_path / "photo.png"
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photo)
        run = subprocess.run([sys.executable, "-m", "depthforge", "predict", str(photo), "--checkpoint",
                              str(tmp_path), "--out", str(tmp_path / "out"), "--device", "cpu"],
                             capture_output=True, text=True, cwd=REPO, timeout=300,
                             env={"PYTHONPATH": str(REPO / "src"), "DEPTHFORGE_NO_MALLOC_TUNING": "1",
                                  "PATH": "/usr/bin:/bin"})
        assert run.returncode == 1
        # (transformers' "Loading weights" progress bar may come before it)
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "resample 1" in errors[0] and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize("family, size", [("glpn", (20, 40)), ("depth-anything-v2", (2, 900))])
def test_a_photo_too_small_for_the_policy_is_one_line(family, size, tmp_path):
    """GLPN rounds sides down to 32 (a 20-pixel side becomes 0); keeping the aspect ratio, a 2×900 strip's height
    rounds to 0 multiples of 14. transformers fails deep inside; depthforge says so."""
    _save(family, tmp_path)
    with pytest.raises(DepthforgeError, match=rf"image {size[1]}x{size[0]}: too small"):
        depthforge.load(tmp_path, device="cpu")(np.zeros((*size, 3), np.uint8))
    assert math.isfinite(float(depthforge.load(tmp_path, device="cpu")(np.zeros((64, 64, 3), np.uint8)).mean()))
