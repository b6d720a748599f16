"""Process-level settings that must be in place before a process starts: the memory allocator (read once, when
the process loads) and glibc's malloc tunables.

On a CPU, a training step frees and reallocates hundreds of MB of activations each step; glibc's malloc gives
that memory back to the kernel every time, and the page faults of taking it again were half of the step. Two
fixes, in order of preference (measured in ``depthforge bench --settings all``; see bench/train.py):

- tcmalloc (Debian/Ubuntu ``libtcmalloc-minimal4``) or jemalloc (``libjemalloc2``) preloaded with LD_PRELOAD:
  they keep freed memory for reuse, and peak memory stays lower than with glibc's tunables;
- else glibc with ``mmap_max=0`` and a huge ``trim_threshold`` (never return memory to the kernel).

``malloc_env`` builds the environment of a process with one of them; ``cli._tune_malloc`` re-executes the
``depthforge`` commands that train with it (``DEPTHFORGE_NO_MALLOC_TUNING=1`` turns that off,
``DEPTHFORGE_MALLOC=tcmalloc|jemalloc|glibc`` picks one).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

MALLOC_TUNING = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
# jemalloc: large allocations from their own arenas, purging off (freed pages are kept, as glibc's tunables do)
JEMALLOC_CONF = "oversize_threshold:1,background_thread:true,dirty_decay_ms:-1,muzzy_decay_ms:-1"
# tcmalloc reports every allocation over 1 GiB on stderr by default; a batch's activations can be that large
TCMALLOC_REPORT = str(1 << 40)

LIBRARIES = {
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    "jemalloc": ("libjemalloc.so.2",),
}
PREFERENCE = ("tcmalloc", "jemalloc")  # then glibc with MALLOC_TUNING
ALLOCATORS = ("auto", *PREFERENCE, "glibc", "default")  # default: glibc untuned, as a process starts by itself
CHOICE = "DEPTHFORGE_MALLOC"  # the user's pick among ALLOCATORS (default auto)
MARKER = "DEPTHFORGE_TUNED"  # set by malloc_env to the allocator it set up: a process with it is not re-executed
SEARCH = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib",
          "/lib/x86_64-linux-gnu", "/lib64")


def find_library(allocator: str) -> str | None:
    """The path of ``allocator``'s shared library ("tcmalloc" or "jemalloc"), or None when it is not installed."""
    for folder in SEARCH:
        for name in LIBRARIES.get(allocator, ()):
            path = Path(folder) / name
            if path.is_file():
                return str(path)
    return None


def pick_allocator(choice: str = "auto") -> str:
    """``auto`` -> the first installed of tcmalloc, jemalloc, else "glibc"; a named preload that is missing
    falls back the same way."""
    if choice in ("glibc", "default"):
        return choice
    for name in ([choice] if choice in PREFERENCE else []) + list(PREFERENCE):
        if find_library(name):
            return name
    return "glibc"


def malloc_env(environ: Mapping[str, str], allocator: str = "auto") -> dict[str, str]:
    """``environ`` with the settings of ``allocator`` (see ``ALLOCATORS``), and ``DEPTHFORGE_TUNED`` naming it.

    A preload is put first in LD_PRELOAD (anything already there is kept after it). glibc's tunables are set
    for "glibc" only, and a GLIBC_TUNABLES the user set is kept. "default" removes what this function would set.
    """
    env = dict(environ)
    name = pick_allocator(allocator)
    ours = set(filter(None, (find_library(a) for a in PREFERENCE)))
    preload = [p for p in env.get("LD_PRELOAD", "").split() if p and p not in ours]
    if env.get("GLIBC_TUNABLES") == MALLOC_TUNING:
        del env["GLIBC_TUNABLES"]
    for key, ours_value in (("MALLOC_CONF", JEMALLOC_CONF), ("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", TCMALLOC_REPORT)):
        if env.get(key) == ours_value:
            del env[key]
    if name in PREFERENCE:
        preload.insert(0, find_library(name))
        if name == "jemalloc":
            env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
        else:
            env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", TCMALLOC_REPORT)
    elif name == "glibc":
        env.setdefault("GLIBC_TUNABLES", MALLOC_TUNING)
    if preload:
        env["LD_PRELOAD"] = " ".join(preload)
    else:
        env.pop("LD_PRELOAD", None)
    env[MARKER] = name
    return env


def current_allocator() -> str:
    """The allocator this process runs with: what ``malloc_env`` set, else what its maps show."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    for name in PREFERENCE:
        if any(lib in maps for lib in LIBRARIES[name]):
            return name
    return "glibc" if os.environ.get("GLIBC_TUNABLES") == MALLOC_TUNING else "default"


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags (the first ``flags`` line of /proc/cpuinfo); None where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return frozenset(text.partition("flags")[2].partition("\n")[0].partition(":")[2].split())


def fast_bf16() -> bool:
    """Whether bf16 runs faster than fp32 on this CPU: only with AMX tiles (``amx_bf16``). Without AMX oneDNN's
    bf16 is slower: emulated on AVX2 (the seed U-Net's training step, batch 16 at 96x128: 11 s against 0.9 s on an
    AVX2-only AMD EPYC), and slower still with AVX512-BF16 alone (batch 16 at 128x160: 3.10 s against 2.24 s; a
    2048² matrix product 168 against 333 GFLOP/s; OpenVINO's DA-V2 Small 742 against 435 ms — an Intel Xeon,
    model 207, whose AMX the virtual machine does not expose, 2026-12-08). With AMX a bf16 step was ~3.5x faster."""
    flags = cpu_flags()
    return flags is None or "amx_bf16" in flags  # not Linux: unknown, so treated as fast (bf16 is kept)
