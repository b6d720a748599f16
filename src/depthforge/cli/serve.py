"""``depthforge serve``: a web page and HTTP API for a model."""
from __future__ import annotations

import argparse
import math
import socket
from pathlib import Path

from ..errors import DepthforgeError
from ..serve import MAX_PIXELS, RETENTION, UPLOAD_TIMEOUT, VIDEO_LIMITS
from . import path_arg

# option -> (low, high, "(]"-style ends): every numeric option is checked before the model loads and the port is
# bound, so that a bad value is refused in one line instead of failing each upload later; a 180° field of view
# would put the focal length at 0
RANGES = {"--max-upload-mb": (0, 4096, "(]"), "--max-megapixels": (0, 1000, "(]"), "--fov": (0, 180, "()"),
          "--upload-timeout": (0, 3600, "(]"), "--port": (1, 65535, "[]"), "--workers": (1, 64, "[]"),
          "--queue": (0, 1000, "[]"), "--retention": (0, 7 * 86400, "(]"), "--max-video-mb": (0, 4096, "(]"),
          "--max-video-seconds": (0, 3600, "(]"), "--max-video-frames": (1, 100_000, "[]")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=path_arg, action="append",
                        help="a model to serve, [NAME=]SRC: a depthforge checkpoint, an ONNX/OpenVINO export, a "
                             "Hugging Face folder or hub id; repeat it to serve several (the name defaults to the "
                             "file or folder's stem; the first is loaded at start, the others when first asked for)")
    parser.add_argument("--memory-budget", default="2",
                        help="models kept loaded: a count (2) or megabytes of weights (800MB); the least recently "
                             "used is unloaded beyond it (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="predictions run at once (default 1)")
    parser.add_argument("--queue", type=int, default=2,
                        help="predictions that may wait for a worker; beyond, the server answers 503 busy (default 2)")
    parser.add_argument("--retention", type=float, default=RETENTION,
                        help=f"seconds results and uploads are kept (default {RETENTION:g})")
    parser.add_argument("--max-video-mb", type=float, default=VIDEO_LIMITS["mb"], help="largest video upload (MB)")
    parser.add_argument("--max-video-seconds", type=float, default=VIDEO_LIMITS["seconds"],
                        help="longest video accepted (seconds)")
    parser.add_argument("--max-video-frames", type=int, default=VIDEO_LIMITS["frames"],
                        help="most frames of a video accepted")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload accepted (MB)")
    parser.add_argument("--max-megapixels", type=float, default=MAX_PIXELS / 1e6,
                        help="largest image accepted, in millions of pixels (decompression-bomb guard)")
    parser.add_argument("--upload-timeout", type=float, default=UPLOAD_TIMEOUT,
                        help=f"seconds an upload may take to arrive (default {UPLOAD_TIMEOUT:g})")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when available)")
    parser.add_argument("--fov", type=float, default=60.0,
                        help="horizontal field of view (degrees) assumed for the point cloud")


def check_options(args: argparse.Namespace) -> None:
    """One line naming the option and its range for a value the service could not work with."""
    for option, (low, high, ends) in RANGES.items():
        value = getattr(args, option[2:].replace("-", "_"))
        above = low < value if ends[0] == "(" else low <= value
        below = value < high if ends[1] == ")" else value <= high
        if not (math.isfinite(value) and above and below):
            raise DepthforgeError(f"{option} {value:g}: must be in {ends[0]}{low}, {high}{ends[1]}")
    from ..serve.models import parse_budget

    parse_budget(args.memory_budget)
    try:
        socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise DepthforgeError(f"--host {args.host!r}: not an address to listen on ({e})") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..inference.load import kind_of

    from ..serve.app import create_app, open_source
    from ..serve.models import Models, parse_budget, parse_sources

    check_options(args)
    sources = parse_sources(args.checkpoint)
    budget = parse_budget(args.memory_budget)
    for s in sources[1:]:  # a missing file is refused now, not on the first upload that asks for it
        if kind_of(s.source) == "checkpoint" and not Path(s.source).is_file():
            raise DepthforgeError(f"--checkpoint {s.name}={s.source}: no such file")
    first = open_source(sources[0].source, args.device)
    models = Models(sources, lambda src: open_source(src, args.device), budget, loaded={sources[0].name: first})
    app = create_app(models=models, max_upload_bytes=int(args.max_upload_mb * 2**20),
                     max_pixels=int(args.max_megapixels * 1e6), fov_deg=args.fov, upload_timeout=args.upload_timeout,
                     workers=args.workers, queue=args.queue, retention=args.retention,
                     video={"mb": args.max_video_mb, "seconds": args.max_video_seconds,
                            "frames": args.max_video_frames})
    names = ", ".join(s.name for s in sources)
    print(f"depthforge serve: {names} (first: {first!r})\nopen http://{args.host}:{args.port}/ (Ctrl-C stops)")
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    finally:  # also when uvicorn stops before its lifespan ran (the port taken): no results folder left behind
        app.state.results.close()
    return 0
