"""OpenVINO back end: an exported depthforge model (ONNX, int8 QDQ ONNX, or OpenVINO IR) as a forward function.

    from depthforge.inference.openvino import openvino_forward
    forward, info = openvino_forward("model-int8.onnx")          # precision "auto": what the CPU runs fastest
    depth = forward(images)                                      # [N,3,H,W] in [0,1] -> [N,1,H,W]

``info`` carries the export's metadata (``info["depthforge"]``: the checkpoint info, ``info["contract"]``: the
model's contract); ``load_openvino`` puts it behind the same ``Predictor`` as PyTorch. The model keeps its dynamic batch/height/
width; each new input shape gets its own compiled model (kept in a small cache): on the seed U-Net at 240x320 a
static-shape compile ran 1.7x faster than the dynamic model, and for int8 the dynamic model is also less exact
(max |depth difference| vs fp32 0.40 m against 0.11 m), as OpenVINO's int8 transformations need static shapes.
OpenVINO fuses each conv's LeakyReLU and BatchNorm into it (post-ops), so no model-side folding is needed.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..files import atomic_path
from ..errors import DepthforgeError, error_line
from ..allocator import PREFERENCE, current_allocator, fast_bf16

from .onnx import CONTRACT_KEY, LEGACY_KEY, META_KEY, backend_calls, read_metadata
from .predictor import Backend, Predictor
from .runtime import need

# auto: bf16 where it is the faster (AMX), else f32. Not the plugin's own default, which takes bf16 wherever the CPU
# has AVX512-BF16, where it is slower without AMX (DA-V2 Small at 518x518: 742 ms against 435 in f32; fast_bf16)
PRECISIONS = {"fp32": "f32", "bf16": "bf16", "auto": None}
log = logging.getLogger(__name__)
SHAPE_CACHE = 4  # compiled models kept, one per input shape; a predictor sees one or two shapes in practice


def _reason(e: BaseException) -> str:
    """The line of an OpenVINO error that says what is wrong, not where in its C++ sources it was raised; a line
    that ends in a colon ("FrontEnd API failed with GeneralFailure:") with the line it introduces."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Exception from", "Check '"))] or lines
    if len(lines) > 1 and lines[0].endswith(":"):
        return error_line(ValueError(f"{lines[0]} {lines[1]}"))
    return error_line(e, skip=("Exception from", "Check '"))


@functools.cache
def core():
    """The process's one OpenVINO ``Core``, never released. Its CPU plugin installs a signal stack
    (``sigaltstack``) on the calling thread when it loads and puts the previous one back when its Core is
    released; two Cores released in the order they were made leave the thread pointing at a freed stack, and
    the next Python signal handler (a DataLoader's SIGCHLD) then crashes the process with no traceback (OpenVINO
    2026.4, measured: tests/test_runtimes.py::test_openvino_leaves_a_usable_signal_stack)."""
    return need("openvino").Core()


def _read(path: Path):
    allocator = current_allocator()
    if allocator in PREFERENCE:  # OpenVINO's CPU plugin aborts in free() beside a preloaded tcmalloc/jemalloc
        raise DepthforgeError(f"{path}: OpenVINO cannot run beside the preloaded {allocator} "
                              f"(LD_PRELOAD={os.environ.get('LD_PRELOAD', '')}); unset it for this process")
    need("openvino")  # each time: core() is cached, and the package may have gone since (tests take it away)
    if not path.is_file():
        raise DepthforgeError(f"{path}: model not found")
    if path.suffix.lower() not in (".onnx", ".xml"):
        raise DepthforgeError(f"{path}: OpenVINO back end reads .onnx or .xml (OpenVINO IR) files")
    try:
        return core().read_model(str(path))
    except Exception as e:  # OpenVINO raises RuntimeError with a multi-line C++ trace
        raise DepthforgeError(f"{path}: not a readable {path.suffix[1:].upper()} model ({_reason(e)})") \
            from None


def _metadata(model, path: Path):
    """(checkpoint info, contract) from depthforge's metadata_props: ONNX ones arrive in rt_info["framework"],
    and an IR keeps them there."""
    raw = {key: model.get_rt_info(["framework", key]).astype(str)
           for key in (META_KEY, CONTRACT_KEY, LEGACY_KEY) if model.has_rt_info(["framework", key])}
    return read_metadata(path, raw)


