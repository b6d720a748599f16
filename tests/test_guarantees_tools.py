"""Guarantees of the commands besides train/predict, as properties: every option of every subcommand refuses a bad
value in one line before any work starts (a fuzz over the argparse parsers), a killed command leaves nothing that
the next run reads, and the defects of issue 16 (export's int8 count, bench sizes, eval's iBims-1 protocol, synth
sizes, compare's --resume, serve's limits and upload timeout)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, TINY, make_checkpoint
from depthforge.cli import COMMANDS, build_parser, main


class Reached(BaseException):
    """Raised where a command's real work would start: the value under test was accepted."""


# Where each command's work starts (patched to raise Reached): a bad value must be refused before it.
WORK = {
    "demo": ["depthforge.training.fit.make_splits"],
    "train": ["depthforge.training.fit.L.Trainer"],
    "eval": ["depthforge.evaluation.evaluate.per_image"],
    "compare": ["depthforge.evaluation.compare.model_facts", "depthforge.cli.compare.train_all"],
    "benchmark": ["depthforge.evaluation.benchmark.run_pair"],
    "predict": ["depthforge.inference.photos.predict_images", "depthforge.inference.video.predict_video"],
    "data synth": ["depthforge.data.synth.writer.render_scene"],
    "bench": ["depthforge.bench.ceiling"],
    "export": ["depthforge.inference.export._to_proto"],
    "serve": ["uvicorn.run"],
}

# "missing/x" is relative: an output folder of that name is created, and must be inside the working folder
BAD = ["0", "-1", "nan", "inf", "99999999999999999999", "", "missing/x", "DIR", "FILE"]

