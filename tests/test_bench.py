import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch

from depthforge import allocator
from depthforge.bench import bench, default_settings

pytestmark = pytest.mark.slow

TRAIN_KEYS = ("step_s", "cpu_s", "peak_rss_mb", "samples_per_s", "gflops_per_s", "fraction_of_ceiling", "ratio")


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def test_bench_reports_every_figure_on_a_tiny_setting():
    r = bench(size=(32, 48), batch=2, steps=1, width=0.125, models=["glpn"], model_size=(32, 32),
              model_kwargs="test", predict_size=(32, 48), predict_train_steps=2, test_n=2, calib_n=1, workers=0,
              data_n=4, synth_n=2, file_size=(48, 64), progress=False)
    json.dumps(r)  # one JSON object
    assert finite(r["ceiling"]["bf16_gflops"]) and finite(r["ceiling"]["fp32_gflops"])
    assert r["ceiling"]["bf16_gflops"] > 0 and r["ceiling"]["fp32_gflops"] > 0
    assert r["machine"]["allocator"] and finite(r["machine"]["load_before"])
    t = r["train"]
    assert set(t["settings"]) == set(default_settings()) and finite(t["gflop_per_step"]) and t["gflop_per_step"] > 0
    for row in t["settings"].values():
        assert all(finite(row[k]) and row[k] > 0 for k in TRAIN_KEYS), row
        assert row["peak_rss_mb"] > 50 and finite(row["loss"])
    assert finite(t["speedup_fastest_vs_fp32"])
    for name in ("glpn",):  # one family: each runs in a process of its own (~30 s here); the seed U-Net is in "train"
        row = r["models"][name]
        assert all(finite(row[k]) and row[k] > 0 for k in ("step_s", "peak_rss_mb", "parameters", "gflop_per_step",
                                                            "fraction_of_ceiling")), row
    p = r["predict"]
    assert "trained 2 steps" in p["model"]
    assert set(p["backends"]) == {"torch_fp32", "torch_bf16", "onnxruntime_fp32", "onnxruntime_int8",
                                  "openvino_fp32", "openvino_bf16", "openvino_int8"}
    for name, row in p["backends"].items():
        assert all(finite(row[k]) for k in ("ms", "max_abs_diff", "d1", "speedup_vs_torch_fp32",
                                            "fraction_of_ceiling")), (name, row)
        assert 0 <= row["d1"] <= 1 and row["ms"] > 0
    assert p["backends"]["torch_fp32"]["max_abs_diff"] == 0
    assert p["backends"]["onnxruntime_fp32"]["max_abs_diff"] < 1e-3  # metres: the same network
    d = r["data"]
    assert set(d["sources"]) == {"synth_render", "png", "jpeg", "zip", "mat"}
    for row in d["sources"].values():
        assert all(finite(row[k]) and row[k] > 0 for k in ("samples_per_s", "vs_training", "vs_gpu"))
    assert finite(d["training_samples_per_s"]) and d["gpu_samples_per_s"] == 2000
    # a source slower than a GPU is named in the notes
    slow = [n for n, row in d["sources"].items() if not row["keeps_up_with_gpu"]]
    assert all(any(note.startswith(f"{n}:") for note in d["notes"]) for n in slow)


def test_unknown_names_are_one_line_errors():
    from depthforge.bench.train import model_steps, train_steps
    from depthforge.errors import DepthforgeError

    with pytest.raises(DepthforgeError, match="unknown model.*nope"):
        model_steps(["nope"])
    with pytest.raises(DepthforgeError, match="unknown setting.*fp64"):
        train_steps(["fp64"])


