"""Nothing lost, nothing silently wrong: divergence, refused overwrites, checkpoint gaps, skip counts, colliding
outputs, and a catalogue of bad inputs — each a one-line error naming the thing and the problem, a non-zero
exit, and no earlier output lost."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthforge.cli import main
from depthforge.errors import DepthforgeError

from conftest import make_checkpoint

TINY = ["data.n=24", "data.size=[32,48]", "test_data.n=4", "model.width=0.125", "model.levels=3",
        "train.batch_size=8", "train.precision=32-true", "--no-progress"]


def one_line_failure(capsys, argv: list[str], *words: str) -> str:
    """Run the CLI; assert exit 1 and one stderr line naming ``words``; return that line."""
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def digest(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", f"out={out}", "train.epochs=1", *TINY]) == 0
    return out


@pytest.mark.slow
def test_divergence_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    err = one_line_failure(capsys, ["train", f"out={out}", "train.epochs=3", "train.lr=1e6",
                                    "train.checkpoint_every_n_steps=1", *TINY],
                           "diverged at step", "lower learning rate", "data check")
    last = out / "checkpoints" / "last.ckpt"
    if last.exists():  # written before the weights went bad, and said so
        assert f"last good checkpoint is kept: {last}" in err
        state = torch.load(last, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    else:
        assert "no checkpoint was written" in err


@pytest.mark.slow
def test_a_new_run_never_replaces_an_old_one(trained, capsys):
    before = digest(trained / "checkpoints")
    one_line_failure(capsys, ["train", f"out={trained}", "train.epochs=1", *TINY], "--resume", "out=", "--overwrite")
    assert digest(trained / "checkpoints") == before


@pytest.mark.slow
def test_final_step_saved_partial_writes_cleaned_and_zero_epochs_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / ".last.ckpt.abc123.ckpt").write_bytes(b"half a checkpoint from a killed write")
    assert main(["train", f"out={out}", "train.epochs=2", "train.max_steps=5", "train.checkpoint_every_n_steps=2",
                 *TINY]) == 0
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5
    assert not list((out / "checkpoints").glob(".*"))
    capsys.readouterr()
    assert main(["train", f"out={tmp_path / 'none'}", "train.epochs=0", *TINY]) == 0
    assert "no checkpoint written" in capsys.readouterr().out
    assert not (tmp_path / "none" / "checkpoints" / "last.ckpt").exists()


def test_absurd_depths_are_reported_by_data_check_and_skipped(tmp_path, capsys):
    from depthforge.data import SkipBad, build_dataset

    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(tmp_path / "rgb" / f"{i}.png")
        np.save(tmp_path / "depth" / f"{i}.npy", np.full((8, 8), 1e30 if i == 1 else 2.0, np.float32))
    assert main(["data", "check", str(tmp_path), "--encoding", "metres", "--splits", "test"]) == 1
    out = capsys.readouterr().out
    assert "absurd depth" in out and "1.npy" in out or "1: depth up to 1e+30 m" in out, out
    ds = SkipBad(build_dataset({"name": "folder", "root": str(tmp_path), "depth_encoding": "metres"}))
    assert [ds[i] is None for i in range(3)] == [False, True, False] and ds.num_skipped == 1


def test_skip_count_is_right_for_a_list_with_missing_files(tmp_path, caplog):
    """A CSV list naming 11 missing files out of 15: training reports 11 skipped, with workers too."""
    from depthforge.recipe import resolve
    from depthforge.training.loaders import make_loader, make_splits

    (tmp_path / "img").mkdir()
    rows = []
    for i in range(15):
        if i < 4:
            Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(tmp_path / "img" / f"{i}.png")
            Image.fromarray(np.full((8, 8), 2000, np.uint16)).save(tmp_path / "img" / f"{i}_d.png")
        rows.append(f"img/{i}.png,img/{i}_d.png")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    recipe = resolve("quick", [f"data={{name: folder, root: {tmp_path}}}", "data.size=[8, 8]", "data.val_fraction=0",
                               "train.num_workers=2", "train.batch_size=4"])
    source, train, _ = make_splits(recipe)
    batches = [b for b in make_loader(train, recipe, True) if b is not None]
    assert sum(len(b["image"]) for b in batches) == 4 and source.num_skipped == 11


def test_outputs_of_inputs_with_the_same_stem_do_not_collide(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for seed, path in enumerate((tmp_path / "a" / "good.jpg", tmp_path / "a" / "good.png", tmp_path / "b" / "good.png")):
        Image.fromarray(np.random.default_rng(seed).integers(0, 255, (20, 30, 3), np.uint8)).save(path)
    out = tmp_path / "a"  # predicting into one of the input folders, twice
    for _ in range(2):
        assert main(["predict", str(tmp_path / "a"), str(tmp_path / "b"), "--checkpoint", str(ckpt),
                     "--out", str(out), "--device", "cpu"]) == 0
        assert "3 written" in capsys.readouterr().out  # never its own outputs as photos
    npys = sorted(p.name for p in out.glob("*.npy"))
    assert len(npys) == 3 and len({np.load(out / n).tobytes() for n in npys}) == 3, npys


BAD_RECIPES = [
    ("train.batch_size=0", "train.batch_size"), ("train.epochs=-1", "train.epochs"),
    ("train.lr=abc", "train.lr"), ("model.width=0", "width"), ("train.precision=fp8", "train.precision"),
    ("data.bogus=1", "data.bogus"), ("train.epochs=1.7", "train.epochs"), ("train.epoch=3", "train.epochs"),
]


@pytest.mark.parametrize("override,named", BAD_RECIPES, ids=[b[0] for b in BAD_RECIPES])
def test_bad_recipe_values_are_one_line(override, named, tmp_path, capsys):
    one_line_failure(capsys, ["train", f"out={tmp_path}", override, "--no-progress"], named)
    assert not (tmp_path / "checkpoints").exists()


def test_a_recipe_missing_a_section(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {name: seed-unet}\ndata: {name: synth}\n")
    one_line_failure(capsys, ["train", "-c", str(recipe), f"out={tmp_path}"], "missing section", "loss")


@pytest.mark.slow
def test_resume_with_another_model_or_fewer_epochs(trained, capsys):
    before = digest(trained / "checkpoints")
    one_line_failure(capsys, ["train", f"out={trained}", "train.epochs=1", *TINY, "model.width=0.25", "--resume"],
                     "last.ckpt", "do not fit", "seed-unet")
    one_line_failure(capsys, ["train", f"out={trained}", "train.epochs=0", *TINY, "--resume"], "train.epochs")
    assert digest(trained / "checkpoints") == before


def test_resume_does_not_swallow_the_next_override():
    from depthforge.cli.train import split_resume
    from argparse import Namespace

    args = Namespace(resume="train.epochs=3", overrides=["out=x"])
    split_resume(args)
    assert args.resume == "last" and args.overrides == ["train.epochs=3", "out=x"]


def test_command_line_values(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    image = tmp_path / "p.png"
    Image.new("RGB", (20, 20)).save(image)
    one_line_failure(capsys, ["predict", str(image), "--checkpoint", str(ckpt), "--device", "tpu",
                              "--out", str(tmp_path / "o")], "tpu")
    one_line_failure(capsys, ["serve", "--checkpoint", str(ckpt), "--port", "70000"], "--port 70000")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    one_line_failure(capsys, ["eval", "--checkpoint", str(notes)], "notes.txt", "not a PyTorch checkpoint")
    one_line_failure(capsys, ["data", "check", str(tmp_path / "absent")], "absent", "not found")


def test_python_api_values(tmp_path):
    import depthforge

    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    for call, words in [(lambda: depthforge.load(ckpt, batch_size=0), "batch_size"),
                        (lambda: depthforge.load(ckpt, runtime="tensorrt"), "runtime"),
                        (lambda: depthforge.load(ckpt, device="tpu"), "tpu")]:
        with pytest.raises(DepthforgeError) as e:
            call()
        assert "\n" not in str(e.value) and words in str(e.value)


def test_checkpoint_with_a_nonsensical_input_size(tmp_path, capsys):
    from depthforge.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(make_checkpoint(tmp_path / "m.ckpt"))
    ckpt = {k: v for k, v in ckpt.items()}
    ckpt["depthforge"] = dict(ckpt["depthforge"], contract={**ckpt["depthforge"]["contract"], "input_size": [0, -5]})
    torch.save(ckpt, tmp_path / "bad.ckpt")
    one_line_failure(capsys, ["export", "--checkpoint", str(tmp_path / "bad.ckpt"), "--onnx",
                              str(tmp_path / "x.onnx")], "bad.ckpt", "input_size")


def test_predicting_with_diverged_weights_writes_nothing(tmp_path, capsys):
    from depthforge.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(make_checkpoint(tmp_path / "m.ckpt"))
    ckpt["state_dict"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v
                          for k, v in ckpt["state_dict"].items()}
    torch.save(dict(ckpt), tmp_path / "nan.ckpt")
    Image.new("RGB", (20, 20)).save(tmp_path / "p.png")
    assert main(["predict", str(tmp_path / "p.png"), "--checkpoint", str(tmp_path / "nan.ckpt"),
                 "--out", str(tmp_path / "o")]) == 1
    assert "0 written" in capsys.readouterr().out and not list((tmp_path / "o").glob("*"))
