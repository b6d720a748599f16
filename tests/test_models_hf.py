"""The Hugging Face wrappers against transformers itself: tiny random models saved with save_pretrained (and
their PIL image processors), loaded through depthforge, compared with transformers' own forward pass."""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from torch.nn import functional as F

from conftest import liven
from depthforge.errors import DepthforgeError
from depthforge.losses import build_loss
from depthforge.models import MODELS, hf

IMAGENET = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
HALF = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
# DPT on a DINOv2 backbone (as facebook/dpt-dinov2-*): runs at any multiple of 14, unlike ViT/hybrid DPT.
DPT_DINOV2 = dict(backbone_config=dict(model_type="dinov2", hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                       intermediate_size=64, image_size=98, patch_size=14, out_indices=[1, 2, 3, 4],
                                       reshape_hidden_states=False),
                  neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5],
                  hidden_size=32)


@dataclass
class Case:
    name: str                       # registered depthforge name
    config: str
    model: str
    arch: dict[str, Any]
    processor: str
    proc_kwargs: dict[str, Any]
    size: tuple[int, int]           # parity size (the network's own, no resize in the wrapper)
    other: tuple[int, int]          # a second size (dynamic ONNX axes, shapes)
    output: str
    multiple: int
    input_size: tuple[int, int] | None
    mean: tuple[float, ...]
    extra: dict[str, Any] = field(default_factory=dict)


CASES = {
    "depth-anything-v2": Case("depth-anything-v2", "DepthAnythingConfig", "DepthAnythingForDepthEstimation",
                              hf.DepthAnythingV2.micro, "DPTImageProcessorPil",
                              dict(size={"height": 98, "width": 126}, keep_aspect_ratio=True, ensure_multiple_of=14,
                                   **IMAGENET),
                              (98, 126), (70, 140), "disparity", 14, (98, 126), (0.485, 0.456, 0.406)),
    "depth-anything-v2-metric": Case("depth-anything-v2-metric", "DepthAnythingConfig",
                                     "DepthAnythingForDepthEstimation", hf.DepthAnythingV2Metric.micro,
                                     "DPTImageProcessorPil",
                                     dict(size={"height": 98, "width": 126}, keep_aspect_ratio=True,
                                          ensure_multiple_of=14, **IMAGENET),
                                     (98, 126), (70, 140), "metric", 14, (98, 126), (0.485, 0.456, 0.406)),
    "dpt-hybrid": Case("dpt", "DPTConfig", "DPTForDepthEstimation", hf.DPT.micro, "DPTImageProcessorPil",
                       dict(size={"height": 64, "width": 64}, **HALF), (64, 64), (96, 128), "disparity", 1, (64, 64),
                       (0.5, 0.5, 0.5)),
    "dpt-dinov2": Case("dpt", "DPTConfig", "DPTForDepthEstimation", DPT_DINOV2, "DPTImageProcessorPil",
                       dict(size={"height": 70, "width": 98}, keep_aspect_ratio=True, ensure_multiple_of=14, **HALF),
                       (70, 98), (98, 126), "disparity", 14, (70, 98), (0.5, 0.5, 0.5)),
    "zoedepth": Case("zoedepth", "ZoeDepthConfig", "ZoeDepthForDepthEstimation", hf.ZoeDepth.micro,
                     "ZoeDepthImageProcessorPil", dict(size={"height": 64, "width": 96}, ensure_multiple_of=32,
                                                       keep_aspect_ratio=True, do_pad=True, **HALF),
                     (64, 96), (96, 128), "metric", 32, (64, 96), (0.5, 0.5, 0.5)),
    "glpn": Case("glpn", "GLPNConfig", "GLPNForDepthEstimation", hf.GLPN.micro, "GLPNImageProcessorPil",
                 dict(size_divisor=32), (64, 96), (96, 128), "metric", 32, None, (0.0, 0.0, 0.0)),
}