# (command, option, value) -> why a value that looks bad is right for that option. Everything else must be refused.
ACCEPTED = {
    ("predict", "--max-frames", "99999999999999999999"): "more frames than any video holds: all of them",
    ("predict", "--intrinsics", "99999999999999999999"): "a long focal length (a finite pinhole camera)",
    ("eval", "--max-depth", "inf"): "no depth cap: the official iBims-1 protocol's",
    ("eval", "--max-depth", "99999999999999999999"): "a cap beyond any depth: no cap",
    ("eval", "--out", "0"): "a folder named 0", ("eval", "--out", "-1"): "a folder named -1",
    ("eval", "--out", "nan"): "a folder named nan", ("eval", "--out", "inf"): "a folder named inf",
    ("eval", "--out", "99999999999999999999"): "a folder of that name", ("eval", "--out", "DIR"): "an existing folder",
    ("eval", "--out", "missing/x"): "a new folder", ("compare", "--out", "missing/x"): "a new folder",
    ("data synth", "--out", "missing/x"): "a new folder", ("predict", "--out", "missing/x"): "a new folder",
    ("eval", "--limit", "99999999999999999999"): "more than the set holds: all of it",
    ("compare", "--limit", "99999999999999999999"): "more than the set holds: all of it",
    ("bench", "--settings", ""): "the default settings", ("bench", "--models", ""): "every model, the default",
    ("compare", "--out", "0"): "a folder named 0", ("compare", "--out", "-1"): "a folder named -1",
    ("compare", "--out", "nan"): "a folder named nan", ("compare", "--out", "inf"): "a folder named inf",
    ("compare", "--out", "99999999999999999999"): "a folder of that name",
    ("compare", "--out", "DIR"): "an existing folder",
    ("compare", "--scenes", "0"): "no pictured scenes",
    **{("benchmark", "--out", v): "a folder of that name" for v in ("0", "-1", "nan", "inf", "99999999999999999999",
                                                                    "DIR", "missing/x")},
    ("benchmark", "--limit", "99999999999999999999"): "more than the set holds: all of it",
    ("data synth", "--out", "0"): "a folder named 0", ("data synth", "--out", "-1"): "a folder named -1",
    ("data synth", "--out", "nan"): "a folder named nan", ("data synth", "--out", "inf"): "a folder named inf",
    ("data synth", "--out", "99999999999999999999"): "a folder of that name",
    ("data synth", "--out", "DIR"): "an existing folder",
    ("export", "--int8", "99999999999999999999"): "every training image (a warning says how many)",
    ("bench", "--train-steps", "0"): "random weights, as its help says",
    ("bench", "--workers", "0"): "loading in the main process",
    ("serve", "--host", "0"): "0 is 0.0.0.0: every interface",
    ("serve", "--queue", "0"): "no prediction waits: busy (503) as soon as every worker runs",
    **{("data check", "--splits", v): "split names are free: a folder dataset without ROOT/NAME checks ROOT"
       for v in ("0", "-1", "nan", "inf", "99999999999999999999")},
    ("predict", "--out", "0"): "a folder named 0", ("predict", "--out", "-1"): "a folder named -1",
    ("predict", "--out", "nan"): "a folder named nan", ("predict", "--out", "inf"): "a folder named inf",
    ("predict", "--out", "99999999999999999999"): "a folder of that name",
    ("predict", "--out", "DIR"): "an existing folder",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny checkpoint, a tiny folder dataset and one photo, read-only inputs of every command."""
    root = tmp_path_factory.mktemp("inputs")
    from depthforge.data.synth import write_dataset

    data = write_dataset(root / "data", 2, size=(48, 64), progress=False)
    bench = root / "bench" / "realdata" / "tum"  # a benchmark root: one frame in realdata's TUM layout
    bench.mkdir(parents=True)
    from PIL import Image

    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(bench / "rgb_1.png")
    Image.fromarray(np.full((48, 64), 10000, np.uint16)).save(bench / "depth_1.png")
    return {"CKPT": str(make_checkpoint(root / "tiny.ckpt", size=(48, 64))), "DATA": str(data),
            "IMG": str(data / "rgb" / "00000.png"), "BENCH": str(root / "bench"), "root": root}


def baseline(world) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    """command -> (positionals, {option: values}): a valid call, whose work WORK intercepts."""
    ck, data, img = world["CKPT"], world["DATA"], world["IMG"]
    return {
        "demo": ([], {"--no-progress": []}),
        "train": ([], {"--no-progress": []}),
        "eval": ([], {"--checkpoint": [ck], "--data": [data], "--no-progress": [], "--out": ["e"]}),
        "compare": ([], {"--model": [ck], "--data": [data], "--suites": ["none"], "--no-progress": [],
                         "--out": ["c"]}),
        "benchmark": ([], {"--model": [ck], "--root": [world["BENCH"]], "--no-progress": [], "--out": ["b"]}),
        "predict": ([img], {"--checkpoint": [ck], "--out": ["p"]}),
        "models": ([], {}),
        "data synth": ([], {"--out": ["s"], "--n": ["1"], "--size": ["16", "16"]}),
        "data check": ([data], {}),
        "bench": ([], {"--json": []}),
        "export": ([], {"--checkpoint": [ck], "--onnx": ["m.onnx"]}),
        "serve": ([], {"--checkpoint": [ck]}),
    }


def value_options() -> list[tuple[str, str, object]]:
    """(command, option, nargs) for every option that takes a value, walking the real parsers."""
    out = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + [name])
            elif action.option_strings and action.nargs != 0 and action.option_strings[-1] not in ("-h",):
                out.append((" ".join(path), action.option_strings[-1], action.nargs))

    for command in COMMANDS:
        parser, _ = build_parser(command)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        walk(sub.choices[command], [command])
    return out


def argv_for(world, command: str, option: str, nargs, value: str) -> list[str]:
    positionals, options = baseline(world)[command]
    options = {k: v for k, v in options.items() if k != option}
    count = nargs if isinstance(nargs, int) else 1
    argv = command.split() + positionals
    for k, v in options.items():
        argv += [k, *v]
    return argv + [option] + [value] * count


def run_in_process(argv: list[str], capsys, command: str) -> tuple[int | str, str]:
    """(exit status, or "reached" when the command's work started; stderr) of ``depthforge ARGV``."""
    def stop(*args, **kwargs):
        raise Reached(command)

    with pytest.MonkeyPatch.context() as mp:
        for target in WORK.get(command.split()[0] if command.startswith(("demo", "train")) else command, []):
            module, name = target.rsplit(".", 1)
            mp.setattr(_resolve(module), name, stop)
        try:
            code: int | str = main(argv)
        except Reached:
            code = "reached"
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except Exception as e:  # what the command line would show as a traceback
            return "exception", capsys.readouterr().err + f"Traceback: {type(e).__name__}: {e}"
    return code, capsys.readouterr().err


def _resolve(dotted: str):
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")}


def _tmp_depthforge() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if "depthforge" in n}


def test_fuzz_every_option_of_every_command(world, tmp_path, capsys, monkeypatch):
    """Each option that takes a value, fed 0, -1, nan, inf, a huge int, '', a missing path, a folder and a file:
    refused with exit != 0, one line on stderr, no traceback, before the command's work starts and with nothing
    written outside the working folder — or listed in ACCEPTED with the reason it is right."""
    options = value_options()
    assert len(options) > 50 and {c for c, _, _ in options} >= {"eval", "compare", "bench", "export", "serve",
                                                                 "data synth", "data check"}
    cwd = tmp_path / "cwd"
    (cwd / "DIR").mkdir(parents=True)
    (cwd / "FILE").write_text("not a model\n")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("DEPTHFORGE_CACHE", str(cwd / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # "missing/x" is also the shape of a hub id
    inputs, temps = _snapshot(world["root"]), _tmp_depthforge()
    problems, start, spent = [], time.monotonic(), {}
    for command, option, nargs in options:
        t0 = time.monotonic()
        for value in BAD:
            arg = str(cwd / value) if value in ("DIR", "FILE") else value
            argv = argv_for(world, command, option, nargs, arg)
            code, err = run_in_process(argv, capsys, command)
            lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("WARNING", "INFO"))]
            why = ACCEPTED.get((command, option, value))
            if (command, option) == ("predict", "--gt") and value and Path(arg).exists():
                # an existing file or folder (earlier cases leave folders named 0, -1, nan ...): each image's depth
                # map is checked when that image is predicted; one that does not fit fails it, writing nothing
                why = "an existing file or folder"
            if why is not None:
                if code not in (0, "reached"):
                    problems.append(f"{' '.join(argv)}: listed as accepted ({why}) but exit {code}: {err!r}")
                continue
            if code in (0, "reached") or "Traceback" in err or len(lines) != 1:
                problems.append(f"{command} {option} {value!r}: exit {code}, stderr {err[-300:]!r}")
        spent[f"{command} {option}"] = time.monotonic() - t0
    print(sorted(spent.items(), key=lambda kv: -kv[1])[:10])
    assert not problems, f"{len(problems)} bad value(s) not refused in one line:\n" + "\n".join(problems)
    assert time.monotonic() - start < 90
    assert _snapshot(world["root"]) == inputs, "an input folder was written to"
    assert _tmp_depthforge() <= temps, "something was left in the system temp folder"


# --- issue 16, one test per defect ------------------------------------------------------------------------------

def recipe_checkpoint(path: Path, data: Path) -> Path:
    """A tiny seed U-Net whose recipe trains on the folder dataset ``data`` (export --int8 calibrates on it)."""
    from dataclasses import replace

    from depthforge import build_model
    from depthforge.models.checkpoint import meta, save_model

    torch.manual_seed(0)
    model = build_model("seed-unet", **TINY)
    model.set_contract(replace(model.contract, input_size=(48, 64)))
    config = {"model": {"name": "seed-unet", **TINY}, "loss": {"name": "seed"},
              "data": {"name": "folder", "root": str(data), "size": [48, 64]}}
    save_model(path, model, meta("seed-unet", TINY, model, config))
    return path


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_export_int8_says_how_many_images_it_calibrated_on(world, tmp_path, capsys, caplog):
    ckpt = recipe_checkpoint(tmp_path / "r.ckpt", Path(world["DATA"]))
    assert main(["export", "--checkpoint", str(ckpt), "--onnx", str(tmp_path / "m.onnx"), "--int8", "1000000",
                 "--no-check"]) == 0
    out = capsys.readouterr().out
    assert "calibrated on 2 training images" in out and "1000000" not in out
    assert "fewer than the 1000000 asked" in caplog.text
    for bad in ("0", "-3"):
        assert main(["export", "--checkpoint", str(ckpt), "--onnx", str(tmp_path / "n.onnx"), "--int8", bad]) == 1
        assert "calibration images must be 1 or more" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "n.onnx").exists()


