"""``depthforge serve``: a web page and HTTP API for a checkpoint (FastAPI + uvicorn, page in ``web/``).

Upload a photo, see its colour-mapped depth beside it, read metres under the mouse, download the depth
(16-bit PNG, .npy in metres) and the point cloud (PLY). The PNG holds millimetres when the model's
``max_depth`` fits in 65.535 m, else metres x 256 (KITTI's encoding); its download name says which
(``depth-ID.png`` or ``depth-ID_kitti256.png``) and the JSON's ``depth_png`` gives the encoding. Endpoints:

- ``GET /`` the page; ``GET /health``;
- ``POST /api/predict``: multipart form with a ``file`` field (or a raw image body) -> JSON with ``id``, size,
  depth range and ``urls``;
- ``GET /api/result/{id}/{name}``: ``image.jpg`` (the photo as decoded), ``color.png``, ``depth.png``,
  ``depth.npy``, ``cloud.ply``, ``hover.f32`` (little-endian float32 metres, row-major, at ``hover`` size).

Uploads are read into memory up to the size limit and within a time limit (``--upload-timeout``), their pixel
count is checked before decoding, and results live only in a private temporary folder (random hex ids, oldest
evicted, removed at shutdown).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
import shutil
import tempfile
import threading
import urllib.parse
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..viz.colors import depth_range, legend
from ..data.io import read_image
from ..files import write_bytes
from ..encode import depth_png_name, image_bytes, png16_encoding
from ..errors import DepthforgeError
from ..inference.results import result_files
from ..viz.pointcloud import estimate_intrinsics

log = logging.getLogger(__name__)

WEB = Path(__file__).parent / "web"
ID_RE = re.compile(r"[0-9a-f]{32}")
from . import MAX_PIXELS, UPLOAD_TIMEOUT, WORK_PIXELS
HOVER_PIXELS = 1_000_000  # the depth sent to the page for mouse read-out is subsampled to at most this
CLOUD_POINTS = 2_000_000  # the PLY keeps every k-th pixel (rows and columns) beyond this
MULTIPART_OVERHEAD = 64 * 1024
RESULT_FILES = {  # name -> (media type, download as attachment)
    "image.jpg": ("image/jpeg", False),
    "color.png": ("image/png", False),
    "depth.png": ("image/png", True),
    "depth.npy": ("application/octet-stream", True),
    "cloud.ply": ("application/octet-stream", True),
    "hover.f32": ("application/octet-stream", False),
}
DEPTH_PNG_LABELS = {"mm": "16-bit, mm", "kitti256": "16-bit, m × 256 as KITTI"}  # what the page's link says


class UploadError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _multipart_parser():
    try:
        from python_multipart.multipart import MultipartParser, parse_options_header
    except ImportError:  # python-multipart < 0.0.13
        from multipart.multipart import MultipartParser, parse_options_header
    return MultipartParser, parse_options_header


async def _body(request: Request, timeout: float):
    """The request body's chunks, all of which must arrive within ``timeout`` seconds (UploadError 408 after):
    uvicorn's timeouts cover idle connections, not a body that stalls or trickles, which would hold its
    connection and memory open for ever."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    chunks = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), max(0.0, deadline - loop.time()))
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise UploadError(408, f"the upload did not arrive within {timeout:g} s (--upload-timeout)") from None
        yield chunk


async def read_upload(request: Request, limit: int, timeout: float = UPLOAD_TIMEOUT) -> tuple[bytes, str]:
    """The uploaded file's bytes and name, from a multipart ``file`` field or a raw body; never more than
    ``limit`` bytes are kept (UploadError 413 beyond), the whole body must arrive within ``timeout`` seconds
    (UploadError 408 after) and nothing touches the disk."""
    too_big = UploadError(413, f"upload is larger than the {limit / 2**20:g} MB limit (--max-upload-mb)")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        raise too_big
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        body = bytearray()
        async for chunk in _body(request, timeout):
            body += chunk
            if len(body) > limit:
                raise too_big
        # header values arrive as Latin-1; a UTF-8 name sent raw is recovered, a percent-encoded one decoded
        raw = request.headers.get("x-filename", "upload")
        try:
            raw = raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
        return bytes(body), urllib.parse.unquote(raw)
    MultipartParser, parse_options_header = _multipart_parser()
    boundary = parse_options_header(ctype)[1].get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart upload without a boundary")
    parts: list[dict[str, Any]] = []
    header = {"field": b"", "value": b""}

    def on_part_begin():
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data, start, end):
        header["field"] += data[start:end]

    def on_header_value(data, start, end):
        header["value"] += data[start:end]

    def on_header_end():
        # raw bytes: browsers send UTF-8 file names, which a str round trip through Latin-1 would break
        parts[-1]["headers"][header["field"].decode("latin-1").lower()] = bytes(header["value"])
        header["field"], header["value"] = b"", b""

    def on_part_data(data, start, end):
        part = parts[-1]["data"]
        part += data[start:end]
        if len(part) > limit:
            raise too_big

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data})
    received = 0
    try:
        async for chunk in _body(request, timeout):
            received += len(chunk)
            if received > limit + MULTIPART_OVERHEAD:
                raise too_big
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as e:  # python-multipart's parse errors
        raise UploadError(400, f"malformed multipart upload ({e})") from None
    for part in parts:
        disposition = parse_options_header(part["headers"].get("content-disposition", b""))[1]
        if disposition.get(b"name") == b"file":
            return bytes(part["data"]), disposition.get(b"filename", b"upload").decode("utf-8", "replace")
    raise UploadError(400, "no 'file' field in the upload form")


