"""Fine-tuning from pretrained weights: every family that takes ``pretrained`` loads a ``save_pretrained`` folder
of a tiny model (and a hub id from the cache offline), refuses bad folders in one line, and trains from it with
every module in training mode unless a recipe key freezes it; the README's fine-tuning commands run as written."""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from conftest import liven
from depthforge.errors import DepthforgeError
from depthforge.models import MODELS, hf
from depthforge.models.backbones import build_backbone

REPO = Path(__file__).resolve().parents[1]
SIZE, SIZE14 = (64, 96), (56, 84)  # multiples of 32; of the DINOv2 patch (14)
TINY_BACKBONES = {
    "resnet": (transformers.ResNetConfig, transformers.ResNetModel,
               dict(embedding_size=8, hidden_sizes=[8, 16, 16, 24], depths=[1, 1, 1, 1], layer_type="basic")),
    "convnext": (transformers.ConvNextConfig, transformers.ConvNextModel,
                 dict(hidden_sizes=[8, 16, 16, 24], depths=[1, 1, 1, 1])),
    "swin": (transformers.SwinConfig, transformers.SwinModel,
             dict(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=7)),
    "dinov2": (transformers.Dinov2Config, transformers.Dinov2Model,
               dict(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32)),
}
TINY_DEPTH = {"depth-anything-v2": hf.DepthAnythingV2, "dpt": hf.DPT, "zoedepth": hf.ZoeDepth, "glpn": hf.GLPN}
# family -> (folder, extra model keys, loss, data size, the encoder's key prefix in the folder's weights)
FAMILIES = {
    "resnet-unet": ("resnet", {}, "silog", SIZE),
    "convnext-unet": ("convnext", {}, "silog", SIZE),
    "depthformer": ("swin", {"size": "micro"}, "silog", SIZE),
    "binsformer": ("swin", {"size": "micro"}, "silog", SIZE),
    "depth-anything-v2": ("depth-anything-v2", {}, "ssi-gradient", SIZE14),
    # DA-V2's metric models start from the relative one's encoder, with a new head
    "depth-anything-v2-metric": ("depth-anything-v2", {"max_depth": 10}, "silog", SIZE14),
    "dpt": ("dpt", {}, "ssi-gradient", SIZE),
    "zoedepth": ("zoedepth", {}, "silog", SIZE),
    "glpn": ("glpn", {}, "silog", SIZE),
}


SAVED: dict[Path, dict[str, torch.Tensor]] = {}  # folder -> the saved model's weights, by transformers' names


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """save_pretrained folders of tiny random transformers models: the four backbones' image models and the four
    depth model types."""
    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    nets = {name: model(config(**kwargs)) for name, (config, model, kwargs) in TINY_BACKBONES.items()}
    nets |= {name: cls(size="micro").net for name, cls in TINY_DEPTH.items()}
    for name in TINY_DEPTH:  # a trained model's head is alive; transformers' init (std 0.02) leaves DPT's dead
        liven(nets[name])
    for name, net in nets.items():
        net.save_pretrained(root / name)
        SAVED[root / name] = {k: v.clone() for k, v in net.state_dict().items()}
    return {name: root / name for name in nets}


@pytest.fixture(scope="module")
def rooms(tmp_path_factory) -> Path:
    """A folder dataset written by ``depthforge data synth``."""
    from depthforge.cli import main

    out = tmp_path_factory.mktemp("rooms")
    assert main(["data", "synth", "--out", str(out), "--n", "4", "--size", *map(str, SIZE)]) == 0
    return out


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: HF_HUB_OFFLINE=1 and an empty hub cache."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    return tmp_path / "hub-cache"


def _same(saved: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> int:
    """How many tensors of ``state`` the folder's weights hold, equal, under the same name or a prefixed one."""
    return sum(any((k == name or k.endswith("." + name) or name.endswith("." + k)) and v.shape == w.shape
                   and torch.equal(v, w) for name, w in saved.items()) for k, v in state.items())


def _in_eval(module: torch.nn.Module) -> list[str]:
    return [name or "(root)" for name, m in module.named_modules() if not m.training]


@pytest.mark.parametrize("family", list(TINY_BACKBONES))
def test_backbone_loads_from_a_folder_and_from_the_cache_offline(family, folders, offline):
    """transformers 5's AutoBackbone rejected every local folder (a hub-id check); the cache needed network."""
    folder = folders[family]
    saved = SAVED[folder]
    for source in (str(folder), "acme/tiny-" + family):
        if "/" in source and not Path(source).exists():  # a hub id cached by an earlier download
            snap = offline / f"models--acme--tiny-{family}"
            shutil.copytree(folder, snap / "snapshots" / ("0" * 40))
            (snap / "refs").mkdir()
            (snap / "refs" / "main").write_text("0" * 40)
        backbone = build_backbone(family, "micro", source)
        got = backbone.model.state_dict()
        # all of the backbone but ConvNeXt/Swin's own output norms (their image models' final norm is not used)
        assert _same(saved, got) >= len(got) - 8, (_same(saved, got), len(got))
        assert not _in_eval(backbone), "from_pretrained leaves modules in eval mode"
        x = torch.rand(1, 3, 56 if family == "dinov2" else 64, 84 if family == "dinov2" else 96)
        assert len(backbone(x)) == 4


def test_bad_pretrained_sources_are_one_line(folders, offline, tmp_path):
    cases = [  # (family, source, what the line must say)
        ("convnext", folders["resnet"], f"{folders['resnet']}: a resnet model, not a convnext backbone"),
        ("resnet", "acme/not-cached", "hf download acme/not-cached --local-dir DIR"),
        ("resnet", tmp_path / "missing", "no such folder"),
    ]
    partial = tmp_path / "partial"
    shutil.copytree(folders["resnet"], partial)
    weights = load_file(partial / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("encoder.stages.3")}, partial / "model.safetensors")
    cases.append(("resnet", partial, "only partly: 18 tensor(s) not loaded (encoder.stages.3"))
    for family, source, says in cases:
        with pytest.raises(DepthforgeError) as e:
            build_backbone(family, "micro", str(source))
        assert "\n" not in str(e.value) and says in str(e.value), str(e.value)
    assert "model.partial_weights=true" in str(e.value)
    model = MODELS.build("resnet-unet", pretrained=str(partial), partial_weights=True)  # allowed on purpose
    assert torch.equal(model.backbone.model.state_dict()["embedder.embedder.convolution.weight"],
                       weights["embedder.embedder.convolution.weight"])
    with pytest.raises(DepthforgeError, match="a glpn model, not dpt"):
        MODELS.build("dpt", pretrained=str(folders["glpn"]))