@pytest.fixture(scope="module", params=list(CASES))
def saved(request, tmp_path_factory):
    """(case, folder, the transformers model) for a tiny random model saved with its processor."""
    case = CASES[request.param]
    torch.manual_seed(0)
    cfg = getattr(transformers, case.config).from_dict(dict(case.arch))
    net = getattr(transformers, case.model)(cfg).eval()
    liven(net)
    folder = tmp_path_factory.mktemp(request.param)
    net.save_pretrained(folder)
    getattr(transformers, case.processor)(**case.proc_kwargs).save_pretrained(folder)
    return case, folder, net


def _images(size, n=2, seed=1):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, size[0] // 7 + 1, size[1] // 7 + 1, 3)).astype(np.float32)
    x = F.interpolate(torch.from_numpy(small).permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False)
    noise = torch.from_numpy(rng.normal(0, 12, (n, 3, *size)).astype(np.float32))
    return (x + noise).round().clamp(0, 255).to(torch.uint8)  # smooth scenes with texture


def _reference(case: Case, folder, net, u8: torch.Tensor) -> torch.Tensor:
    """transformers' processor without resizing or padding -> transformers' model (-> bilinear resize to the input
    size where DPT's head lands elsewhere): what ``forward`` does at the network's size."""
    proc = getattr(transformers, case.processor).from_pretrained(folder)
    imgs = [im.permute(1, 2, 0).numpy() for im in u8]
    h, w = u8.shape[-2:]
    with torch.no_grad():
        # ZoeDepth's reflect padding is the predictor's (the contract's pad), not forward's
        pv = proc(images=imgs, do_resize=False, do_pad=False, return_tensors="pt").pixel_values
        d = net(pixel_values=pv).predicted_depth[:, None]
        # DPT's head does not always land on the input size (DINOv2 backbone: 16× the patch grid)
        return d if d.shape[-2:] == (h, w) else F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)


def _run(model, x):
    with torch.no_grad():
        return model(x)


def test_parity_with_transformers_and_declared_contract(saved):
    case, folder, net = saved
    model = hf.from_pretrained_path(folder).eval()
    assert type(model) is MODELS[case.name]
    c = model.contract
    assert (c.output, c.multiple, c.input_size) == (case.output, case.multiple, case.input_size)
    assert c.mean == pytest.approx(case.mean)
    u8 = _images(case.size)
    want = _reference(case, folder, net, u8)
    got = _run(model, u8.float() / 255)
    assert got.shape == (2, 1, *case.size) and got.dtype == torch.float32
    assert float(want.std()) > 1e-3, "a degenerate network would make the comparison vacuous"
    assert float((got - want).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))
    if case.output == "metric":
        assert c.max_depth == pytest.approx(float(got.max().clamp(min=0)), abs=c.max_depth)  # range stated
        assert float(got.min()) >= 0 and float(got.max()) <= c.max_depth


def test_other_sizes_and_encoder(saved):
    case, folder, net = saved
    model = hf.from_pretrained_path(folder).eval()
    assert _run(model, torch.rand(1, 3, *case.other)).shape == (1, 1, *case.other)
    enc = model.encoder()
    ids = {id(p) for p in model.parameters()}
    assert enc is not None and all(id(p) in ids for p in enc.parameters())
    assert 0 < sum(p.numel() for p in enc.parameters()) < sum(p.numel() for p in model.parameters())


def test_rebuild_from_spec_kwargs_offline(saved):
    case, folder, net = saved
    model = hf.from_pretrained_path(folder).eval()
    spec = model.spec_kwargs({"pretrained": str(folder)})
    assert "pretrained" not in spec
    spec = json.loads(json.dumps(spec))  # as a checkpoint stores it
    again = MODELS.build(case.name, **spec).eval()
    again.load_state_dict(model.state_dict())
    assert again.contract == model.contract
    x = torch.rand(2, 3, *case.size)
    assert torch.equal(_run(again, x), _run(model, x))


