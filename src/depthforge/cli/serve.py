"""``depthforge serve``: a web page and HTTP API for a model."""
from __future__ import annotations

import argparse

from ..errors import DepthforgeError
from ..serve import MAX_PIXELS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="depthforge checkpoint or exported .onnx")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload accepted (MB)")
    parser.add_argument("--max-megapixels", type=float, default=MAX_PIXELS / 1e6,
                        help="largest image accepted, in millions of pixels (decompression-bomb guard)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when available)")
    parser.add_argument("--fov", type=float, default=60.0,
                        help="horizontal field of view (degrees) assumed for the point cloud")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..inference.load import load
    from ..serve.app import create_app

    if not 0 < args.port < 65536:
        raise DepthforgeError(f"--port {args.port}: a TCP port is 1..65535")
    predictor = load(args.checkpoint, device=args.device)
    app = create_app(predictor, max_upload_bytes=int(args.max_upload_mb * 2**20),
                     max_pixels=int(args.max_megapixels * 1e6), fov_deg=args.fov)
    print(f"depthforge serve: {predictor!r}\nopen http://{args.host}:{args.port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
