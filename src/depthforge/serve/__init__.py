"""serve/: the web page and HTTP API around a predictor."""

MAX_PIXELS = 40_000_000  # decompression-bomb guard, checked from the header before decoding
WORK_PIXELS = 4_000_000  # larger photos are scaled down to this before prediction: bounds memory and files
UPLOAD_TIMEOUT = 60.0  # seconds an upload's body may take: 20 MB at ~3 Mbit/s