def test_onnx_export_with_dynamic_axes_matches_onnxruntime(saved, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    case, folder, net = saved
    model = hf.from_pretrained_path(folder).eval()
    axes = {0: "batch", 2: "height", 3: "width"}
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.rand(2, 3, *case.size), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["depth"],
                          dynamic_axes={"image": axes, "depth": axes})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in (case.size, case.other):
        x = _images(size, seed=3).float() / 255
        want = _run(model, x)
        got = sess.run(None, {"image": x.numpy()})[0]
        assert got.shape == tuple(want.shape)
        assert float(np.abs(got - want.numpy()).max()) <= 1e-4 * max(1.0, float(want.abs().max()))


def test_zoedepth_export_runs_at_any_batch_and_size(tmp_path):
    """depthforge's export declares a dynamic batch; ZoeDepth's neck once split its stacked stages by the traced
    batch size (2), so the file failed at batch 1 and 3."""
    pytest.importorskip("onnxruntime")
    from depthforge.inference.export import export_module
    from depthforge.inference.onnx import session

    model = MODELS.build("zoedepth", size="micro").eval()
    liven(model.net)
    path = export_module(model, {}, tmp_path / "zoe.onnx")["path"]
    sess = session(path, ["CPUExecutionProvider"])
    for batch in (1, 3):
        for size in ((64, 96), (96, 64)):
            x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(batch))
            want = _run(model, x)
            got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
            assert got.shape == tuple(want.shape), (batch, size)
            assert float(np.abs(got - want.numpy()).max()) <= 1e-4 * max(1.0, float(want.abs().max())), (batch, size)


@pytest.mark.slow
def test_a_few_steps_make_the_loss_fall(saved):
    case, folder, net = saved
    torch.manual_seed(0)
    model = hf.from_pretrained_path(folder).train()
    h, w = case.size
    x = _images(case.size, seed=5).float() / 255
    yy = torch.linspace(1.0, 6.0, h).view(1, 1, h, 1).expand(2, 1, h, w)
    target = (yy + 2.0 * x[:, :1]).contiguous()  # depth in metres, related to the image
    valid = torch.rand(2, 1, h, w) > 0.2
    loss_fn = build_loss("silog-dav2" if case.output == "metric" else "ssi-gradient")
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    losses = []
    for _ in range(8):
        loss = loss_fn(model.forward_train(x)["depth"], target, valid)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.97 * losses[0], losses


def test_micro_sizes_build_and_declare_contracts():
    for name, output, multiple in [("depth-anything-v2", "disparity", 14), ("depth-anything-v2-metric", "metric", 14),
                                   ("dpt", "disparity", 1), ("zoedepth", "metric", 32), ("glpn", "metric", 32)]:
        model = MODELS.build(name, size="micro").eval()
        assert (model.output, model.multiple) == (output, multiple)
        assert _run(model, torch.rand(1, 3, 64 if multiple != 14 else 70, 96 if multiple != 14 else 98)).ndim == 4


def test_metric_max_depth_replaces_the_heads_range():
    model = MODELS.build("depth-anything-v2-metric", size="micro", max_depth=80).eval()
    assert model.max_depth == 80 and model.net.config.max_depth == 80
    liven(model.net)
    y = _run(model, torch.rand(1, 3, 70, 98))
    assert float(y.max()) <= 80 and float(y.max()) > 20  # sigmoid × 80
    with pytest.raises(DepthforgeError, match="max_depth"):
        MODELS.build("depth-anything-v2-metric", size="micro", max_depth=20.5)
    with pytest.raises(DepthforgeError, match="bin_configurations"):
        MODELS.build("zoedepth", size="micro", max_depth=10)


def test_wrong_kind_of_folder_is_one_line(saved, tmp_path):
    case, folder, net = saved
    other = "glpn" if case.name != "glpn" else "dpt"
    with pytest.raises(DepthforgeError) as e:
        MODELS.build(other, pretrained=str(folder))
    assert "\n" not in str(e.value) and str(folder) in str(e.value)
    assert hf.is_hf_folder(folder)
    assert not hf.is_hf_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert not hf.is_hf_folder(tmp_path)
    with pytest.raises(DepthforgeError, match="bert"):
        hf.from_pretrained_path(tmp_path)


