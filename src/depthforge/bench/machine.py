"""The machine's side of a benchmark: its load, a process's peak memory, the matrix-multiply ceiling every FLOP
figure is a fraction of, and the fresh subprocess each timed setting runs in (``python -m depthforge.bench``)."""
from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..allocator import malloc_env
from ..errors import error_line


def say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def brief(e: BaseException) -> str:
    """One line for an exception a row reports instead of stopping the bench."""
    return f"{type(e).__name__}: {error_line(e)}"


def load_average() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return math.nan


def rss_mb() -> float:
    """This process's peak resident memory, MB. VmHWM, not ru_maxrss: a child started by fork + exec inherits its
    parent's ru_maxrss, which would hide a small child's own peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 0.5) -> tuple[float, int]:
    """GFLOP/s of a square matrix multiply in ``dtype`` on this process's threads (best of repeated timings), and
    the size it was measured at: ``n``, or smaller where one multiply already takes a quarter of ``seconds`` (bf16
    without AVX512-BF16/AMX is emulated: one 2048² multiply took 200 s on an AVX2-only AMD EPYC)."""
    size = 256
    while True:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        t = time.perf_counter()
        torch.mm(a, b)  # also the warm-up: kernel choice, page faults
        if size >= n or time.perf_counter() - t > seconds / 4:
            break
        size = min(2 * size, n)
    best, start = math.inf, time.perf_counter()
    while time.perf_counter() - start < seconds or best == math.inf:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9, size


def ceiling(n: int = 2048, seconds: float = 0.5) -> dict[str, float]:
    bf16, bf16_n = matmul_gflops(torch.bfloat16, n, seconds)
    fp32, fp32_n = matmul_gflops(torch.float32, n, seconds)
    return {"bf16_gflops": bf16, "fp32_gflops": fp32, "matmul_size": fp32_n, "bf16_matmul_size": bf16_n,
            "bf16_fast": bf16 > fp32}  # measured: with AVX512-BF16 but no AMX bf16 is the slower


# runs ``work(job)`` of the file argv[1] with job argv[2], without importing its package (``tf_seed.py``: no torch)
RUN_FILE = ("import importlib.util as u, json, sys; s = u.spec_from_file_location('worker', sys.argv[1]); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); print(json.dumps(m.work(json.loads(sys.argv[2]))))")


def spawn(job: dict, allocator: str = "auto", extra_env: dict | None = None, timeout: float = 1800,
          script: Path | None = None) -> dict:
    env = malloc_env(os.environ, allocator)
    env.update(extra_env or {})
    env.setdefault("HF_HUB_OFFLINE", "1")  # random weights only: never wait on the network
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    try:
        cmd = [sys.executable, "-m", "depthforge.bench"] if script is None else [sys.executable, "-c", RUN_FILE,
                                                                              str(script)]
        proc = subprocess.run([*cmd, json.dumps(job)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        err = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return {"error": (err[-1] if err else f"exit status {proc.returncode}")[:300]}
    return json.loads(lines[-1])