def test_export_onto_a_folder_is_refused_in_one_line(world, tmp_path, capsys):
    (tmp_path / "model.onnx").mkdir()
    assert main(["export", "--checkpoint", world["CKPT"], "--onnx", str(tmp_path / "model.onnx")]) == 1
    assert "is a folder" in one_error_line(capsys.readouterr().err)
    assert not list((tmp_path / "model.onnx").iterdir()) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("argv, says", [
    (["--batch", "0"], "--batch 0: must be 1..256"),
    (["--size", "20000", "20000"], "--size 20000 20000: each side must be 16..4096"),
    (["--batch", "256", "--size", "4096", "4096"], "a batch may hold at most"),
    (["--model-batch", "99999999999999999999"], "--model-batch"),
])
def test_bench_refuses_absurd_sizes_before_running(argv, says, capsys, monkeypatch):
    """No row of zeros for --batch 0, no traceback (or memory exhaustion) for huge sizes: refused before the
    matrix-multiply ceiling, the first thing bench measures."""
    def measured(*args, **kwargs):
        raise AssertionError("bench started measuring")

    monkeypatch.setattr("depthforge.bench.ceiling", measured)
    assert main(["bench", "--json", *argv]) == 1
    assert says in one_error_line(capsys.readouterr().err)


def test_eval_with_the_official_ibims1_protocol_runs_end_to_end(world, tmp_path, capsys):
    """Its cap is infinite: metrics on every valid pixel, iBims-1's distance bands to 20 m, no seed figures
    (they are in units of the cap)."""
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", world["CKPT"], "--data", world["DATA"], "--protocol", "ibims1-official",
                 "--no-progress", "--out", str(out)]) == 0
    results = json.loads((out / "metrics.json").read_text())
    assert results["max_depth"] == float("inf") and results["images"] == 2
    assert np.isfinite(results["model"]["abs_rel"]) and np.isnan(results["model"]["seed_acc"])
    assert results["by_distance"]["band_m"][-1] == [19, 20]
    assert main(["eval", "--checkpoint", world["CKPT"], "--data", world["DATA"], "--max-depth", "0"]) == 1
    assert "the depth cap must be more than" in one_error_line(capsys.readouterr().err)


