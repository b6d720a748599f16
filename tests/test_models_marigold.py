"""Marigold against ``diffusers.MarigoldDepthPipeline``: a tiny random pipeline saved with ``save_pretrained`` (a
real diffusers folder: model_index.json, unet/, vae/, scheduler/, text_encoder/, tokenizer/) is loaded by
depthforge and by diffusers, and both predict the same images with the same seed and scheduler."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import depthforge
from depthforge.errors import DepthforgeError
from depthforge.evaluation.evaluate import align_for
from depthforge.evaluation.metrics import to_metres
from depthforge.models import build_model
from depthforge.models.checkpoint import load_checkpoint, meta, save_model
from depthforge.models.marigold import SIZES


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    from diffusers import AutoencoderKL, DDIMScheduler, MarigoldDepthPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("marigold")
    (root / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}))
    (root / "merges.txt").write_text("#version: 0.2\n")
    torch.manual_seed(0)
    spec = SIZES["micro"]
    text = CLIPTextModel(CLIPTextConfig(vocab_size=3, hidden_size=spec["text"][1], intermediate_size=16,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = DDIMScheduler.from_config({k: v for k, v in spec["scheduler"].items() if k != "_class_name"})
    pipe = MarigoldDepthPipeline(
        unet=UNet2DConditionModel(**spec["unet"]), vae=AutoencoderKL(**spec["vae"]), scheduler=scheduler,
        text_encoder=text, tokenizer=CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"),
                                                   model_max_length=77),
        prediction_type="depth", default_denoising_steps=2, default_processing_resolution=0)
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"


def reference(folder, model, image, steps, ensemble, resolution, seed):
    """The diffusers pipeline of ``folder`` run over ``model``'s U-Net and VAE, once their weights are shown to be
    the pipeline's: two instances of the same module with the same weights differ by 1e-7 on this CPU (memory
    layout picks the kernels), which the ensemble's BFGS alignment amplifies to 1e-1."""
    from diffusers import MarigoldDepthPipeline

    pipe = MarigoldDepthPipeline.from_pretrained(folder)
    for part in ("unet", "vae"):
        theirs, ours = getattr(pipe, part).state_dict(), getattr(model, part).state_dict()
        assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k]) for k in ours)
    pipe.register_modules(unet=model.unet, vae=model.vae)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        return pipe(image, num_inference_steps=steps, ensemble_size=ensemble, processing_resolution=resolution,
                    batch_size=len(image) * ensemble, generator=torch.Generator().manual_seed(seed),
                    output_type="pt").prediction


@pytest.mark.parametrize("scheduler,steps,ensemble,resolution,seed", [
    ("DDIMScheduler", 2, 1, 0, 0),     # the folder's defaults, as the pipeline's
    ("DDIMScheduler", 1, 3, 24, 5),    # resized to 24 on the longer side, padded, a 3-member ensemble aligned
    ("LCMScheduler", 2, 1, 0, 3),      # LCM draws fresh noise between steps from the same generator
])
def test_matches_the_diffusers_pipeline(pipeline_dir, tmp_path, scheduler, steps, ensemble, resolution, seed):
    folder = pipeline_dir
    if scheduler != "DDIMScheduler":  # the same pipeline with another of Marigold's schedulers
        folder = tmp_path / "pipe"
        shutil.copytree(pipeline_dir, folder)
        index = json.loads((folder / "model_index.json").read_text())
        index["scheduler"] = ["diffusers", scheduler]
        (folder / "model_index.json").write_text(json.dumps(index))
        cfg = json.loads((folder / "scheduler/scheduler_config.json").read_text())
        (folder / "scheduler/scheduler_config.json").write_text(json.dumps({**cfg, "_class_name": scheduler}))
    image = torch.rand(2, 3, 31, 45)  # odd: padded to the VAE's multiple, cut off after
    kwargs = {} if (steps, ensemble, resolution, seed) == (2, 1, 0, 0) else dict(  # else the folder's defaults
        steps=steps, ensemble=ensemble, resolution=resolution, seed=seed)
    model = build_model("marigold", pretrained=str(folder), **kwargs).eval()
    assert type(model.scheduler).__name__ == scheduler
    with torch.no_grad():
        ours = model(image)
    ref = reference(folder, model, image, steps, ensemble, resolution, seed)
    assert ours.shape == ref.shape == (2, 1, 31, 45)
    assert float(ref.std()) > 1e-3  # the depth varies: the comparison means something
    assert torch.allclose(ours, ref, atol=1e-5, rtol=0), float((ours - ref).abs().max())


