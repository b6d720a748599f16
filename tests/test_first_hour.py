"""A new user's first hour without surprises: README's Python runs as written, eval writes where it says and never
over a result, ``depthforge models`` answers at once in 120 columns."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, make_checkpoint
from depthforge.cli import main
from depthforge.errors import DepthforgeError
from depthforge.evaluation.evaluate import default_out, evaluate

# train the README's recipe on a handful of small scenes: the block's call, at a test's size
TINY_FIT = ["data.n=8", "data.size=[32,48]", "test_data.n=2", "model.width=0.125", "model.levels=2",
            "train.batch_size=4", "train.precision=32-true"]


def readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    """Each block in a fresh namespace, in an empty working folder. What a block takes from the reader's world is
    put there: the second block's trained run, photo and images in memory; the first block's fit trains on a few
    small scenes (the same call, smaller data)."""
    import torch

    from depthforge.recipe import apply_overrides
    from depthforge.training import fit as fit_module

    blocks = readme_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    real_fit = fit_module.fit
    monkeypatch.setattr(fit_module, "fit", lambda recipe, **kw: real_fit(
        apply_overrides(recipe.to_dict(), TINY_FIT + [f"out={tmp_path / 'run'}"]), progress=False, **kw))
    make_checkpoint(Path("runs/quick/checkpoints/best.ckpt"), size=(32, 48))
    rgb = (np.random.default_rng(0).uniform(0, 255, (40, 56, 3))).astype(np.uint8)
    Image.fromarray(rgb).save("photo.jpg")
    given = {"rgb_uint8": rgb, "gray_uint16": (rgb[..., 0].astype(np.uint16) * 200),
             "pil_image": Image.fromarray(rgb)}
    for i, block in enumerate(blocks):
        namespace = {k: v for k, v in given.items() if k in block}
        torch.manual_seed(0)
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 — the block's own error, named
            pytest.fail(f"README python block {i + 1} fails as written: {type(e).__name__}: {e}")


def test_eval_writes_beside_a_run_else_in_the_working_folder(tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    ckpt = make_checkpoint(run / "checkpoints" / "best.ckpt", size=(32, 48))
    export = make_checkpoint(tmp_path / "elsewhere" / "model.ckpt", size=(32, 48))
    assert default_out(ckpt) == run.resolve() / "eval"
    assert default_out(export) == Path("eval-model")  # not /…/elsewhere/../eval
    assert default_out("depth-anything/Depth-Anything-V2-Small-hf") == Path("eval-Depth-Anything-V2-Small-hf")

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = sorted(p.name for p in tmp_path.iterdir())
    evaluate(export, data="synth", limit=1, progress=False, pictures=False)
    assert (work / "eval-model" / "metrics.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written beside the model file
    with pytest.raises(DepthforgeError, match="holds an evaluation already.*--overwrite"):
        evaluate(export, data="synth", limit=1, progress=False, pictures=False)
    assert main(["eval", "--checkpoint", str(export), "--data", "synth", "--limit", "1", "--no-progress"]) == 1
    evaluate(export, data="synth", limit=1, progress=False, pictures=False, overwrite=True)


def test_models_answers_at_once_in_120_columns():
    """Without --measure the table comes from the recorded facts: no model is built (ZoeDepth alone has 333 M
    parameters), so it answers in well under 3 s, and no line is wider than 120 columns."""
    script = "import sys; from depthforge.cli import main; code = main(['models']); " \
             "print('torch imported:', 'torch' in sys.modules, file=sys.stderr); sys.exit(code)"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "300"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert "zoedepth" in proc.stdout and "seed-unet" in proc.stdout and "GFLOPs" in proc.stdout
    assert "torch imported: False" in proc.stderr  # nothing built, not even torch loaded
    assert seconds < 3 * 3, seconds  # 3 s on an idle machine (0.8 s measured); this one is shared


def test_models_recorded_facts_match_a_build():
    """The recorded facts are what ``--measure`` counts (the smallest model, built here) and cover every
    registered model."""
    from depthforge.cli.model_facts import FACTS, SIZE
    from depthforge.models.base import MODELS
    from depthforge.models.catalog import catalog

    assert set(FACTS) == set(MODELS.info)
    measured = catalog(SIZE, ["seed-unet"])[0]
    recorded = FACTS["seed-unet"]
    assert recorded["parameters"] == measured["parameters"]
    assert recorded["gflops"] == pytest.approx(measured["gflops"], rel=1e-3)
    assert (recorded["output"], recorded["max_depth"], recorded["multiple"]) == \
        (measured["output"], measured["max_depth"], measured["multiple"])