def test_synth_refuses_huge_sizes_and_counts_naming_the_limit(tmp_path, capsys, monkeypatch):
    def render(*args, **kwargs):
        raise AssertionError("rendering started")

    monkeypatch.setattr("depthforge.data.synth.writer.render_scene", render)
    for argv, says in ((["--size", "20000", "20000"], "at most 4096x4096"), (["--n", "1000000"], "1..100000")):
        assert main(["data", "synth", "--out", str(tmp_path / "s"), *argv]) == 1
        assert says in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "s").exists()


def test_folder_loader_skips_temp_files_and_synth_removes_its_own(world, tmp_path):
    """What a kill -9 during `data synth` leaves (files.atomic_path's temp files) is neither a sample nor left by
    the next run; other hidden files of the user are kept (and not read either)."""
    import shutil

    from depthforge.data import build_dataset
    from depthforge.data.synth import write_dataset

    data = tmp_path / "data"
    shutil.copytree(world["DATA"], data)
    for folder in ("rgb", "depth"):
        shutil.copy(data / folder / "00001.png", data / folder / ".00020.png.u5kvyygr.png")
    (data / ".intrinsics.txt.abcd1234.txt").write_text("half")
    (data / "rgb" / ".keep.png").write_bytes(b"mine")
    ds = build_dataset({"name": "folder", "root": str(data)}, split="test")
    assert len(ds) == 2 and ds.names == ["00000", "00001"]
    write_dataset(data, 2, size=(48, 64), progress=False)
    hidden = sorted(str(p.relative_to(data)) for p in data.rglob(".*"))
    assert hidden == ["rgb/.keep.png"]