def _recipe(family: str, folders: dict[str, Path], rooms: Path, out: Path, **train) -> dict:
    folder, extra, loss, size = FAMILIES[family]
    return {"name": f"finetune-{family}", "seed": 0, "out": str(out),
            "model": {"name": family, "pretrained": str(folders[folder]), **extra},
            "loss": {"name": loss},
            "data": {"name": "folder", "root": str(rooms), "size": list(size), "val_fraction": 0.0},
            "train": {"epochs": 6, "batch_size": 4, "optimizer": "adam", "lr": 1e-3, "schedule": "constant",
                      "log_every_n_steps": 1, "num_workers": 0, **train},
            "eval": {"protocol": "none", "max_depth": 10.0}}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_builds_from_its_folder_in_training_mode(family, folders, rooms, offline, tmp_path):
    from depthforge.recipe import validate
    from depthforge.training.module import DepthModule

    module = DepthModule(validate(_recipe(family, folders, rooms, tmp_path)))
    assert not _in_eval(module)
    folder = folders[FAMILIES[family][0]]
    saved = SAVED[folder]
    encoder = module.model.encoder().state_dict()
    assert _same(saved, encoder) >= len(encoder) - 8, (_same(saved, encoder), len(encoder))


@pytest.mark.parametrize("keys,frozen", [({"freeze_encoder": True}, "encoder"), ({"freeze_bn": True}, "bn")])
def test_freeze_keys_hold_what_they_name_and_say_so(keys, frozen, folders, rooms, offline, tmp_path, caplog):
    from depthforge.recipe import validate
    from depthforge.training.module import DepthModule

    recipe = _recipe("resnet-unet", folders, rooms, tmp_path)
    recipe["model"].update(keys)
    with caplog.at_level("INFO", logger="depthforge"):
        module = DepthModule(validate(recipe))
    module.train()
    model = module.model
    held = model.encoder() if frozen == "encoder" else None
    for name, m in model.named_modules():
        is_held = (held is not None and any(m is x for x in held.modules())) or \
            (frozen == "bn" and isinstance(m, torch.nn.BatchNorm2d))
        assert m.training != is_held, name
        assert all(p.requires_grad != is_held for p in m.parameters(recurse=False)), name
    assert f"model.freeze_{frozen if frozen == 'bn' else 'encoder'}" in caplog.text
    with pytest.raises(DepthforgeError, match="no BatchNorm"):
        DepthModule(validate({**recipe, "model": {"name": "depth-anything-v2", "pretrained":
                                                  str(folders["depth-anything-v2"]), "freeze_bn": True}}))


def _train_losses(out: Path) -> list[float]:
    rows = []
    for path in sorted(out.glob("logs/version_*/metrics.csv")):
        with path.open() as f:
            rows += [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_fine_tunes_from_a_pretrained_folder_offline(family, folders, rooms, offline, tmp_path):
    """Each family fine-tunes from a tiny save_pretrained folder, offline, on a folder dataset: the loss falls
    and Lightning finds no module in eval mode at the start."""
    from depthforge.training.fit import fit

    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(_recipe(family, folders, rooms, out), progress=False)
    eval_mode = [str(w.message) for w in caught if "eval mode" in str(w.message)]
    assert not eval_mode, eval_mode
    losses = _train_losses(out)
    assert len(losses) == 6 and bool(torch.isfinite(torch.tensor(losses)).all())
    # the same four images each step: the loss falls over the run and at most steps (a dead network stays flat)
    assert losses[-1] < losses[0] and sum(b < a for a, b in zip(losses, losses[1:])) >= 3, losses
    assert (out / "checkpoints" / "last.ckpt").is_file()


def _readme_block(marker: str) -> list[str]:
    """The commands of the README's bash block that follows ``marker`` (continuation lines joined)."""
    text = (REPO / "README.md").read_text()
    start = text.index(marker)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S).group(1)
    block = block.replace("\\\n", " ")
    return [line.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.slow
def test_readme_fine_tuning_commands_run_as_written(tmp_path, offline):
    """The README's fine-tuning commands, verbatim, in an empty folder, offline: a tiny random model folder (its
    "no network" line), then fine-tune, evaluate and predict with the result."""
    commands = _readme_block("<!-- fine-tuning commands -->")
    assert any(c.startswith("depthforge train") for c in commands)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"), "DEPTHFORGE_NO_MALLOC_TUNING": "1",
           "PYTHONPATH": str(REPO / "src"), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    for command in commands:
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, (command, done.stderr[-3000:])
    assert (tmp_path / "runs/finetune/checkpoints/best.ckpt").is_file()
    assert json.loads((tmp_path / "runs/finetune/eval/metrics.json").read_text())["images"] > 0
