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


def running(app):
    """Serve ``app`` on a free port in a thread; yields its URL."""
    uvicorn = pytest.importorskip("uvicorn")
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


@pytest.fixture
def server(tmp_path):
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    yield from running(create_app(depthforge.load(ckpt, device="cpu"), workdir=str(tmp_path / "work")))


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


@pytest.fixture
def workbench(tmp_path):
    """A server of two tiny models (different weights), as ``depthforge serve --checkpoint unet-a=...
    --checkpoint unet-b=...``."""
    from depthforge.serve.app import open_source
    from depthforge.serve.models import Models, Source

    sources = [Source(n, str(make_checkpoint(tmp_path / f"{n}.ckpt", seed=i)))
               for i, n in enumerate(["unet-a", "unet-b"])]
    app = create_app(models=Models(sources, lambda s: open_source(s, "cpu")), workdir=str(tmp_path / "work"),
                     view_limit=6000)  # software WebGL on a busy CI machine: few points draw fast
    yield from running(app)


def shot(locator, path: Path) -> np.ndarray:
    locator.screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def test_workbench_two_models_3d_view_and_video(workbench, realdata, tmp_path):
    """Pick two models, upload a real photo: both depth maps, their difference and the table show, metres
    under the mouse come from both, the 3-D view draws and turns when dragged; a clip comes back as a playing
    video."""
    sync_api = pytest.importorskip("playwright.sync_api")
    import cv2
    import httpx

    photo = realdata / "nyu" / "rgb_1.png"
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    # WebGL without a GPU: SwiftShader, Chromium's software renderer
    args = [a for a in ARGS if a != "--disable-gpu"] + ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(workbench + "/")
            page.wait_for_function("document.getElementById('model-b').options.length === 3")
            assert "unet-a (not loaded), unet-b (not loaded)" in page.inner_text("#served")

            # a model the server does not serve: the page shows the one-line 404
            page.evaluate("document.getElementById('model-a').add(new Option('gone', 'gone'))")
            page.select_option("#model-a", "gone")
            page.set_input_files("#file", str(photo))
            page.wait_for_selector("#status.error")
            assert "model 'gone' is not served here" in page.inner_text("#status")

            page.select_option("#model-b", "unet-b")
            page.select_option("#model-a", "unet-a")  # a change of model predicts the photo again
            page.wait_for_selector("body[data-ready]")
            for img in ("#depth", "#depth-b", "#diff"):
                assert page.is_visible(img)
                assert page.eval_on_selector(img, "i => [i.naturalWidth, i.naturalHeight]") == [640, 480]
            assert page.inner_text("#c-median").endswith("%") and page.inner_text("#c-order").endswith("%")
            assert "one colour scale" in page.inner_text("#scale")

            page.locator("#depth-b").scroll_into_view_if_needed()
            box = page.locator("#depth-b").bounding_box()
            page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.5 * box["height"])
            page.wait_for_function("document.getElementById('readout').dataset.valueB !== undefined")
            text = page.inner_text("#readout")
            match = re.search(r"unet-a: (\d+\.\d+) m · unet-b: (\d+\.\d+) m at pixel \((\d+), (\d+)\)", text)
            assert match, text
            x, y = int(match[3]), int(match[4])
            assert abs(x - 320) <= 2 and abs(y - 240) <= 2
            for metres, rid in zip(match.group(1, 2), page.evaluate("[state.result.id, state.result.second.id]")):
                depth = np.load(io.BytesIO(httpx.get(f"{workbench}/api/result/{rid}/depth.npy").content))
                assert abs(float(metres) - depth[y, x]) <= 0.005 + 1e-6  # each read from its own model
            page.screenshot(path=str(tmp_path / "workbench.png"), full_page=True)

            page.wait_for_selector("body[data-views]")
            for view in ("#view-a", "#view-b"):
                page.locator(view).scroll_into_view_if_needed()
                before = shot(page.locator(view), tmp_path / f"{view[1:]}-before.png")
                assert before.std() > 5 and len(np.unique(before.reshape(-1, 3), axis=0)) > 50  # points drawn
            # a drag orbits the camera (software WebGL redraws slowly: one drag, on the first view)
            b = page.locator("#view-a").bounding_box()
            cx, cy = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
            page.mouse.move(cx, cy)
            page.mouse.down()
            page.mouse.move(cx + 150, cy + 40, steps=2)
            page.mouse.up()
            page.wait_for_timeout(300)
            before = np.asarray(Image.open(tmp_path / "view-a-before.png").convert("RGB")).astype(np.int16)
            after = shot(page.locator("#view-a"), tmp_path / "view-a-after.png")
            assert (np.abs(after - before).max(axis=2) > 30).mean() > 0.01  # the scene turned
            page.set_input_files("#video", str(clip))
            page.wait_for_selector("body[data-video]")
            page.wait_for_function("document.getElementById('video-out').readyState >= 2")
            assert page.eval_on_selector("#video-out", "v => [v.videoWidth, v.videoHeight]") == [128, 48]
            page.wait_for_function("document.getElementById('video-out').currentTime > 0")  # it plays
            assert "6 frames" in page.inner_text("#video-status")
            page.screenshot(path=str(tmp_path / "workbench-video.png"), full_page=True)
        finally:
            browser.close()
