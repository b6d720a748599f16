"""The models one server serves: named sources, loaded when first asked for, kept within a memory budget (the
least recently used one is unloaded to make room), and the bounded worker pool their predictions run in."""
from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, Callable, NamedTuple

from ..errors import DepthforgeError


class Source(NamedTuple):
    name: str
    source: str


def parse_sources(values: list[str]) -> list[Source]:
    """``--checkpoint`` values, ``NAME=SRC`` or ``SRC`` (named by the file or folder's stem) -> sources, names
    unique. A hub id (``owner/model``) is named by its last part."""
    out: list[Source] = []
    for value in values:
        name, eq, src = value.partition("=")
        if not eq or "/" in name or not name or Path(value).exists():  # "runs/a=b.ckpt" is a path, not NAME=SRC
            name, src = Path(value.rstrip("/")).stem or value, value
        if not src.strip():
            raise DepthforgeError(f"--checkpoint {value!r}: no model source after '{name}='")
        if any(s.name == name for s in out):
            raise DepthforgeError(f"--checkpoint {value!r}: the name {name!r} is given twice; name them NAME=SRC")
        out.append(Source(name, src))
    if not out:
        raise DepthforgeError("--checkpoint: give at least one model")
    return out


def parse_budget(text: str) -> tuple[str, float]:
    """``--memory-budget`` -> ("models", count) for "2", or ("mb", megabytes) for "800MB"."""
    t = text.strip().lower()
    try:
        if t.endswith("mb"):
            mb = float(t[:-2])
            if math.isfinite(mb) and 0 < mb <= 1e6:
                return "mb", mb
        else:
            n = int(t)
            if 1 <= n <= 100:
                return "models", n
    except ValueError:
        pass
    raise DepthforgeError(f"--memory-budget {text}: give a count of models in [1, 100] (e.g. 2) or megabytes in "
                          "(0, 1000000] with MB (e.g. 800MB)")


def model_mb(predictor) -> float:
    """A loaded model's weight memory in MB: its parameters and buffers, or the exported file's size."""
    module = getattr(predictor, "module", None)
    if module is not None:
        tensors = list(module.parameters()) + list(module.buffers())
        return sum(t.numel() * t.element_size() for t in tensors) / 2**20
    path = Path(getattr(predictor, "source", "") or "")
    files = [path, path.with_suffix(".bin")] if path.suffix.lower() == ".xml" else [path]
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


class Models:
    """Name -> predictor, loaded by ``opener(source)`` on first use; the loaded ones are kept within
    ``budget`` (("models", n) or ("mb", megabytes)), the least recently used unloaded first. The model asked
    for is always kept, even alone beyond a megabyte budget. A prediction running on a model that is unloaded
    meanwhile finishes on its own reference."""

    def __init__(self, sources: list[Source], opener: Callable[[str], Any], budget: tuple[str, float] = ("models", 2),
                 loaded: dict[str, Any] | None = None):
        self.sources = {s.name: s.source for s in sources}
        self.opener, self.budget = opener, budget
        self.lock = threading.Lock()
        self.loaded: OrderedDict[str, tuple[Any, float]] = OrderedDict()  # least recently used first
        self.unloaded: list[str] = []  # names unloaded for room, the latest last (what the page says)
        self.loading: dict[str, threading.Lock] = {name: threading.Lock() for name in self.sources}
        for name, predictor in (loaded or {}).items():
            self.loaded[name] = (predictor, model_mb(predictor))

    @property
    def default(self) -> str:
        return next(iter(self.sources))

    def check(self, name: str) -> str:
        if name not in self.sources:
            raise NotServed(f"model {name!r} is not served here (served: {', '.join(self.sources)})")
        return name

    def get(self, name: str) -> tuple[Any, list[str]]:
        """The predictor of ``name`` (loading it when needed) and the names unloaded to make room for it."""
        self.check(name)
        with self.lock:
            if name in self.loaded:
                self.loaded.move_to_end(name)
                return self.loaded[name][0], []
        with self.loading[name]:  # one load per model at a time; others' loads go on
            with self.lock:
                if name in self.loaded:
                    self.loaded.move_to_end(name)
                    return self.loaded[name][0], []
            predictor = self.opener(self.sources[name])
            mb = model_mb(predictor)
            with self.lock:
                self.loaded[name] = (predictor, mb)
                dropped = self._fit(name)
            return predictor, dropped

    def _fit(self, keep: str) -> list[str]:
        kind, limit = self.budget
        dropped = []
        while len(self.loaded) > 1:
            used = len(self.loaded) if kind == "models" else sum(mb for _, mb in self.loaded.values())
            if used <= limit:
                break
            oldest = next(n for n in self.loaded if n != keep)
            del self.loaded[oldest]
            dropped.append(oldest)
        self.unloaded = (self.unloaded + dropped)[-10:]
        return dropped

    def describe(self) -> list[dict[str, Any]]:
        with self.lock:
            loaded = dict(self.loaded)
        out = []
        for name, source in self.sources.items():
            entry: dict[str, Any] = {"name": name, "source": source, "loaded": name in loaded}
            if name in loaded:
                predictor, mb = loaded[name]
                entry.update(mb=round(mb, 1), model=(predictor.info.get("model") or {}).get("name"),
                             metric=predictor.metric, train_size=predictor.train_size)
            out.append(entry)
        return out


class NotServed(DepthforgeError):
    """A model name the server does not serve (HTTP 404)."""


class Busy(Exception):
    def __init__(self, seconds: int):
        super().__init__(f"busy, try again in {seconds} s")
        self.seconds = seconds


class Pool:
    """At most ``workers`` predictions run at once and ``queue`` more wait; beyond that ``slot`` raises Busy with
    the seconds the waiting work is expected to take (from the recent jobs' durations) instead of queueing
    without limit."""

    def __init__(self, workers: int = 1, queue: int = 2):
        self.workers, self.queue = workers, queue
        self.running = threading.Semaphore(workers)
        self.lock = threading.Lock()
        self.admitted = 0
        self.durations: deque[float] = deque([2.0], maxlen=20)

    def retry_after(self) -> int:
        with self.lock:
            mean = sum(self.durations) / len(self.durations)
            return max(1, math.ceil(mean * self.admitted / self.workers))

    def admit(self) -> None:
        """Take a place (running or waiting), or raise Busy; ``release`` gives it back."""
        with self.lock:
            if self.admitted >= self.workers + self.queue:
                full = True
            else:
                full, self.admitted = False, self.admitted + 1
        if full:
            raise Busy(self.retry_after())

    def release(self) -> None:
        with self.lock:
            self.admitted -= 1

    @contextlib.contextmanager
    def run(self):
        """Run in a worker (waiting for one) within a place taken by ``admit``."""
        with self.running:
            start = time.perf_counter()
            try:
                yield
            finally:
                with self.lock:
                    self.durations.append(time.perf_counter() - start)

    @contextlib.contextmanager
    def slot(self):
        self.admit()
        try:
            with self.run():
                yield
        finally:
            self.release()
