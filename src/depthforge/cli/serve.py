"""``depthforge serve``: a web page and HTTP API for a model."""
from __future__ import annotations

import argparse
import math
import socket

from ..errors import DepthforgeError
from ..serve import MAX_PIXELS, UPLOAD_TIMEOUT
from . import path_arg

# option -> (low, high, "(]"-style ends): every numeric option is checked before the model loads and the port is
# bound, so that a bad value is refused in one line instead of failing each upload later; a 180° field of view
# would put the focal length at 0
RANGES = {"--max-upload-mb": (0, 4096, "(]"), "--max-megapixels": (0, 1000, "(]"), "--fov": (0, 180, "()"),
          "--upload-timeout": (0, 3600, "(]"), "--port": (1, 65535, "[]")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=path_arg, help="depthforge checkpoint or exported .onnx")
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
    try:
        socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise DepthforgeError(f"--host {args.host!r}: not an address to listen on ({e})") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..inference.load import load
    from ..serve.app import create_app

    check_options(args)
    predictor = load(args.checkpoint, device=args.device)
    app = create_app(predictor, max_upload_bytes=int(args.max_upload_mb * 2**20),
                     max_pixels=int(args.max_megapixels * 1e6), fov_deg=args.fov, upload_timeout=args.upload_timeout)
    print(f"depthforge serve: {predictor!r}\nopen http://{args.host}:{args.port}/ (Ctrl-C stops)")
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    finally:  # also when uvicorn stops before its lifespan ran (the port taken): no results folder left behind
        app.state.results.close()
    return 0