def test_malloc_env_prefers_an_installed_preload_and_falls_back_to_glibc(monkeypatch):
    env = allocator.malloc_env({"LD_PRELOAD": "/opt/other.so", "PATH": "/bin"}, "auto")
    name = env[allocator.MARKER]
    assert name == allocator.pick_allocator("auto") and env["PATH"] == "/bin"
    if name in allocator.PREFERENCE:
        assert env["LD_PRELOAD"].split() == [allocator.find_library(name), "/opt/other.so"]
        assert "GLIBC_TUNABLES" not in env
    else:
        assert env["GLIBC_TUNABLES"] == allocator.MALLOC_TUNING and env["LD_PRELOAD"] == "/opt/other.so"
    # without the libraries: glibc's tunables
    monkeypatch.setattr(allocator, "find_library", lambda name: None)
    env = allocator.malloc_env({}, "tcmalloc")
    assert env[allocator.MARKER] == "glibc" and env["GLIBC_TUNABLES"] == allocator.MALLOC_TUNING
    assert "LD_PRELOAD" not in env
    # "default" undoes what malloc_env sets
    plain = allocator.malloc_env(env, "default")
    assert plain[allocator.MARKER] == "default" and "GLIBC_TUNABLES" not in plain


@pytest.mark.skipif(allocator.find_library("tcmalloc") is None and allocator.find_library("jemalloc") is None,
                    reason="neither libtcmalloc-minimal4 nor libjemalloc2 is installed")
def test_a_preloaded_allocator_is_the_one_the_process_runs_with():
    code = "from depthforge.allocator import current_allocator; print(current_allocator())"
    for name in allocator.PREFERENCE:
        if allocator.find_library(name):
            out = subprocess.run([sys.executable, "-c", code], env=allocator.malloc_env(os.environ, name),
                                 capture_output=True, text=True, check=True).stdout.split()
            assert out == [name]


def test_cli_restarts_itself_once_with_malloc_tuning(monkeypatch):
    from depthforge import cli

    calls = []
    for key in ("GLIBC_TUNABLES", "DEPTHFORGE_NO_MALLOC_TUNING", allocator.MARKER, allocator.CHOICE):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(cli.os, "execve", lambda exe, argv, env: calls.append((argv, env)))
    monkeypatch.setattr(cli.sys, "argv", ["depthforge", "train", "train.epochs=1"])
    cli._tune_malloc("train")
    assert calls and calls[0][0][1:] == ["-m", "depthforge", "train", "train.epochs=1"]
    assert calls[0][1][allocator.MARKER] == allocator.pick_allocator("auto")
    monkeypatch.setenv(allocator.CHOICE, "glibc")  # the user's pick
    cli._tune_malloc("train")
    assert calls[1][1][allocator.MARKER] == "glibc" and calls[1][1]["GLIBC_TUNABLES"] == allocator.MALLOC_TUNING
    monkeypatch.delenv(allocator.CHOICE)
    cli._tune_malloc("eval")  # eval may run OpenVINO, which crashes with a preloaded allocator
    assert calls[2][1][allocator.MARKER] == "glibc"
    calls.clear()
    cli._tune_malloc("predict")  # only the commands that train or time training
    monkeypatch.setenv(allocator.MARKER, "glibc")
    cli._tune_malloc("train")  # restarted already: no second restart
    monkeypatch.delenv(allocator.MARKER)
    monkeypatch.setenv("DEPTHFORGE_NO_MALLOC_TUNING", "1")
    cli._tune_malloc("train")
    assert not calls


def test_python_m_depthforge_runs():
    proc = subprocess.run([sys.executable, "-m", "depthforge", "bench", "--help"], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"})
    assert proc.returncode == 0 and "--json" in proc.stdout and "--models" in proc.stdout


def test_the_ceiling_shrinks_its_matrix_where_a_dtype_is_slow(monkeypatch):
    """bf16 without AVX512-BF16/AMX is emulated (one 2048² multiply: 200 s on an AVX2-only AMD EPYC): the ceiling
    must stop growing its matrix once one multiply takes a quarter of its time budget, not run the full size."""
    from depthforge.bench import machine

    sizes, mm = [], torch.mm

    def slow_mm(a, b):  # from 1024² on, a multiply takes 0.3 s: more than a quarter of the 0.8 s budget
        sizes.append(a.shape[0])
        time.sleep(0.3 if a.shape[0] >= 1024 else 0)
        return mm(a, b)

    monkeypatch.setattr(machine.torch, "mm", slow_mm)
    gflops, size = machine.matmul_gflops(torch.float32, n=2048, seconds=0.8)
    assert size == 1024 and max(sizes) == 1024 and gflops > 0