def decode_image(data: bytes, name: str, max_pixels: int, work_pixels: int = WORK_PIXELS) -> np.ndarray:
    """Upload bytes -> float32 RGB (H,W,3) by the reader every command shares (``data.io.read_image``): the pixel
    count is checked from the header before decoding, and a photo beyond ``work_pixels`` is scaled down to it,
    so memory and result files per request stay bounded whatever the upload."""
    if not data:
        raise UploadError(400, f"{name}: empty upload")
    try:
        return read_image(name, data, limit=max_pixels, work_pixels=work_pixels)
    except DepthforgeError as e:
        raise UploadError(413 if getattr(e, "kind", None) == "too large" else 400, str(e)) from None


class Results:
    """Prediction results as files in one private temporary folder; the oldest are evicted past ``keep``."""

    def __init__(self, workdir: str | None = None, keep: int = 50):
        try:
            if workdir is not None:
                Path(workdir).mkdir(parents=True, exist_ok=True)
            self.root = Path(tempfile.mkdtemp(prefix="depthforge-serve-", dir=workdir))
        except OSError as e:
            raise DepthforgeError(f"{workdir or tempfile.gettempdir()}: cannot create a folder for results "
                                  f"({e.strerror or e})") from None
        self.keep, self.lock, self.ids = keep, threading.Lock(), OrderedDict()

    def add(self, files: dict[str, bytes]) -> str:
        rid = secrets.token_hex(16)
        folder = self.root / rid
        folder.mkdir()
        for name, data in files.items():
            write_bytes(folder / name, data)
        with self.lock:
            self.ids[rid] = time.time()
            while len(self.ids) > self.keep:
                old, _ = self.ids.popitem(last=False)
                shutil.rmtree(self.root / old, ignore_errors=True)
        return rid

    def path(self, rid: str, name: str) -> Path | None:
        if not ID_RE.fullmatch(rid) or name not in RESULT_FILES:
            return None
        with self.lock:
            if rid not in self.ids:
                return None
        path = self.root / rid / name
        return path if path.is_file() else None

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def render_result(image: np.ndarray, depth: np.ndarray, fov_deg: float,
                  depth_encoding: str = "mm") -> tuple[dict[str, bytes], dict[str, Any]]:
    """Photo and its depth -> the result files (``inference.results.result_files``, the same as ``depthforge
    predict`` writes, plus the photo and the hover depth) and the summary the page shows; ``depth.png`` is written
    in ``depth_encoding`` ("mm" or "kitti256", see ``encode.png16_encoding``)."""
    h, w = depth.shape
    good = np.isfinite(depth) & (depth > 0)  # the pixels with a depth, as ``backproject`` takes them
    valid = depth[good]
    vmin, vmax = depth_range(depth)
    hover_step = max(1, math.ceil(math.sqrt(h * w / HOVER_PIXELS)))
    hover = np.ascontiguousarray(depth[::hover_step, ::hover_step], dtype="<f4")
    cloud_step = max(1, math.ceil(math.sqrt(h * w / CLOUD_POINTS)))
    files = {"image.jpg": image_bytes(image, "jpeg", quality=90),
             **result_files(depth, depth_encoding, image, ply=True, intrinsics=estimate_intrinsics(h, w, fov_deg),
                            cloud_step=cloud_step, vrange=(vmin, vmax), compress_level=1),
             "hover.f32": hover.tobytes()}
    summary = {"width": w, "height": h,
               "min": float(valid.min()) if valid.size else 0.0, "max": float(valid.max()) if valid.size else 0.0,
               "vmin": vmin, "vmax": vmax, "legend": legend(vmin, vmax),
               "hover": {"width": hover.shape[1], "height": hover.shape[0], "step": hover_step},
               "points": int(np.count_nonzero(good[::cloud_step, ::cloud_step])), "cloud_step": cloud_step,
               "intrinsics": f"estimated from a {fov_deg:g}° horizontal field of view",
               "depth_png": {"encoding": depth_encoding, "label": DEPTH_PNG_LABELS[depth_encoding]}}
    return files, summary