def test_quantisation_works_beside_its_output_and_removes_what_killed_runs_left(world, tmp_path, monkeypatch):
    """Its work folder is a hidden one beside the output (not /tmp), gone afterwards; one whose process is gone
    (a kill -9) is removed by the next run, one of a live process is not."""
    from depthforge.inference import quantize
    from depthforge.inference.export import export_onnx

    src = tmp_path / "m.onnx"
    export_onnx(world["CKPT"], src, check=False)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".q.onnx.quant-{int(dead.stdout)}-abc123"
    live = tmp_path / f".q.onnx.quant-{os.getpid()}-def456"
    for d in (stale, live):
        d.mkdir()
        (d / "prepared.onnx").write_bytes(b"x" * 100)
    seen = []
    real = quantize._Reader.get_next

    def spy(self):
        seen.extend(p.name for p in tmp_path.iterdir() if p.is_dir() and p not in (stale, live, system_tmp))
        return real(self)

    monkeypatch.setattr(quantize._Reader, "get_next", spy)
    system_tmp = tmp_path / "system-tmp"  # would catch a work folder in /tmp
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    rng = np.random.default_rng(0)
    quantize.quantize_onnx(src, tmp_path / "q.onnx", [rng.random((1, 3, 48, 64), dtype=np.float32)])
    assert seen and all(n.startswith(".q.onnx.quant-") for n in seen)
    assert not stale.exists() and live.exists() and not any(system_tmp.iterdir())
    assert {p.name for p in tmp_path.iterdir()} == {"m.onnx", "q.onnx", live.name, "system-tmp"}


