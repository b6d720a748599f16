"""scripts/zoo_table.sh, the README's model-zoo table, end to end on a few tiny rooms: its recipes resolve, each
run trains into its folder with its wall time, and one comparison holds them all (ZoeDepth's BEiT once broke
compare's FLOP count after predicting); a run stopped half way continues where it stopped."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = "data.n=8 data.size=[32,64] test_data.n=2 test_data.size=[32,64] train.epochs=1"


# "processes": like tests/test_training_processes.py, it waits minutes on training subprocesses
pytestmark = [pytest.mark.slow, pytest.mark.processes]


def test_zoo_script_trains_each_model_and_compares_them(tmp_path):
    env = dict(os.environ, DEPTHFORGE=str(Path(sys.executable).parent / "depthforge"), ZOO_EXTRA=TINY,
               ZOO_COMPARE="--suite-n 2 --suites edges")
    out = tmp_path / "zoo"
    start = time.monotonic()
    run = subprocess.run(["bash", str(ROOT / "scripts" / "zoo_table.sh"), str(out), "seed-unet", "zoedepth"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - start
    assert run.returncode == 0, run.stderr[-2000:]
    walls = {name: int((out / name / "wall_s").read_text()) for name in ("seed-unet", "zoedepth")}
    for name, wall in walls.items():
        assert (out / name / "checkpoints" / "last.ckpt").is_file()
        assert f"{name}: trained in {wall} s" in run.stdout
    # each run's own time: a Python start alone takes over a second, and both fit in the script's time
    assert min(walls.values()) >= 1 and sum(walls.values()) <= elapsed + 1, (walls, elapsed)
    report = json.loads((out / "compare" / "compare.json").read_text())
    assert [m["label"] for m in report["models"]] == ["seed-unet", "zoedepth"]
    assert report["sets"]["test"]["images"] == 2 and list(report["sets"]) == ["test", "edges"]
    bad = subprocess.run(["bash", str(ROOT / "scripts" / "zoo_table.sh"), str(out), "no-such-model"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "no-such-model" in bad.stderr


def test_every_recipe_of_the_table_resolves_before_any_run_starts(tmp_path):
    """Every model's recipe and overrides are resolved up front (ZOO_DRY=1: only that): the ResNet-34 row once
    failed only after the seed U-Net's hours of training (its ``model.size=34`` was a number). A bad override is
    one line naming the model, and nothing is trained or written."""
    env = dict(os.environ, DEPTHFORGE=str(Path(sys.executable).parent / "depthforge"), ZOO_DRY="1")
    script = ["bash", str(ROOT / "scripts" / "zoo_table.sh"), str(tmp_path / "zoo")]
    run = subprocess.run(script, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "resnet-unet-34" in run.stdout and "resolve" in run.stdout, run.stderr[-2000:]
    env["ZOO_EXTRA"] = "model.nope=1"
    bad = subprocess.run([*script, "seed-unet", "dpt"], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("zoo_table: seed-unet: ") and "model.nope" in bad.stderr, bad.stderr
    assert list((tmp_path / "zoo").iterdir()) == []


def test_a_stopped_run_continues_where_it_stopped(tmp_path):
    """SIGTERM to the script's process group mid-run: the trainer saves its step, the script exits 143 and keeps
    the seconds so far; run again, it resumes that checkpoint (not a new run) and the wall time adds both parts."""
    import torch

    env = dict(os.environ, DEPTHFORGE=str(Path(sys.executable).parent / "depthforge"),
               ZOO_EXTRA=TINY.replace("train.epochs=1", "train.epochs=12") + " train.checkpoint_every_n_steps=1",
               ZOO_COMPARE="--suite-n 2 --suites edges")
    out = tmp_path / "zoo"
    cmd = ["bash", str(ROOT / "scripts" / "zoo_table.sh"), str(out), "glpn"]
    ckpt = out / "glpn" / "checkpoints" / "last.ckpt"
    first = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 300
    while not ckpt.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGTERM)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 143, err[-2000:]
    assert "glpn stopped (exit 143)" in err and not (out / "glpn" / "wall_s").exists()
    part = int((out / "glpn" / "wall_s.part").read_text())
    stopped_at = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
    assert 1 <= stopped_at < 12
    again = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"glpn: resuming {ckpt} ({part} s so far)" in again.stdout
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == 12
    wall = int((out / "glpn" / "wall_s").read_text())
    assert wall >= part + 1 and not (out / "glpn" / "wall_s.part").exists()
    assert f"glpn: trained in {wall} s" in again.stdout