def test_relative_and_metric_depth_anything_are_told_apart(saved, caplog):
    """A metric checkpoint is not a relative model; a relative one starts a metric model as DA-V2 fine-tunes its
    metric models: the encoder's weights loaded, the neck and head initialised, and the log says which."""
    case, folder, net = saved
    if not case.name.startswith("depth-anything"):
        pytest.skip("Depth Anything only")
    if case.name.endswith("metric"):
        with pytest.raises(DepthforgeError, match="build it as 'depth-anything-v2-metric'"):
            MODELS.build("depth-anything-v2", pretrained=str(folder))
        return
    with pytest.raises(DepthforgeError, match="pass max_depth"):
        MODELS.build("depth-anything-v2-metric", pretrained=str(folder))
    with caplog.at_level("INFO", logger="depthforge"):
        model = MODELS.build("depth-anything-v2-metric", pretrained=str(folder), max_depth=20)
    assert model.output == "metric" and model.max_depth == 20
    got, want = model.net.state_dict(), net.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want if k.startswith("backbone."))
    assert not torch.equal(got["head.conv3.weight"], want["head.conv3.weight"])  # a new head
    assert "loaded" in caplog.text and "(backbone.*)" in caplog.text and "initialised: head, neck" in caplog.text
    # sigmoid x max_depth: the same weights built for 10 m predict half the depth
    other = MODELS.build("depth-anything-v2-metric", pretrained=str(folder), max_depth=10)
    other.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 70, 98)
    torch.testing.assert_close(_run(model.eval(), x), 2 * _run(other.eval(), x))


def test_depthforge_load_takes_the_folder_and_the_cli_evaluates_it(saved, tmp_path):
    """The public entry points accept a Hugging Face folder as they accept a checkpoint: load (zero-shot), eval
    with --data (relative outputs aligned, and the results say how), and a checkpoint after fine-tuning."""
    import depthforge
    from depthforge.evaluation.evaluate import evaluate

    case, folder, net = saved
    predictor = depthforge.load(str(folder), device="cpu")
    assert predictor.output == case.output and predictor.backend.name == "torch"
    depth = predictor(np.zeros((40, 60, 3), np.uint8))
    assert depth.shape == (40, 60) and np.isfinite(depth).all()
    if case.name != "depth-anything-v2":
        return  # one evaluation run is enough to show the path
    results = evaluate(str(folder), data="synth", limit=2, out=tmp_path / "eval", pictures=False, progress=False)
    assert results["output"] == "disparity" and results["align"] == "lstsq-disparity"
    assert np.isfinite(results["model"]["abs_rel"])


def test_hub_id_without_network_is_one_fast_line(monkeypatch, tmp_path):
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    import depthforge

    for call in (lambda: MODELS.build("depth-anything-v2", pretrained="depth-anything/Depth-Anything-V2-Small-hf"),
                 lambda: hf.from_pretrained_path("Intel/zoedepth-nyu-kitti"),
                 lambda: depthforge.load("depth-anything/Depth-Anything-V2-Small-hf")):
        start = time.perf_counter()
        with pytest.raises(DepthforgeError) as e:
            call()
        assert time.perf_counter() - start < 5
        msg = str(e.value)
        assert "\n" not in msg and "hub" in msg and "--local-dir" in msg


@pytest.mark.parametrize("recipe,max_depth", [("depth-anything-v2-synth", 10), ("depth-anything-v2-nyu", 20),
                                              ("depth-anything-v2-kitti", 80)])
def test_recipes_build_their_model_and_loss(recipe, max_depth):
    from depthforge.recipe import load_config, resolve

    cfg = load_config(recipe)
    r = resolve(recipe)
    name, kw = r.model.name, r.model.kwargs
    if "pretrained" in kw:  # the hub checkpoint needs network: check the same keywords on the micro network
        assert "Metric-" + ("Indoor" if max_depth == 20 else "Outdoor") in kw.pop("pretrained")
        kw["size"] = "micro"
    model = MODELS.build(name, **kw)
    lname, lkw = r.loss.name, r.loss.kwargs
    loss = build_loss(lname, **lkw)
    assert model.metric and model.max_depth == loss.max_depth == max_depth and lname == "silog-dav2"
    h, w = cfg["data"]["size"]
    assert h % model.multiple == 0 and w % model.multiple == 0
    t = cfg["train"]
    assert t["optimizer"] == "adamw" and t["weight_decay"] == 0.01 and t["poly_power"] == 0.9
    if recipe != "depth-anything-v2-synth":  # DA-V2: encoder 5e-6, decoder 10x
        assert t["lr"] * t["encoder_lr_factor"] == pytest.approx(5e-6) and t["lr"] == pytest.approx(5e-5)


