"""Static int8 quantisation of an exported depthforge ONNX model (onnxruntime.quantization, QDQ format).

    from depthforge.inference.quantize import quantize_onnx, calibration_images
    quantize_onnx("model.onnx", "model-int8.onnx", calibration_images(photos, size=(240, 320)))

The result is an ordinary ONNX model with QuantizeLinear/DequantizeLinear pairs around each Conv (weights int8,
symmetric, per output channel; activations uint8, asymmetric, per tensor), so onnxruntime runs the convolutions
as int8 kernels and OpenVINO (``inference.openvino``) reads the same file as an int8 model. It keeps the source
model's dynamic batch/height/width and its depthforge ``metadata_props``, so ``depthforge.load`` treats it like
the fp32 export. Calibration runs at the calibration images' size: use the size you will predict at (the
training size for ``resize="train"``), since activation ranges depend a little on it.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..errors import DepthforgeError, error_line
from ..files import work_dir, write_bytes
from .onnx import CONTRACT_KEY, IO_KEY, LEGACY_KEY, META_KEY, PROMPT
from .runtime import need

log = logging.getLogger(__name__)

META_KEYS = (META_KEY, CONTRACT_KEY, LEGACY_KEY, IO_KEY)  # the metadata_props export.py writes
METHODS = ("minmax", "percentile", "entropy")
# Ops that get QDQ pairs. Conv is where the time goes (int8 AMX/VNNI kernels); the ops around it stay float
# (bf16 in OpenVINO). Measured on the seed U-Net at 240x320: also quantising MaxPool/Concat was no faster and
# less accurate (mean |depth difference| 0.020 vs 0.012 m); quantising every op (LeakyRelu, BN, Resize, ...)
# 4x less accurate and no faster.
OPS = ("Conv",)
# ``--int8-ops``: what else may be quantised. "matmul" (MatMul, Gemm: a transformer's linear layers and attention
# products) pays where the CPU has int8 dot products (VNNI/AMX): DA-V2 Small at 266x350 in OpenVINO (f32 float
# parts), 61 ms against 100 ms with Conv alone and 118 ms in fp32 (Intel Xeon with AVX512-VNNI, 2026-12-08), but
# it is less exact (δ1 disagreement with fp32 5.7 % against 3.7 %, random weights) and no faster without VNNI.
OP_SETS = {"conv": OPS, "matmul": ("MatMul", "Gemm")}


def parse_ops(text: str) -> tuple[str, ...]:
    """``--int8-ops``: comma-separated names of ``OP_SETS`` ("conv", "conv,matmul") -> ONNX op types."""
    names = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if not names or any(n not in OP_SETS for n in names):
        raise DepthforgeError(f"--int8-ops {text!r}: expected a comma-separated list of {', '.join(OP_SETS)}")
    return tuple(dict.fromkeys(op for n in names for op in OP_SETS[n]))


def _array(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)  # torch tensors accepted


def _batches(calibration: Iterable[Any], name: str, prompt: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
    """Check and yield calibration batches: arrays [N,3,H,W] float32 in [0,1] or, for an export that takes a
    depth prompt (``prompt``), pairs (image, prompt [N,1,h,w] metres), each as a tuple of the graph's inputs."""
    for i, item in enumerate(calibration):
        pair = isinstance(item, (tuple, list))
        if pair != prompt or (pair and len(item) != 2):
            raise DepthforgeError(f"{name}: calibration item {i} must be " + (
                "a pair (image [N,3,H,W], prompt [N,1,h,w] metres): the model takes a depth prompt" if prompt else
                "an image [N,3,H,W]: the model takes no depth prompt"))
        x = _array(item[0] if pair else item)
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[0] < 1:
            raise DepthforgeError(f"{name}: calibration image {i} must be [N,3,H,W], got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise DepthforgeError(f"{name}: calibration image {i} must be float in [0,1], got {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DepthforgeError(f"{name}: calibration image {i} must be finite values in [0,1]")
        if not pair:
            yield (x,)
            continue
        p = np.ascontiguousarray(_array(item[1]), dtype=np.float32)
        if p.ndim != 4 or p.shape[:2] != (x.shape[0], 1) or not (np.isfinite(p).all() and p.min() > 0):
            raise DepthforgeError(f"{name}: calibration prompt {i} must be [{x.shape[0]},1,h,w] positive metres, "
                                  f"got shape {p.shape}")
        yield x, p


def calibration_images(images: Iterable[Any], size: tuple[int, int] = (240, 320),
                       flips: bool = True) -> list[np.ndarray]:
    """Photos (paths, PIL images or arrays, as ``depthforge.load`` takes) -> calibration batches [1,3,H,W].

    Each photo is resized to ``size`` (H, W) as the predictor's ``resize="train"`` does; ``flips`` adds the
    mirrored photo too (the training augmentation), doubling a small set.
    """
    import torch
    from torch.nn import functional as F

    from .predictor import to_image

    out = []
    for i, image in enumerate(images):
        a = to_image(image, image if isinstance(image, (str, os.PathLike)) else f"calibration image {i}")
        x = torch.from_numpy(a.transpose(2, 0, 1).copy())[None]
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        out.append(x.numpy())
        if flips:
            out.append(np.ascontiguousarray(x.flip(-1).numpy()))
    return out


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over our checked batches."""

    def __init__(self, batches: Iterator[tuple[np.ndarray, ...]], input_names: list[str]):
        self.batches, self.input_names, self.count, self.size = batches, input_names, 0, None

    def get_next(self) -> dict[str, np.ndarray] | None:
        inputs = next(self.batches, None)
        if inputs is None:
            return None
        self.count += inputs[0].shape[0]
        self.size = list(inputs[0].shape[2:])
        return dict(zip(self.input_names, inputs))

    def rewind(self) -> None:  # the readers' protocol has it; one pass is all static calibration needs
        pass


def _method(method: str):
    need("onnxruntime")
    from onnxruntime.quantization import CalibrationMethod

    try:
        return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy}[method]
    except KeyError:
        raise DepthforgeError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}") from None


@contextlib.contextmanager
def _inside(folder: str | os.PathLike) -> Iterator[None]:
    """Work in ``folder``: onnxruntime's symbolic shape inference saves ``sym_shape_infer_temp.onnx`` and
    ``<uuid>.data`` files into the working folder, which must not be the user's (nothing outside the output)."""
    here = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def _prepare(quant_pre_process, src: Path, prepared: Path) -> None:
    """onnxruntime's recommended pre-processing (graph optimisation and shape inference) of ``src`` into
    ``prepared``; ONNX's own shape inference where the symbolic one gives up (DA-V2's dynamic axes)."""
    try:
        quant_pre_process(str(src.resolve()), str(prepared))
    except Exception as e:
        log.info("int8: symbolic shape inference failed (%s); quantising with ONNX's own", error_line(e))
        quant_pre_process(str(src.resolve()), str(prepared), skip_symbolic_shape=True)


def quantize_onnx(src_onnx: str | os.PathLike, dst_onnx: str | os.PathLike, calibration: Iterable[Any],
                  per_channel: bool = True, method: str = "percentile", percentile: float = 99.999,
                  ops: Iterable[str] = OPS, exclude: Iterable[str] = (), preprocess: bool = True,
                  activations: str = "uint8", options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Static int8 (QDQ) quantisation of a depthforge ONNX export; ``dst_onnx`` is written atomically.

    ``calibration``: batches [N,3,H,W] float32 in [0,1] (see ``calibration_images``), a few dozen photos of the
    kind the model will see; for an export that takes a depth prompt, pairs (image, prompt [N,1,h,w] metres). ``per_channel``: one weight scale per output channel (what keeps conv weights
    accurate). ``method``: how activation ranges are set from the calibration outputs — "minmax" (full range,
    an outlier widens the step for every value), "percentile" (clips the top ``100 - percentile`` % of
    values; the default: on held-out NYU photos the seed U-Net's mean |depth difference| vs fp32 was 0.012 m
    against 0.014 m with minmax), "entropy" (KL-divergence threshold, as TensorRT; it gave exactly the minmax
    ranges here, onnxruntime 1.32). ``preprocess`` runs onnxruntime's ``quant_pre_process`` (graph optimisation and
    symbolic shape inference) first, as onnxruntime recommends. ``ops``: op types to quantise; ``exclude``:
    node names to keep float. ``activations``: "uint8" (asymmetric; x86 int8 kernels take u8 x s8) or
    "int8" (onnxruntime runs it, OpenVINO 2026.4 fails to compile it). ``options``: more of
    ``quantize_static``'s ``extra_options``.

    Returns {"path", "bytes", "src_bytes", "images", "size" (calibration [H, W]), "method", "per_channel",
    "quantized" (number of QuantizeLinear nodes), "seconds"}.
    """
    onnx = need("onnx")
    need("onnxruntime")
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src_onnx), Path(dst_onnx)
    if dst.suffix.lower() != ".onnx":
        raise DepthforgeError(f"{dst}: the ONNX file name must end in .onnx (depthforge.load goes by the suffix)")
    if not src.is_file():
        raise DepthforgeError(f"{src}: ONNX model not found")
    calibrate = _method(method)
    if activations not in ("uint8", "int8"):
        raise DepthforgeError(f"activations must be uint8 or int8, got {activations!r}")
    act = QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8
    try:
        model = onnx.load(str(src), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise DepthforgeError(f"{src}: not a readable ONNX model ({error_line(e)})") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise DepthforgeError(f"{src}: its weights are in an external data file (a model over 1 GB); int8 "
                              "quantisation takes one-file ONNX models")
    meta = {p.key: p.value for p in model.metadata_props if p.key in META_KEYS}
    if not model.graph.input:
        raise DepthforgeError(f"{src}: the ONNX model has no input")
    start = time.perf_counter()
    names = [i.name for i in model.graph.input]
    batches = _batches(calibration, str(src), prompt=PROMPT in names)
    first = next(batches, None)  # checked before the slow part, and an empty set is named as such
    if first is None:
        raise DepthforgeError(f"{src}: no calibration images given")
    reader = _Reader(itertools.chain([first], batches), names)
    with work_dir(dst, "quant") as tmp:
        prepared = src
        if preprocess:
            prepared = Path(tmp).resolve() / "prepared.onnx"  # absolute: prepared inside tmp as the working folder
            try:
                with _inside(tmp):
                    _prepare(quant_pre_process, src, prepared)
            except Exception as e:
                raise DepthforgeError(f"{src}: ONNX shape inference for quantisation failed: {error_line(e)}") \
                    from None
        del model
        out = Path(tmp) / "int8.onnx"
        extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
        if method == "percentile":
            extra["CalibPercentile"] = float(percentile)
        extra.update(options or {})
        try:  # the calibrators print progress lines; keep stdout for the caller's output
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(str(prepared), str(out), reader, quant_format=QuantFormat.QDQ,
                                per_channel=per_channel,
                                activation_type=act, weight_type=QuantType.QInt8,
                                op_types_to_quantize=list(ops), nodes_to_exclude=list(exclude),
                                calibrate_method=calibrate, calibration_providers=["CPUExecutionProvider"],
                                extra_options=extra)
        except DepthforgeError:
            raise
        except Exception as e:  # onnxruntime raises several types; the first line says what
            raise DepthforgeError(f"{src}: int8 quantisation failed: {error_line(e)}") from None
        quant = onnx.load(str(out))
    del quant.metadata_props[:]
    for key, value in meta.items():
        entry = quant.metadata_props.add()
        entry.key, entry.value = key, value
    quant.producer_name = "depthforge"
    data = quant.SerializeToString()
    write_bytes(dst, data)
    return {"path": str(dst), "bytes": len(data), "src_bytes": src.stat().st_size, "images": reader.count,
            "size": reader.size, "method": method, "per_channel": per_channel,
            "quantized": sum(n.op_type == "QuantizeLinear" for n in quant.graph.node),
            "seconds": time.perf_counter() - start}


def read_export_metadata(path: str | os.PathLike) -> tuple[dict, Any]:
    """(checkpoint info, contract) of an exported ONNX file (fp32 or int8)."""
    from .onnx import read_metadata

    onnx = need("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise DepthforgeError(f"{path}: not a readable ONNX model ({error_line(e)})") from None
    return read_metadata(path, {p.key: p.value for p in model.metadata_props})
