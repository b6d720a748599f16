"""``depthforge serve``: a web page and HTTP API for one or several models (FastAPI + uvicorn, page in ``web/``).

Upload a photo, see its colour-mapped depth beside it, read metres under the mouse, download the depth
(16-bit PNG, .npy in metres) and the point cloud (PLY); with two models, both depths on one colour scale, their
difference and how much they disagree; a 3-D view of each cloud; a short clip's depth video. The PNG holds
millimetres when the model's ``max_depth`` fits in 65.535 m, else metres x 256 (KITTI's encoding); its download
name says which (``depth-ID.png`` or ``depth-ID_kitti256.png``) and the JSON's ``depth_png`` gives the encoding.
Endpoints:

- ``GET /`` the page; ``GET /health``: the models (loaded or not), the memory budget and every limit;
- ``POST /api/predict?models=A[,B]&fov=DEG``: multipart form with a ``file`` field (or a raw image body) -> JSON
  with ``id``, size, depth range and ``urls``; with two models also ``second`` (B's result) and ``compare``;
- ``POST /api/video?model=A``: a clip -> ``{"job"}``; ``GET /api/job/{id}``: its state and frames done;
- ``GET /api/result/{id}/{name}``: ``image.jpg`` (the photo as decoded), ``color.png``, ``depth.png``,
  ``depth.npy``, ``cloud.ply``, ``hover.f32`` (little-endian float32 metres, row-major, at ``hover`` size),
  ``points.bin`` (the 3-D view's points, ``compare.view_points``), ``diff.png``, ``depth.mp4`` (H.264: every browser plays it).

Uploads are read into memory up to the size limit and within a time limit (``--upload-timeout``), their pixel
count is checked before decoding; predictions run in a bounded pool (503 with Retry-After when it is full);
results live only in a private temporary folder (random hex ids, oldest evicted, each removed after the
retention, all at shutdown).
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
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..viz.colors import depth_range, legend
from ..data.io import read_image
from ..files import write_bytes
from ..encode import depth_png_name, image_bytes, png16_encoding
from ..errors import DepthforgeError, error_line
from ..inference.load import open_model
from ..inference.results import result_files
from ..inference.video import VIDEO_SUFFIXES, predict_video
from ..viz.pointcloud import estimate_intrinsics

log = logging.getLogger(__name__)

WEB = Path(__file__).parent / "web"
ID_RE = re.compile(r"[0-9a-f]{32}")
from . import MAX_PIXELS, RETENTION, UPLOAD_TIMEOUT, VIDEO_LIMITS, WORK_PIXELS
from .compare import VIEW_POINTS, as_depth, diff_png, disagreement, view_points
from .models import Busy, Models, NotServed, Pool, Source
from .video import Counted, probe
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
    "points.bin": ("application/octet-stream", False),
    "diff.png": ("image/png", False),
    "depth.mp4": ("video/mp4", True),
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
    """Prediction results as files in one private temporary folder; the oldest are evicted past ``keep``, and
    every one is removed ``retention`` seconds after it was made (``sweep``, run on each new result and by the
    app's sweeper)."""

    def __init__(self, workdir: str | None = None, keep: int = 50, retention: float = RETENTION):
        try:
            if workdir is not None:
                Path(workdir).mkdir(parents=True, exist_ok=True)
            self.root = Path(tempfile.mkdtemp(prefix="depthforge-serve-", dir=workdir))
        except OSError as e:
            raise DepthforgeError(f"{workdir or tempfile.gettempdir()}: cannot create a folder for results "
                                  f"({e.strerror or e})") from None
        self.keep, self.retention, self.lock, self.ids = keep, retention, threading.Lock(), OrderedDict()

    def folder(self) -> tuple[str, Path]:
        """A new result's id and its (empty) folder, under the same eviction and retention as every result."""
        self.sweep()
        rid = secrets.token_hex(16)
        folder = self.root / rid
        folder.mkdir()
        with self.lock:
            self.ids[rid] = time.time()
            while len(self.ids) > self.keep:
                old, _ = self.ids.popitem(last=False)
                shutil.rmtree(self.root / old, ignore_errors=True)
        return rid, folder

    def add(self, files: dict[str, bytes]) -> str:
        rid, folder = self.folder()
        for name, data in files.items():
            write_bytes(folder / name, data)
        return rid

    def sweep(self) -> None:
        """Remove every result older than the retention."""
        cutoff = time.time() - self.retention
        with self.lock:
            old = [rid for rid, made in self.ids.items() if made < cutoff]
            for rid in old:
                del self.ids[rid]
        for rid in old:
            shutil.rmtree(self.root / rid, ignore_errors=True)

    def path(self, rid: str, name: str) -> Path | None:
        if not ID_RE.fullmatch(rid) or name not in RESULT_FILES:
            return None
        self.sweep()
        with self.lock:
            if rid not in self.ids:
                return None
        path = self.root / rid / name
        return path if path.is_file() else None

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def render_result(image: np.ndarray, depth: np.ndarray, fov_deg: float = 60.0, depth_encoding: str = "mm",
                  vrange: tuple[float, float] | None = None, intrinsics: np.ndarray | None = None,
                  intrinsics_label: str | None = None,
                  view_limit: int = VIEW_POINTS) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Photo and its depth -> the result files (``inference.results.result_files``, the same as ``depthforge
    predict`` writes, plus the photo, the hover depth and the 3-D view's points) and the summary the page shows;
    ``depth.png`` is written in ``depth_encoding`` ("mm" or "kitti256", see ``encode.png16_encoding``). ``vrange``:
    the colour scale (default: this depth's own); ``intrinsics`` (3,3) place the points (default: from
    ``fov_deg``), ``intrinsics_label`` says where they came from; the 3-D view gets at most ``view_limit`` points."""
    h, w = depth.shape
    good = np.isfinite(depth) & (depth > 0)  # the pixels with a depth, as ``backproject`` takes them
    valid = depth[good]
    vmin, vmax = vrange or depth_range(depth)
    if intrinsics is None:
        intrinsics = estimate_intrinsics(h, w, fov_deg)
        intrinsics_label = intrinsics_label or f"estimated from a {fov_deg:g}° horizontal field of view"
    hover_step = max(1, math.ceil(math.sqrt(h * w / HOVER_PIXELS)))
    hover = np.ascontiguousarray(depth[::hover_step, ::hover_step], dtype="<f4")
    cloud_step = max(1, math.ceil(math.sqrt(h * w / CLOUD_POINTS)))
    files = {"image.jpg": image_bytes(image, "jpeg", quality=90),
             **result_files(depth, depth_encoding, image, ply=True, intrinsics=intrinsics,
                            cloud_step=cloud_step, vrange=(vmin, vmax), compress_level=1),
             "hover.f32": hover.tobytes(), "points.bin": view_points(depth, image, intrinsics, view_limit)}
    summary = {"width": w, "height": h,
               "min": float(valid.min()) if valid.size else 0.0, "max": float(valid.max()) if valid.size else 0.0,
               "vmin": vmin, "vmax": vmax, "legend": legend(vmin, vmax),
               "hover": {"width": hover.shape[1], "height": hover.shape[0], "step": hover_step},
               "points": int(np.count_nonzero(good[::cloud_step, ::cloud_step])), "cloud_step": cloud_step,
               "intrinsics": intrinsics_label, "focal_px": float(intrinsics[0][0]),
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


def predict_with_camera(predictor, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(depth, the model's estimate of the camera's intrinsics (3,3) at the image's size or None), in one run of the
    network: ``Predictor.predict`` where the model estimates the camera (Depth Pro, PyTorch or exported)."""
    if getattr(predictor, "estimates_camera", False):
        result = predictor.predict(image)
        return result.depth, result.intrinsics
    return predictor(image), None


def camera(image: np.ndarray, fov: float | None, default_fov: float,
           estimate: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The intrinsics the point clouds use and where they came from: the user's field of view, else the model's
    own ``estimate`` (see ``predict_with_camera``), else ``default_fov``."""
    h, w = image.shape[:2]
    if fov is not None:
        return estimate_intrinsics(h, w, fov), f"from your {fov:g}° horizontal field of view"
    if estimate is not None:
        return estimate, f"the model's own estimate (focal length {estimate[0, 0]:.0f} px)"
    return (estimate_intrinsics(h, w, default_fov),
            f"estimated from a {default_fov:g}° horizontal field of view (the default; none given)")


def open_source(source: str, device: str | None = None):
    """A served model's predictor, opened like every command opens one (``inference.load.open_model``)."""
    return open_model(source, device=device).predictor


def create_app(predictor=None, max_upload_bytes: int = 20 * 2**20, workdir: str | None = None,
               max_pixels: int = MAX_PIXELS, keep: int = 50, fov_deg: float = 60.0,
               upload_timeout: float = UPLOAD_TIMEOUT, models: Models | None = None, workers: int = 1,
               queue: int = 2, retention: float = RETENTION, video: dict | None = None,
               view_limit: int = VIEW_POINTS) -> FastAPI:
    """The FastAPI app serving ``models`` (a ``serve.models.Models``), or one ``predictor`` (a
    ``depthforge.Predictor``); see the module docstring. ``upload_timeout``: seconds an upload's body may take
    to arrive; ``workers``/``queue``: predictions running at once / waiting before the server answers 503;
    ``retention``: seconds results and uploads are kept; ``video``: limits of video uploads (``VIDEO_LIMITS``);
    ``view_limit``: points sent to the 3-D view per model."""
    if models is None:
        name = (predictor.info.get("model") or {}).get("name") or "model"
        models = Models([Source(name, getattr(predictor, "source", "") or name)], open_source,
                        loaded={name: predictor})
    results = Results(workdir, keep, retention)
    pool = Pool(workers, queue)
    video = {**VIDEO_LIMITS, **(video or {})}
    jobs: dict[str, dict[str, Any]] = {}
    stop = threading.Event()

    def sweeper():
        while not stop.wait(min(30.0, max(0.05, retention / 4))):
            results.sweep()
            for rid in [r for r in list(jobs) if r not in results.ids]:
                jobs.pop(rid, None)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        thread = threading.Thread(target=sweeper, name="depthforge-sweeper", daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(timeout=5)
        results.close()

    app = FastAPI(title="depthforge", lifespan=lifespan, docs_url="/api/docs", redoc_url=None)
    app.state.results, app.state.models, app.state.pool = results, models, pool
    app.state.predictor = predictor
    app.mount("/static", StaticFiles(directory=WEB), name="static")

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    def fail(e: Exception) -> JSONResponse:
        if isinstance(e, Busy):
            return error(503, str(e), {"Retry-After": str(e.seconds)})
        if isinstance(e, UploadError):
            return error(e.status, str(e))
        if isinstance(e, DepthforgeError):
            return error(404 if isinstance(e, NotServed) else 400, str(e))
        log.exception("prediction failed")
        return error(500, f"prediction failed ({type(e).__name__}: {e})")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(WEB / "index.html", media_type="text/html")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js():  # the 3-D view's library, from the installed wheel: the page needs no internet
        import plotly

        return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                            media_type="text/javascript")

    @app.get("/health")
    def health():
        listed = models.describe()
        first = next((m for m in listed if m["loaded"]), None)
        out = {"status": "ok", "models": listed, "default": models.default,
               "memory_budget": {models.budget[0]: models.budget[1],
                                 "loaded_mb": round(sum(m.get("mb", 0) for m in listed), 1),
                                 "unloaded_recently": models.unloaded},
               "results": len(results.ids), "busy": pool.admitted,
               "limits": {"upload_mb": round(max_upload_bytes / 2**20, 1), "max_megapixels": max_pixels / 1e6,
                          "work_megapixels": WORK_PIXELS / 1e6, "workers": pool.workers, "queue": pool.queue,
                          "retention_s": retention, "view_points": view_limit, "default_fov": fov_deg,
                          "video": video}}
        if first is not None:  # the first loaded model's facts, as a one-model server always gave them
            p = models.loaded[first["name"]][0] if first["name"] in models.loaded else None
            if p is not None:
                out.update(model=first["model"], served=served(p), metric=p.metric, train_size=p.train_size,
                           preprocessing=p.contract.preprocessing(), depth_png=png16_encoding(p.max_depth))
        return out

    def pick(names: str | None) -> list[str]:
        chosen = [n.strip() for n in (names or models.default).split(",") if n.strip()] or [models.default]
        if len(chosen) > 2:
            raise DepthforgeError(f"models={names}: pick one or two models")
        return [models.check(n) for n in chosen]

    def check_fov(fov: float | None) -> None:
        if fov is not None and not (math.isfinite(fov) and 0 < fov < 180):
            raise DepthforgeError(f"fov={fov:g}: a horizontal field of view must be between 0 and 180 degrees")

    def one(name: str, predictor, image, depth, vrange, fov, dropped, estimate=None) -> dict[str, Any]:
        k, label = camera(image, fov, fov_deg, estimate)
        encoding = png16_encoding(predictor.max_depth)  # the 16-bit PNG must hold the model's whole range
        files, summary = render_result(image, depth, fov_deg, encoding, vrange, k, label, view_limit)
        if encoding == "kitti256":
            files["kitti256"] = b""  # a marker (never served) that names the download
        rid = results.add(files)
        return {"id": rid, "model": name, "metric": predictor.metric,
                "units": "m" if predictor.metric else "relative", **summary,
                "urls": {n: f"/api/result/{rid}/{n}" for n in RESULT_FILES if n in files}, "unloaded": dropped}

    def process(data: bytes, name: str, names: list[str], fov: float | None) -> dict[str, Any]:
        start = time.perf_counter()
        image = decode_image(data, name, max_pixels)
        runs, estimates = [], {}
        with pool.run():
            for n in names:
                predictor, dropped = models.get(n)
                depth, estimates[n] = predict_with_camera(predictor, image)
                runs.append((n, predictor, depth, dropped))
        aligned = None
        if len(runs) == 2:
            (na, pa, a, _), (nb, pb, b, _) = runs
            a, b = as_depth(a, pa.output), as_depth(b, pb.output)
            if not (pa.metric and pb.metric):  # relative depth has no unit: put B on A's scale to compare them
                ma, mb_ = np.median(a[a > 0]) if (a > 0).any() else 1.0, np.median(b[b > 0]) if (b > 0).any() else 1.0
                b = (b * (ma / mb_)).astype(np.float32)
                aligned = f"{nb} scaled to {na} by the ratio of their medians ({ma / mb_:.3g})"
            runs = [(na, pa, a, runs[0][3]), (nb, pb, b, runs[1][3])]
            vrange = depth_range(np.stack([a, b]))
        else:
            vrange = None
        out = [one(n, p, image, d, vrange, fov, dropped, estimates[n]) for n, p, d, dropped in runs]
        body = {**out[0], "name": name, "seconds": time.perf_counter() - start}
        if len(out) == 2:
            a, b = runs[0][2], runs[1][2]
            png, limit = diff_png(a, b)
            cid = results.add({"diff.png": png})
            body["second"] = out[1]
            body["compare"] = {"id": cid, "urls": {"diff.png": f"/api/result/{cid}/diff.png"},
                               **disagreement(a, b), "diff_limit": limit, "aligned": aligned,
                               "scale": f"both maps on one colour scale, {vrange[0]:.3g} – {vrange[1]:.3g} "
                                        f"{'m' if aligned is None and runs[0][1].metric else '(relative)'} "
                                        "(2nd – 98th percentile of both)"}
        return body

    @app.post("/api/predict")
    async def predict(request: Request, picked: str | None = Query(None, alias="models"), fov: float | None = None):
        admitted = False
        try:
            names = pick(picked)
            check_fov(fov)
            data, name = await read_upload(request, max_upload_bytes, upload_timeout)
            pool.admit()
            admitted = True
            return await run_in_threadpool(process, data, Path(name).name or "upload", names, fov)
        except Exception as e:  # never let one bad request take the service down
            return fail(e)
        finally:
            if admitted:
                pool.release()

    def video_job(rid: str, clip: Path, name: str, frames: int) -> None:
        job, folder = jobs[rid], clip.parent
        try:
            with pool.run():
                predictor, job["unloaded"] = models.get(name)
                predict_video(Counted(predictor, job), clip, folder / "depth.mp4", max_frames=frames, progress=False)
            job.update(state="done", url=f"/api/result/{rid}/depth.mp4", download=f"/api/result/{rid}/depth.mp4")
        except Exception as e:  # the page shows it; the server goes on
            if not isinstance(e, DepthforgeError):
                log.exception("video job failed")
            job.update(state="failed", error=error_line(e))
        finally:
            pool.release()
            clip.unlink(missing_ok=True)  # the upload is not kept once its depth video is made

    @app.post("/api/video")
    async def video_upload(request: Request, model: str | None = None):
        admitted = False
        try:
            name = models.check(model or models.default)
            data, filename = await read_upload(request, int(video["mb"] * 2**20), upload_timeout)
            filename = Path(filename).name or "upload"
            if not data:
                raise UploadError(400, f"{filename}: empty upload")
            pool.admit()
            admitted = True
            rid, folder = results.folder()
            suffix = Path(filename).suffix.lower()
            clip = folder / ("clip" + (suffix if suffix in VIDEO_SUFFIXES else ".bin"))
            await run_in_threadpool(write_bytes, clip, data)
            try:
                frames = await run_in_threadpool(probe, clip, filename, video)
            except DepthforgeError as e:
                clip.unlink(missing_ok=True)
                raise UploadError(413 if getattr(e, "kind", None) == "too large" else 400, str(e)) from None
            jobs[rid] = {"state": "running", "frames": 0, "total": frames, "model": name, "name": filename}
            threading.Thread(target=video_job, args=(rid, clip, name, frames), daemon=True).start()
            admitted = False  # the job gives its place back when it ends
            return {"job": rid, "total": frames, "model": name}
        except Exception as e:
            return fail(e)
        finally:
            if admitted:
                pool.release()

    @app.get("/api/job/{rid}")
    def job_state(rid: str):
        job = jobs.get(rid) if ID_RE.fullmatch(rid) and rid in results.ids else None
        if job is None:
            return error(404, "no such video job (unknown or expired id)")
        return {"job": rid, **job}

    @app.get("/api/result/{rid}/{name}")
    def result(rid: str, name: str):
        path = results.path(rid, name)
        if path is None:
            return error(404, "no such result (unknown or expired id, or unknown file name)")
        media, attachment = RESULT_FILES[name]
        filename = None
        if name == "depth.png":
            encoding = "kitti256" if (path.parent / "kitti256").exists() else "mm"
            filename = depth_png_name(f"depth-{rid[:8]}", encoding)
        elif attachment:
            filename = f"depth-{rid[:8]}{Path(name).suffix}"
        return FileResponse(path, media_type=media, filename=filename,
                            content_disposition_type="attachment" if attachment else "inline")

    return app