def openvino_forward(path: str | os.PathLike, precision: str = "auto", threads: int | None = None,
                     ) -> tuple[Callable[..., torch.Tensor], dict[str, Any]]:
    """An exported model -> (forward, info) on the CPU with OpenVINO.

    ``path``: ``.onnx`` (fp32 or int8 QDQ from ``quantize_onnx``) or ``.xml`` (from ``save_openvino``).
    ``precision``: "fp32", "bf16" or "auto" (bf16 where it is faster than f32: with AMX) — the
    precision of the float parts; an int8 model's quantised convolutions run in int8 either way.
    ``threads``: CPU threads for inference (default: all cores). The LATENCY performance hint is set (one
    stream, every thread on one image), as for interactive prediction.

    ``forward(x [N,3,H,W] float32, prompt=None) -> [N,1,H,W] float32`` on x's device (``prompt``: [N,1,h,w]
    metres, for an export with the prompt input); safe to call from several threads (calls are serialised).
    ``info``: {"depthforge", "contract" (the metadata), "path", "precision", "inference_precision" (what the
    float parts run in: "f32" or "bf16"), "threads", "calls" (``inference.onnx.backend_calls``' keywords: the
    camera output and prompt input, if any)}.
    """
    path = Path(path)
    if precision not in PRECISIONS:
        raise DepthforgeError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise DepthforgeError(f"threads must be a positive integer, got {threads!r}")
    model = _read(path)
    meta_info, contract = _metadata(model, path)
    inputs = [p.get_any_name() for p in model.inputs]
    outputs = [p.get_any_name() for p in model.outputs]
    if not 1 <= len(inputs) <= 2 or not 1 <= len(outputs) <= 2:
        raise DepthforgeError(f"{path}: expected one or two inputs (image, prompt) and outputs (depth, fov), got "
                              f"{len(inputs)} and {len(outputs)}")
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    hint = PRECISIONS[precision] or ("bf16" if fast_bf16() else "f32")
    config["INFERENCE_PRECISION_HINT"] = hint
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    cache: OrderedDict[tuple[tuple[int, ...], ...], Any] = OrderedDict()
    lock = threading.Lock()

    def request(shapes: dict[str, tuple[int, ...]]):
        key = tuple(shapes[name] for name in inputs)
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        static = model.clone()
        static.reshape({port: list(shapes[name]) for port, name in zip(static.inputs, inputs)})
        try:
            compiled = core().compile_model(static, "CPU", config)
        except Exception as e:
            raise DepthforgeError(f"{path}: OpenVINO cannot compile the model for input "
                                  f"{' and '.join(str(list(s)) for s in key)} ({_reason(e)})") from None
        cache[key] = compiled.create_infer_request()
        if len(cache) > SHAPE_CACHE:
            cache.popitem(last=False)
        return cache[key]

    def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        with lock:
            req = request({name: a.shape for name, a in feed.items()})
            out = req.infer({name: feed[name] for name in inputs})
            # the request reuses its output buffers on the next call
            return [out[i].copy() for i in range(len(outputs))]

    batch = model.inputs[0].get_partial_shape()[0]
    calls = backend_calls(run, inputs, outputs, batch.get_length() if batch.is_static else None)
    # what the float parts run in: the hint, except that a bf16 hint on a CPU without native bf16 (AVX2 only)
    # compiles to f32 without a word (compiled INFERENCE_PRECISION_HINT: f32)
    runs = hint
    if runs == "bf16" and "BF16" not in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        log.info("%s: OpenVINO runs bf16 as f32 here: this CPU has no native bf16", path)
        runs = "f32"
    info = {"depthforge": meta_info, "contract": contract, "path": str(path), "precision": precision,
            "inference_precision": runs, "threads": threads, "calls": calls}
    return calls["forward"], info


def save_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike) -> dict[str, Any]:
    """An exported ``.onnx`` -> OpenVINO IR (``.xml`` + ``.bin``), full-precision weights, metadata kept.

    For deploying where only the OpenVINO runtime is (model server, C++ or mobile apps): here the IR neither
    loads (~0.1 s) nor compiles (~1 s) measurably faster than the ONNX file, and runs at the same speed.
    The ``.bin`` is written before the ``.xml``, each atomically, so a complete ``.xml`` always has its weights.
    Returns {"xml", "bin", "bytes"}.
    """
    ov = need("openvino")
    xml = Path(xml_path)
    if xml.suffix.lower() != ".xml":
        raise DepthforgeError(f"{xml}: the OpenVINO IR file name must end in .xml")
    model = _read(Path(onnx_path))
    _metadata(model, Path(onnx_path))
    bin_ = xml.with_suffix(".bin")
    with atomic_path(xml) as tmp_xml:
        tmp_bin = tmp_xml.with_suffix(".bin")
        try:
            ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
            os.replace(tmp_bin, bin_)
        finally:
            if tmp_bin.exists():
                tmp_bin.unlink()
    return {"xml": str(xml), "bin": str(bin_), "bytes": xml.stat().st_size + bin_.stat().st_size}


def load_openvino(path: str | os.PathLike, device: str | None = None, precision: str = "auto",
                  threads: int | None = None, **options: Any) -> Predictor:
    """An exported ``.onnx`` (fp32 or int8) or ``.xml`` -> Predictor running OpenVINO on the CPU.

    ``options`` as for ``depthforge.load``; resizing/padding run in PyTorch around the compiled model."""
    if device is not None and torch.device(device).type != "cpu":
        raise DepthforgeError(f"{path}: the OpenVINO back end runs on the CPU here, not {device!r}")
    _, info = openvino_forward(path, precision, threads)
    details = {k: info[k] for k in ("precision", "inference_precision", "threads")}
    backend = Backend("openvino", device=torch.device("cpu"), details=details, **info["calls"])
    return Predictor(backend, info["contract"], info["depthforge"], source=str(path), **options)
