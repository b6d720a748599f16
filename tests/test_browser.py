"""End to end in a real headless browser: upload a photo on the page, see depth, read metres, download."""
from __future__ import annotations

import io
import os
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import depthforge
from depthforge.serve.app import create_app
from conftest import make_checkpoint

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(os.environ.get("DEPTHFORGE_SCREENSHOT", "/tmp/serve.png"))

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    uvicorn = pytest.importorskip("uvicorn")
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    app = create_app(depthforge.load(ckpt, device="cpu"), workdir=str(tmp_path / "work"))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_page_upload_hover_download(server, realdata, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    import httpx

    photo = realdata / "nyu" / "rgb_1.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.set_default_timeout(15_000)
            page.goto(server + "/")
            assert page.title().startswith("depthforge")

            # a bad file first: the page shows the service's one-line message, and the service stays up
            bad = tmp_path / "notes.txt"
            bad.write_text("not a photo")
            page.set_input_files("#file", str(bad))
            page.wait_for_selector("#status.error")
            assert "notes.txt: not an image" in page.inner_text("#status")

            page.set_input_files("#file", str(photo))
            page.wait_for_selector("body[data-ready]")
            rid = page.get_attribute("body", "data-ready")
            natural = page.eval_on_selector("#depth", "img => [img.naturalWidth, img.naturalHeight, img.complete]")
            assert natural == [640, 480, True]
            assert page.eval_on_selector("#photo", "img => img.naturalWidth") == 640

            # hover at a known place on the depth picture and read the metres the page shows
            box = page.locator("#depth").bounding_box()
            page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.6 * box["height"])
            page.wait_for_function("document.getElementById('readout').dataset.x !== undefined")
            text = page.inner_text("#readout")
            match = re.search(r"(\d+\.\d+) m at pixel \((\d+), (\d+)\)", text)
            assert match, text
            metres, x, y = float(match[1]), int(match[2]), int(match[3])
            assert abs(x - 0.3 * 640) <= 2 and abs(y - 0.6 * 480) <= 2
            depth = np.load(io.BytesIO(httpx.get(f"{server}/api/result/{rid}/depth.npy").content))
            assert abs(metres - depth[y, x]) <= 0.005 + 1e-6  # shown to 2 decimals
            assert page.is_visible(".mark")

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            # the 16-bit PNG download link says its encoding, works and holds the same depth in millimetres
            assert page.text_content("#dl-png") == "depth PNG (16-bit, mm)"
            with page.expect_download() as info:
                page.click("#dl-png")
            saved = tmp_path / "download.png"
            info.value.save_as(saved)
            png = Image.open(saved)
            assert png.mode.startswith("I;16") and png.size == (640, 480)
            np.testing.assert_allclose(np.asarray(png) / 1000.0, depth, atol=5e-4)
            assert info.value.suggested_filename == f"depth-{rid[:8]}.png"
        finally:
            browser.close()
    assert httpx.get(server + "/health").json()["status"] == "ok"
