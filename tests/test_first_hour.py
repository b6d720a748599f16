"""A new user's first hour without surprises: README's Python runs as written, eval writes where it says and never
over a result, ``depthforge models`` answers at once in 120 columns."""
from __future__ import annotations

import logging
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
# (one step, less than an epoch: the budget ``compare --budget-steps`` sets, where Lightning used to warn)
TINY_FIT = ["data.n=8", "data.size=[32,48]", "test_data.n=2", "model.width=0.125", "model.levels=2",
            "train.batch_size=4", "train.precision=32-true", "train.max_steps=1"]


def readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch, recwarn):
    """Each block in a fresh namespace, in an empty working folder. What a block takes from the reader's world is
    put there: the second block's trained run, photo and images in memory; the first block's fit trains on a few
    small scenes (the same call, smaller data, one step). No library warning reaches the reader: training for
    fewer steps than an epoch, on fewer batches than the logging interval, is nothing they did wrong."""
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
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()  # validated at the budget's last step
    leaked = [f"{w.filename}: {w.message}" for w in recwarn if "lightning" in w.filename]
    assert not leaked, leaked


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


def test_data_check_states_the_encoding_and_doubts_a_kitti_folder_read_as_mm(realdata, capsys, caplog, monkeypatch):
    """KITTI's ÷256 PNGs read as millimetres give 1.3–21.7 m, which looked like a fine indoor set."""
    from depthforge.data import folder

    monkeypatch.setattr(folder, "TOLD", set())  # said once per process: say it here
    caplog.set_level(logging.INFO)
    assert main(["data", "check", str(realdata / "kitti"), "--splits", "test"]) == 0
    out = capsys.readouterr().out
    assert "depth files read as millimetres (value / 1000) (encoding mm" in out
    assert "warning: test: depth read as millimetres" in out and "reaches 21.7 m" in out
    assert "kitti256 (up to 84.9 m)" in out and "no problems found" not in out
    assert any("depth files read as millimetres" in r.getMessage() for r in caplog.records)  # the folder says it
    assert any(r.levelname == "WARNING" and "kitti256" in r.getMessage() for r in caplog.records)
    assert main(["data", "check", str(realdata / "kitti"), "--splits", "test", "--encoding", "kitti256"]) == 0
    out = capsys.readouterr().out
    assert "read as KITTI's value / 256" in out and "warning" not in out and "5.13-84.89" in out


def test_a_folder_of_nyu_frames_gets_the_nyu_protocol(realdata, tmp_path, monkeypatch, caplog):
    import shutil

    caplog.set_level(logging.INFO)
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("rgb_1.png", "depth_1.png"):
        shutil.copy(realdata / "nyu" / name, folder / name)
    monkeypatch.chdir(tmp_path)
    ckpt = make_checkpoint(tmp_path / "m.ckpt", size=(48, 64))
    res = evaluate(ckpt, data=str(folder), progress=False, pictures=False)
    assert res["protocol"] == "nyu"
    assert any("NYU-Depth v2's white border" in r.getMessage() for r in caplog.records)
    res = evaluate(ckpt, data=str(folder), protocol="none", progress=False, pictures=False, out="asked",
                   overwrite=True)
    assert res["protocol"] == "none"  # asked for: kept


def test_compare_prints_a_summary_and_the_report_path(capsys):
    from depthforge.cli.compare import summary

    metrics = {c: 0.1 * i for i, c in enumerate(["d1", "abs_rel", "rmse", "whdr", "dbe_comp"] * 5)}
    report = {"main": "test", "out": "outputs/compare", "pictures": ["scenes_test.png", "suites.png"],
              "models": [{"label": f"model {k}", "parameters": 1e6, "gflops": 1.0, "latency_ms": 12.0}
                         for k in "ab"],
              "sets": {name: {"images": 4, "models": {f"model {k}": dict(metrics) for k in "ab"},
                              "best": {"abs_rel": ["model a"]}} for name in ("test", "edges", "clutter")}}
    text = summary(report)
    lines = text.splitlines()
    assert len(lines) <= 8 and max(len(line) for line in lines) <= 120
    assert "|" not in text  # no Markdown table
    assert lines[-1].startswith("report: outputs/compare/index.html")
    assert "model a" in lines[1] and "AbsRel" in lines[1] and "lowest AbsRel on edges: model a" in text


def test_the_page_says_which_model_it_serves(tmp_path):
    from fastapi.testclient import TestClient

    import depthforge
    from depthforge.serve.app import WEB, create_app
    from test_compare import recipe_checkpoint

    predictor = depthforge.load(recipe_checkpoint(tmp_path / "room-model.ckpt"), device="cpu")
    app = create_app(predictor, workdir=str(tmp_path / "work"))
    with TestClient(app) as c:
        served = c.get("/health").json()["served"]
        page = c.get("/").text
    assert served == {"source": "room-model.ckpt", "model": "seed-unet", "trained_on": "synth",
                      "input_size": [48, 64], "output": "metric"}
    assert 'id="model"' in page
    script = (WEB / "app.js").read_text()
    assert "h.served" in script and "trained on ${m.trained_on}" in script and "input ${size}" in script
