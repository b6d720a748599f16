import json
import os
import subprocess
import sys

import pytest

from depthforge.bench import STEP_CONFIGS, bench

pytestmark = pytest.mark.slow


def test_bench_reports_every_figure_on_a_tiny_setting():
    r = bench(size=(32, 48), batch=2, steps=1, width=0.125, progress=False, onnx=True)
    for name in STEP_CONFIGS:
        assert r[f"train_step_s_{name}"] > 0 and r[f"peak_rss_mb_{name}"] > 50
    assert r["speedup_bf16_channels_last_vs_fp32"] > 0
    assert r["predict_ms_fp32"] > 0 and r["predict_ms_bf16"] > 0
    assert r["render_per_s"] > 0
    assert r["onnx_ms"] > 0 and r["onnx_torch_ms"] > 0 and r["onnx_max_abs_diff"] < 1e-4
    json.dumps(r)  # one JSON object


def test_cli_restarts_itself_once_with_malloc_tuning(monkeypatch):
    from depthforge import cli

    calls = []
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("DEPTHFORGE_NO_MALLOC_TUNING", raising=False)
    monkeypatch.setattr(cli.os, "execve", lambda exe, argv, env: calls.append((argv, env)))
    monkeypatch.setattr(cli.sys, "argv", ["depthforge", "train", "train.epochs=1"])
    cli._tune_malloc("train")
    assert calls and calls[0][0][1:] == ["-m", "depthforge", "train", "train.epochs=1"]
    assert calls[0][1]["GLIBC_TUNABLES"] == cli.MALLOC_TUNING
    calls.clear()
    cli._tune_malloc("predict")  # only the commands that train or time training
    monkeypatch.setenv("GLIBC_TUNABLES", "x")
    cli._tune_malloc("train")  # already set: no second restart
    assert not calls


def test_python_m_depthforge_runs():
    proc = subprocess.run([sys.executable, "-m", "depthforge", "bench", "--help"], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"})
    assert proc.returncode == 0 and "--json" in proc.stdout