# A script run in a process of its own, stdin answering "y" to any prompt: every entry point that takes a model
# folder, given folders whose opening would run their code. It prints one JSON line per case.
ENTRY_POINTS = r'''
import contextlib, io, json, sys
import depthforge
from depthforge.cli import main
from depthforge.errors import DepthforgeError

cases = json.loads(sys.argv[1])
for name, argv in cases:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if argv[0] == "load":
                try:
                    depthforge.load(argv[1])
                    rc = 0
                except DepthforgeError as e:  # what the CLI prints
                    print(f"error: {e}", file=sys.stderr)
                    rc = 1
            else:
                rc = main(argv)
        except BaseException as e:  # a traceback: anything the CLI does not turn into one line
            rc = f"{type(e).__name__}: {e}"
    print(json.dumps({"case": name, "rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}), flush=True)
'''


def _untrusted_folders(root, marker):
    """{name: folder}: folders whose config.json points (auto_map) at a .py file, or whose weights are a pickle,
    that write ``marker`` if their code runs."""
    import shutil

    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('code ran')\n"
    auto_map = {k: "evil.Evil" for k in ("AutoConfig", "AutoModel", "AutoBackbone", "AutoModelForDepthEstimation")}

    class Evil:  # unpickling calls open(marker, "w")
        def __reduce__(self):
            return open, (str(marker), "w")

    torch.manual_seed(0)
    da = transformers.DepthAnythingForDepthEstimation(transformers.DepthAnythingConfig.from_dict(
        dict(hf.DepthAnythingV2.micro)))
    resnet = transformers.ResNetModel(transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 8, 8, 8],
                                                                depths=[1, 1, 1, 1], layer_type="basic"))
    folders = {}
    for name, net in (("da", da), ("resnet", resnet)):
        base = root / f"{name}-good"
        net.save_pretrained(base)
        # a model_type transformers does not know, its code named by auto_map
        remote = folders[f"{name}-remote"] = root / f"{name}-remote"
        shutil.copytree(base, remote)
        (remote / "evil.py").write_text(code)
        (remote / "config.json").write_text(json.dumps({"model_type": "evilnet", "auto_map": auto_map}))
        # a known model_type that also names code: transformers' own class is used, the code never runs
        known = folders[f"{name}-known"] = root / f"{name}-known"
        shutil.copytree(base, known)
        (known / "evil.py").write_text(code)
        cfg = json.loads((known / "config.json").read_text())
        (known / "config.json").write_text(json.dumps({**cfg, "auto_map": auto_map}))
        # the weights as a pickle only
        pickled = folders[f"{name}-pickle"] = root / f"{name}-pickle"
        pickled.mkdir()
        shutil.copy(base / "config.json", pickled)
        torch.save({"embeddings": Evil()}, pickled / "pytorch_model.bin")
    return folders


