"""serve/: the web page and HTTP API around a predictor."""

from ..data.io import MAX_PIXELS  # the decompression-bomb guard every reader shares, checked from the header
WORK_PIXELS = 4_000_000  # larger photos are scaled down to this before prediction: bounds memory and files
UPLOAD_TIMEOUT = 60.0  # seconds an upload's body may take: 20 MB at ~3 Mbit/s
RETENTION = 3600.0  # seconds a result (and an uploaded clip) is kept before it is removed
VIDEO_LIMITS = {"mb": 50.0, "seconds": 20.0, "frames": 300}  # what a video upload may be: size, duration, frames