@pytest.mark.slow
def test_compare_runs_again_with_resume(world, tmp_path, capsys):
    """A compare whose runs exist (an interrupted one, or a larger budget) continues them with --resume; without
    it, the one line names options compare has."""
    recipe = "quick:data.n=8,test_data.n=2,model.width=0.125,model.levels=3,train.batch_size=4,data.size=[32,48]"
    argv = ["compare", "--recipe", recipe, "--suites", "none", "--out", str(tmp_path / "c"), "--no-progress"]
    assert main(argv + ["--budget-steps", "1"]) == 0
    capsys.readouterr()
    assert main(argv + ["--budget-steps", "2"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "--resume" in line and "out=DIR" not in line
    assert main(argv + ["--budget-steps", "2", "--resume"]) == 0
    report = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert [m["train"]["steps"] for m in report["models"]] == [2]


@pytest.mark.parametrize("option, value", [("--fov", "0"), ("--max-upload-mb", "0"), ("--max-megapixels", "-1"),
                                           ("--upload-timeout", "nan"), ("--fov", "180")])
def test_serve_refuses_bad_limits_before_starting(world, option, value, capsys, monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("the server started")

    monkeypatch.setattr("uvicorn.run", started)
    assert main(["serve", "--checkpoint", world["CKPT"], option, value]) == 1
    assert one_error_line(capsys.readouterr().err).startswith(f"error: {option} ")


@pytest.mark.parametrize("multipart", [False, True], ids=["raw-body", "multipart"])
def test_serve_answers_a_stalled_upload_with_408_in_bounded_time(world, multipart):
    """Headers and half a body, then nothing: the server answers 408 after --upload-timeout and closes, instead
    of holding the connection open for ever (uvicorn's own timeouts do not cover a body)."""
    import uvicorn

    import depthforge
    from depthforge.serve.app import create_app

    app = create_app(depthforge.load(world["CKPT"], device="cpu"), upload_timeout=1.0)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        ctype = "multipart/form-data; boundary=xyz" if multipart else "image/png"
        head = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: 2000\r\n\r\n").encode()
        body = (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n" if multipart
                else b"") + b"\x89PNG" + b"\0" * 500
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            start = time.monotonic()
            s.sendall(head + body)
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
            waited = time.monotonic() - start
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"--upload-timeout" in reply and 0.9 < waited < 8
    finally:
        server.should_exit = True
        thread.join(10)


# --- (e) a killed command leaves nothing the next run reads ----------------------------------------------------

def cli_process(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DEPTHFORGE_NO_MALLOC_TUNING": "1"}
    return subprocess.Popen([sys.executable, "-m", "depthforge", *argv], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    """kill -9 ``proc`` as soon as ``ready()`` holds (polled every few milliseconds)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()[-500:]}"
        assert time.monotonic() < deadline, "never got there"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


@pytest.mark.processes
def test_kill_9_during_data_synth_then_rerun(tmp_path):
    """kill -9 mid-render, plus the temp files a kill inside a write leaves (the window is too short to hit
    reliably): the rerun's folder is whole, holds no temp file, and the folder loader reads exactly the scenes."""
    from depthforge.data import build_dataset

    out = tmp_path / "synth"
    argv = ["data", "synth", "--out", str(out), "--n", "30", "--size", "48", "64"]
    proc = cli_process(argv, tmp_path)
    kill_when(proc, lambda: len(list((out / "depth").glob("*.png"))) >= 3 if (out / "depth").is_dir() else False)
    assert proc.returncode == -signal.SIGKILL
    for folder in ("rgb", "depth"):
        (out / folder / ".00020.png.u5kvyygr.png").write_bytes(b"\x89PNG half")
    rerun = cli_process(argv, tmp_path)
    assert rerun.wait(300) == 0, rerun.stderr.read().decode()[-500:]
    names = [f"{i:05d}.png" for i in range(30)]
    for folder in ("rgb", "depth"):
        assert sorted(p.name for p in (out / folder).iterdir()) == names
    ds = build_dataset({"name": "folder", "root": str(out)}, split="train")
    assert len(ds) == 30 and ds[29]["depth"].shape == (1, 48, 64)


@pytest.mark.processes
def test_kill_9_during_export_int8_then_rerun(world, tmp_path):
    """kill -9 while quantising: its work folder (hidden, beside the output) is removed by the next run, none is
    left in the system temp folder, and the rerun writes whole models."""
    import depthforge

    ckpt = recipe_checkpoint(tmp_path / "r.ckpt", Path(world["DATA"]))
    out = tmp_path / "out"
    system_tmp = Path(tempfile.gettempdir())
    before = {p.name for p in system_tmp.glob("depthforge-quant-*")}

    def quantising() -> bool:
        return any(out.glob(".m-int8.onnx.quant-*")) or bool({p.name for p in system_tmp.glob("depthforge-quant-*")}
                                                             - before)

    argv = ["export", "--checkpoint", str(ckpt), "--onnx", str(out / "m.onnx"), "--int8", "2"]
    proc = cli_process(argv, tmp_path)
    kill_when(proc, quantising)
    assert proc.returncode == -signal.SIGKILL
    rerun = cli_process(argv, tmp_path)
    assert rerun.wait(300) == 0, rerun.stderr.read().decode()[-500:]
    assert {p.name for p in system_tmp.glob("depthforge-quant-*")} <= before
    assert sorted(p.name for p in out.iterdir()) == ["m-int8.onnx", "m.onnx"]
    photo = np.random.default_rng(0).random((48, 64, 3), dtype=np.float32)
    assert depthforge.load(out / "m-int8.onnx")(photo).shape == (48, 64)