def served(predictor) -> dict[str, Any]:
    """What the page says about the model it runs: its file (or hub id), architecture, the data it was trained on
    (from its recipe; "not recorded" for an export or a pretrained model without one), input size and output."""
    info = predictor.info or {}
    data = (info.get("config") or {}).get("data") or {}
    trained_on = data.get("name")
    if trained_on and data.get("root"):
        trained_on += f" ({Path(str(data['root'])).name})"
    source = getattr(predictor, "source", None)
    return {"source": Path(source).name if source and Path(source).exists() else source,
            "model": (info.get("model") or {}).get("name"), "trained_on": trained_on or "not recorded",
            "input_size": list(predictor.train_size) if predictor.train_size else None,
            "output": predictor.output}


def create_app(predictor, max_upload_bytes: int = 20 * 2**20, workdir: str | None = None,
               max_pixels: int = MAX_PIXELS, keep: int = 50, fov_deg: float = 60.0,
               upload_timeout: float = UPLOAD_TIMEOUT) -> FastAPI:
    """The FastAPI app serving ``predictor`` (a ``depthforge.Predictor``); see the module docstring.
    ``upload_timeout``: seconds an upload's body may take to arrive."""
    results = Results(workdir, keep)
    depth_encoding = png16_encoding(predictor.max_depth)  # the 16-bit PNG must hold the model's whole range
    predict_lock = threading.Lock()  # one prediction at a time: the network already uses every core

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        results.close()

    app = FastAPI(title="depthforge", lifespan=lifespan, docs_url="/api/docs", redoc_url=None)
    app.state.results, app.state.predictor = results, predictor
    app.mount("/static", StaticFiles(directory=WEB), name="static")

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(WEB / "index.html", media_type="text/html")

    @app.get("/health")
    def health():
        return {"status": "ok", "model": (predictor.info.get("model") or {}).get("name"), "served": served(predictor),
                "metric": predictor.metric, "train_size": predictor.train_size,
                "preprocessing": predictor.contract.preprocessing(), "depth_png": depth_encoding,
                "results": len(results.ids),
                "limits": {"upload_mb": round(max_upload_bytes / 2**20, 1), "max_megapixels": max_pixels / 1e6,
                           "work_megapixels": WORK_PIXELS / 1e6}}

    def process(data: bytes, name: str) -> dict[str, Any]:
        start = time.perf_counter()
        image = decode_image(data, name, max_pixels)
        with predict_lock:
            depth = predictor(image)
        files, summary = render_result(image, depth, fov_deg, depth_encoding)
        rid = results.add(files)
        urls = {n: f"/api/result/{rid}/{n}" for n in RESULT_FILES}
        return {"id": rid, "name": name, "metric": predictor.metric, "units": "m" if predictor.metric else "relative",
                **summary, "urls": urls, "seconds": time.perf_counter() - start}

    @app.post("/api/predict")
    async def predict(request: Request):
        try:
            data, name = await read_upload(request, max_upload_bytes, upload_timeout)
            return await run_in_threadpool(process, data, Path(name).name or "upload")
        except UploadError as e:
            return error(e.status, str(e))
        except DepthforgeError as e:
            return error(400, str(e))
        except Exception as e:  # never let one bad request take the service down
            log.exception("prediction failed")
            return error(500, f"prediction failed ({type(e).__name__}: {e})")

    @app.get("/api/result/{rid}/{name}")
    def result(rid: str, name: str):
        path = results.path(rid, name)
        if path is None:
            return error(404, "no such result (unknown or expired id, or unknown file name)")
        media, attachment = RESULT_FILES[name]
        filename = None
        if name == "depth.png":
            filename = depth_png_name(f"depth-{rid[:8]}", depth_encoding)
        elif attachment:
            filename = f"depth-{rid[:8]}{Path(name).suffix}"
        return FileResponse(path, media_type=media, filename=filename,
                            content_disposition_type="attachment" if attachment else "inline")

    return app