def test_loads_by_folder_declares_affine_invariant_depth_and_evaluates_with_scale_and_shift(pipeline_dir):
    predict = depthforge.load(pipeline_dir, device="cpu")
    assert predict.output == "relative" and predict.contract.shift
    depth = predict(np.random.default_rng(0).integers(0, 256, (21, 30, 3)).astype(np.uint8))
    assert depth.shape == (21, 30) and np.isfinite(depth).all()
    assert align_for(predict, None) == "lstsq"
    # an affine-invariant prediction is brought to metres by least squares in depth, shift included
    gt = 1 + 4 * depth.astype(np.float64)
    pred = 0.5 * depth + 0.2
    assert np.allclose(to_metres(pred, gt, gt > 0, "relative", align_for(predict, None)), gt)


def test_one_step_fine_tuning_predicts_as_it_trained_and_checkpoints_say_so(tmp_path):
    torch.manual_seed(0)
    model = build_model("marigold", size="micro", steps=3, ensemble=2)
    image = torch.rand(1, 3, 16, 24)
    out = model.forward_train(image)["depth"]
    out.mean().backward()
    assert out.shape == (1, 1, 16, 24) and model.unet.conv_in.weight.grad is not None
    model.eval()
    assert (model.noise, model.steps, model.ensemble) == ("zeros", 1, 1)
    with torch.no_grad():
        first = model(image)
        model.seed = 7
        assert torch.equal(model(image), first)  # deterministic: no noise drawn
    info = meta("marigold", {"size": "micro"}, model)
    save_model(tmp_path / "m.ckpt", model, info)
    again, saved = load_checkpoint(tmp_path / "m.ckpt")
    assert saved["model"]["kwargs"]["noise"] == "zeros" and torch.equal(again.text, model.text)
    with torch.no_grad():
        assert torch.allclose(again(image), first, atol=1e-6)


def test_a_pretrained_vae_stays_frozen(pipeline_dir):
    model = build_model("marigold", pretrained=str(pipeline_dir))
    assert not any(p.requires_grad for p in model.vae.parameters())
    assert all(p.requires_grad for p in model.unet.parameters())


@pytest.mark.parametrize("option", [{"ensemble": 0}, {"steps": 0}, {"resolution": -1}, {"noise": "pink"}])
def test_bad_options_are_one_line(option):
    with pytest.raises(DepthforgeError) as e:
        build_model("marigold", size="micro", **option)
    assert "\n" not in str(e.value) and next(iter(option)) in str(e.value)


def edit_index(folder, **changes):
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, **changes}))


def test_folders_with_code_pickles_or_another_pipeline_are_refused(pipeline_dir, tmp_path):
    cases = {
        "custom": (dict(unet=["my_pipeline", "MyUNet"]), "never runs a folder's own code"),
        "normals": (dict(_class_name="MarigoldNormalsPipeline"), "not a MarigoldDepthPipeline"),
        "scheduler": (dict(scheduler=["diffusers", "EulerDiscreteScheduler"]), "scheduler"),
    }
    for name, (changes, said) in cases.items():
        folder = tmp_path / name
        shutil.copytree(pipeline_dir, folder)
        edit_index(folder, **changes)
        with pytest.raises(DepthforgeError, match=said) as e:
            build_model("marigold", pretrained=str(folder))
        assert "\n" not in str(e.value)
    folder = tmp_path / "pickled"
    shutil.copytree(pipeline_dir, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(DepthforgeError, match="pickle, which depthforge never opens"):
        build_model("marigold", pretrained=str(folder))


def test_onnx_export_is_refused_with_the_reason(tmp_path):
    from depthforge.inference.export import export_module

    model = build_model("marigold", size="micro")
    with pytest.raises(DepthforgeError, match="cannot be exported as one ONNX graph") as e:
        export_module(model, meta("marigold", {"size": "micro"}, model), tmp_path / "m.onnx")
    assert "\n" not in str(e.value) and not (tmp_path / "m.onnx").exists()