def test_no_code_from_a_model_folder_runs_and_nothing_prompts(tmp_path):
    """Property (b): through every entry point (depthforge.load, eval, predict, serve, a recipe's
    model.pretrained, a checkpoint whose pretrained keyword names the folder), with "y" waiting on stdin: a folder
    whose code would run is refused in one line or loaded with transformers' own classes; no code runs (no
    marker), no prompt text, no hang."""
    import subprocess
    import sys

    from PIL import Image

    marker = tmp_path / "MARKER"
    folders = _untrusted_folders(tmp_path, marker)
    Image.fromarray(np.zeros((42, 56, 3), np.uint8)).save(tmp_path / "photo.png")
    cases = []
    for key in ("da-remote", "da-pickle", "da-known"):
        folder = str(folders[key])
        cases.append((f"load {key}", ["load", folder]))
        if key == "da-known":
            continue  # it loads: the commands below would go on to work (serve would serve)
        ckpt = tmp_path / f"{key}.ckpt"
        torch.save({"depthforge": {"format": 2, "model": {"name": "depth-anything-v2", "kwargs": {
            "pretrained": folder}}}, "state_dict": {}}, ckpt)
        cases += [(f"eval {key}", ["eval", "--checkpoint", folder, "--data", "synth", "--limit", "1",
                                   "--out", str(tmp_path / f"eval-{key}")]),
                  (f"predict {key}", ["predict", str(tmp_path / "photo.png"), "--checkpoint", folder,
                                      "--out", str(tmp_path / f"predict-{key}")]),
                  (f"serve {key}", ["serve", "--checkpoint", folder, "--port", "8765"]),
                  (f"checkpoint {key}", ["eval", "--checkpoint", str(ckpt), "--data", "synth", "--limit", "1",
                                         "--out", str(tmp_path / f"ckpt-{key}")])]
    for key, recipe in (("da-remote", "depth-anything-v2-synth"), ("da-pickle", "depth-anything-v2-synth"),
                        ("resnet-remote", "unet-synth"), ("resnet-pickle", "unet-synth"),
                        ("resnet-known", "unet-synth")):
        cases.append((f"recipe {key}", ["train", "-c", recipe, "model.size=null", f"model.pretrained={folders[key]}",
                                        "data.n=4", "train.epochs=0", f"out={tmp_path / ('run-' + key)}",
                                        "--no-progress"]))
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(hf.__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", ENTRY_POINTS, json.dumps(cases)], input="y\n" * 200, env=env,
                          capture_output=True, text=True, timeout=400, cwd=tmp_path)
    everything = proc.stdout + proc.stderr
    for text in ("[y/N]", "custom code", "trust_remote_code"):
        assert text not in everything, everything[-3000:]
    assert not marker.exists(), "a model folder's code ran"
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {r["case"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert set(results) == {name for name, _ in cases}
    for name, r in results.items():
        if "known" in name:
            assert r["rc"] == 0, (name, r)
            continue
        errors = [line for line in r["stderr"].splitlines() if line.startswith("error: ")]
        assert r["rc"] == 1 and len(errors) == 1 and "Traceback" not in r["stderr"], (name, r)
        reason = "does not run a model folder's own code" if "remote" in name else "pickle"
        assert reason in errors[0] or "evilnet model, not a resnet backbone" in errors[0], (name, errors[0])


@pytest.mark.parametrize("saved", ["depth-anything-v2"], indirect=True)  # one family shows the path
def test_export_and_bench_take_a_hugging_face_folder(saved, tmp_path):
    """`depthforge export` and `bench --checkpoint` accept every source `depthforge.load` accepts: the exported
    ONNX (and its int8 twin, calibrated on the synthetic rooms: a folder carries no recipe) predicts as the
    folder does; bench refuses an exported file with one line before its timed subprocess."""
    import depthforge
    from depthforge.bench import check_args
    from depthforge.cli import main

    case, folder, _ = saved
    onnx = tmp_path / "da.onnx"
    assert main(["export", "--checkpoint", str(folder), "--onnx", str(onnx), "--int8", "2"]) == 0
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    ref = depthforge.load(str(folder), device="cpu")(image)
    for path in (onnx, tmp_path / "da-int8.onnx"):
        got = depthforge.load(str(path))(image)
        assert got.shape == ref.shape and np.isfinite(got).all()
    assert np.abs(depthforge.load(str(onnx))(image) - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())
    args = dict(size=(32, 48), batch=2, steps=1, width=0.125, settings=("fp32",), rounds=1, models=None,
                model_size=(32, 32), model_batch=2, predict_size=(32, 48), predict_train_steps=0, test_n=1,
                workers=0, data_n=4, sections=("predict",))
    check_args(**args, checkpoint=str(folder))  # a folder is a source
    with pytest.raises(DepthforgeError, match="exported model"):
        check_args(**args, checkpoint=str(onnx))
