"""The web service: good uploads give every result file; bad ones a clear 4xx JSON, and the service stays up."""
from __future__ import annotations

import io
import re
import struct
import tempfile
import zlib

import numpy as np
import pytest

from depthforge.models import Contract, DepthModel
from fastapi.testclient import TestClient
from PIL import Image

import depthforge
from depthforge.viz.pointcloud import read_ply
from depthforge.serve.app import WEB, create_app
from conftest import make_checkpoint

LIMIT = 200_000


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return depthforge.load(make_checkpoint(tmp_path_factory.mktemp("serve") / "model.ckpt"), device="cpu")


@pytest.fixture
def client(predictor, tmp_path):
    app = create_app(predictor, max_upload_bytes=LIMIT, workdir=str(tmp_path / "work"), keep=3)
    with TestClient(app) as c:
        yield c, app
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())  # removed at shutdown


def png_bytes(h=75, w=101, mode="RGB", seed=0) -> bytes:
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(side=20000) -> bytes:
    """A 1-bit side×side PNG of zeros: ~50 kB on the wire, 400 MP once decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    row = b"\0" * (1 + side // 8)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def upload(c, data, name="photo.png", mime="image/png"):
    return c.post("/api/predict", files={"file": (name, data, mime)})


def test_page_health_and_static_files(client):
    c, _ = client
    page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="/static/app.js"' in page.text and 'id="file"' in page.text
    assert c.get("/static/app.js").status_code == 200 and c.get("/static/style.css").status_code == 200
    health = c.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "seed-unet" and health["metric"] is True
    # nothing external to load: no CDN, no remote fonts or scripts
    for f in WEB.iterdir():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", f.read_text()), f.name


def test_good_upload_gives_every_result(client, tmp_path):
    c, app = client
    r = upload(c, png_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["id"]) and (body["width"], body["height"]) == (101, 75)
    assert 0 < body["min"] <= body["vmin"] < body["vmax"] <= body["max"] < 10 and body["units"] == "m"
    assert body["points"] == 75 * 101 and body["name"] == "photo.png" and "60° horizontal" in body["intrinsics"]
    urls = body["urls"]
    depth = np.load(io.BytesIO(c.get(urls["depth.npy"]).content))
    assert depth.shape == (75, 101) and depth.dtype == np.float32
    png = c.get(urls["depth.png"])
    assert png.headers["content-type"] == "image/png" and "attachment" in png.headers["content-disposition"]
    mm = np.asarray(Image.open(io.BytesIO(png.content)))
    assert Image.open(io.BytesIO(png.content)).mode.startswith("I;16") and mm.shape == (75, 101)
    np.testing.assert_allclose(mm / 1000.0, depth, atol=5e-4)
    hover = np.frombuffer(c.get(urls["hover.f32"]).content, "<f4").reshape(body["hover"]["height"], -1)
    np.testing.assert_array_equal(hover, depth)  # small image: the read-out map is the full depth
    color = Image.open(io.BytesIO(c.get(urls["color.png"]).content))
    assert color.size == (101, 75) and color.mode == "RGB"
    assert Image.open(io.BytesIO(c.get(urls["image.jpg"]).content)).size == (101, 75)
    (tmp_path / "cloud.ply").write_bytes(c.get(urls["cloud.ply"]).content)
    points, colors = read_ply(tmp_path / "cloud.ply")
    assert len(points) == body["points"] and colors.shape == (len(points), 3)
    np.testing.assert_allclose(np.sort(points[:, 2]), np.sort(depth.ravel()), rtol=1e-6)
    # the same photo as a raw body (curl --data-binary) gives the same depth
    raw = c.post("/api/predict", content=png_bytes(), headers={"content-type": "image/png"})
    assert raw.status_code == 200
    np.testing.assert_array_equal(np.load(io.BytesIO(c.get(raw.json()["urls"]["depth.npy"]).content)), depth)
    # every file the service wrote is inside its own temporary folder
    root = app.state.results.root
    assert root.parent == tmp_path / "work" and all(p.is_relative_to(root) for p in (tmp_path / "work").rglob("*"))


def test_grayscale_and_rgba_uploads(client):
    c, _ = client
    gray16 = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 65536, (40, 33)).astype(np.uint16)).save(gray16, "PNG")
    for name, data in [("gray.png", png_bytes(40, 33, "L")), ("rgba.png", png_bytes(40, 33, "RGBA")),
                       ("gray16.png", gray16.getvalue())]:
        r = upload(c, data, name=name)
        assert r.status_code == 200, r.text
        assert (r.json()["width"], r.json()["height"]) == (33, 40)


@pytest.mark.parametrize("data, name, status, message", [
    (b"just some text\n", "notes.txt", 400, "notes.txt: not an image"),
    (b"", "empty.png", 400, "empty.png: empty upload"),
    (png_bytes()[:300], "cut.png", 400, "cut.png: unreadable or truncated image"),
    (b"\0" * (LIMIT + 1), "big.png", 413, "larger than the"),
    (bomb_png(), "bomb.png", 413, r"bomb.png: image is 400 MP; the limit is 40 MP \(decompression bomb guard\)"),
    (bomb_png(8000), "b2.png", 413, r"b2.png: image is 8000x8000 \(64 MP\); the limit is 40 MP"),
], ids=["text", "empty", "truncated", "oversized", "bomb-400MP", "bomb-64MP"])
def test_bad_uploads_get_a_clear_4xx_and_the_service_stays_up(client, data, name, status, message):
    c, _ = client
    r = upload(c, data, name=name)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert re.search(message, detail) and "\n" not in detail
    assert c.get("/health").status_code == 200
    assert upload(c, png_bytes(20, 30)).status_code == 200


def test_malformed_requests(client):
    c, _ = client
    r = c.post("/api/predict", files={"other": ("a.png", png_bytes(), "image/png")})
    assert r.status_code == 400 and "no 'file' field" in r.json()["detail"]
    r = c.post("/api/predict", content=b"x" * 10, headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400 and "boundary" in r.json()["detail"]
    r = c.post("/api/predict", content=b"--zz\r\nbroken", headers={"content-type": "multipart/form-data; boundary=zz"})
    assert r.status_code == 400
    big = c.post("/api/predict", content=b"\0" * 10, headers={"content-type": "image/png",
                                                                "content-length": str(LIMIT * 2)})
    assert big.status_code == 413
    assert c.get("/health").status_code == 200


def test_result_ids_cannot_escape_the_folder(client):
    c, _ = client
    rid = upload(c, png_bytes()).json()["id"]
    assert c.get(f"/api/result/{rid}/depth.png").status_code == 200
    for url in [f"/api/result/{rid}/..%2F..%2Fetc%2Fpasswd", "/api/result/..%2F..%2Fetc/passwd",
                "/api/result/../../etc/passwd", f"/api/result/{rid}/secret.txt", f"/api/result/{rid.upper()}/depth.png",
                f"/api/result/{'0' * 32}/depth.png", "/api/result/%2e%2e/depth.png", f"/api/result/{rid}/..",
                f"/api/result/{rid[:-1]}/depth.png", f"/api/result/{rid}%2F..%2F{rid}/depth.png"]:
        r = c.get(url)
        assert r.status_code == 404, url
    assert c.get("/health").status_code == 200


def test_old_results_are_evicted(client):
    c, app = client
    ids = [upload(c, png_bytes(20, 30, seed=i)).json()["id"] for i in range(4)]  # keep=3
    assert c.get(f"/api/result/{ids[0]}/depth.npy").status_code == 404
    assert all(c.get(f"/api/result/{i}/depth.npy").status_code == 200 for i in ids[1:])
    assert len(list(app.state.results.root.iterdir())) == 3


def test_uploads_never_touch_the_system_temp_folder(client, tmp_path, monkeypatch):
    c, _ = client
    spy = tmp_path / "system-tmp"
    spy.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spy))
    big = png_bytes(300, 200)  # > 100 kB: would be spooled to disk by a default form parser
    assert len(big) > 100_000
    assert upload(c, big).status_code == 200
    assert upload(c, b"text", name="t.txt").status_code == 400
    assert list(spy.iterdir()) == []


def test_large_photos_get_a_subsampled_readout_map_and_cloud(monkeypatch):
    from depthforge.serve import app as serve
    from depthforge.viz.pointcloud import backproject, estimate_intrinsics

    monkeypatch.setattr(serve, "HOVER_PIXELS", 100)
    monkeypatch.setattr(serve, "CLOUD_POINTS", 200)
    depth = np.random.default_rng(0).uniform(1, 5, (40, 50)).astype(np.float32)
    image = np.random.default_rng(1).uniform(0, 1, (40, 50, 3)).astype(np.float32)
    files, summary = serve.render_result(image, depth, fov_deg=60)
    assert summary["hover"] == {"width": 10, "height": 8, "step": 5}
    np.testing.assert_array_equal(np.frombuffer(files["hover.f32"], "<f4").reshape(8, 10), depth[::5, ::5])
    assert summary["cloud_step"] == 4 and summary["points"] == 10 * 13
    # the strided cloud is exactly the full-resolution cloud at those pixels
    full, _ = backproject(depth, estimate_intrinsics(40, 50, 60))
    ply = files["cloud.ply"]
    vertex = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
    points = np.frombuffer(ply[ply.index(b"end_header\n") + 11:], vertex)["xyz"]
    np.testing.assert_allclose(points, full.reshape(40, 50, 3)[::4, ::4].reshape(-1, 3), rtol=1e-5, atol=1e-6)


def test_exif_orientation_is_applied(client):
    c, _ = client
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when shown, as phones store portrait photos
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(buf, "JPEG", exif=exif)
    body = upload(c, buf.getvalue(), name="portrait.jpg", mime="image/jpeg").json()
    assert (body["width"], body["height"]) == (30, 40)


class FarModel(DepthModel):
    """A KITTI-range model (max_depth 80) whose far pixels lie beyond what 16-bit millimetres hold (65.535 m)."""

    def __init__(self):
        super().__init__()
        self.set_contract(Contract("metric", 80.0, mean=(0.0,) * 3, std=(1.0,) * 3))

    def forward(self, x):
        return 1.0 + 90.0 * x.mean(1, keepdim=True)


def test_far_range_model_downloads_depth_png_as_kitti256(tmp_path):
    from depthforge.inference.predictor import from_module

    app = create_app(from_module(FarModel(), {}, "cpu"), workdir=str(tmp_path / "work"))
    with TestClient(app) as c:
        assert c.get("/health").json()["depth_png"] == "kitti256"
        body = upload(c, png_bytes(30, 40)).json()
        assert body["depth_png"] == {"encoding": "kitti256", "label": "16-bit, m × 256 as KITTI"}
        depth = np.load(io.BytesIO(c.get(body["urls"]["depth.npy"]).content))
        assert depth.max() > 65.535
        png = c.get(body["urls"]["depth.png"])
        assert f'depth-{body["id"][:8]}_kitti256.png' in png.headers["content-disposition"]
        raw = np.asarray(Image.open(io.BytesIO(png.content)))
        assert (raw > 0).all()
        np.testing.assert_allclose(raw / 256.0, depth, atol=1 / 512)


def test_metric_model_within_65_m_keeps_millimetres(client):
    c, _ = client
    assert c.get("/health").json()["depth_png"] == "mm"
    body = upload(c, png_bytes()).json()
    assert body["depth_png"] == {"encoding": "mm", "label": "16-bit, mm"}
    disposition = c.get(body["urls"]["depth.png"]).headers["content-disposition"]
    assert f'depth-{body["id"][:8]}.png' in disposition


def test_any_file_name_works(client):
    """Browsers send UTF-8 file names (multipart); a raw upload may send one percent-encoded."""
    c, _ = client
    r = upload(c, png_bytes(), name="фото 写真.png")
    assert r.status_code == 200 and r.json()["name"] == "фото 写真.png"
    r = c.post("/api/predict", content=png_bytes(), headers={"content-type": "image/png",
                                                              "x-filename": "%D1%84%D0%BE%D1%82%D0%BE.png"})
    assert r.status_code == 200 and r.json()["name"] == "фото.png"


def test_huge_photos_are_scaled_to_the_work_size(predictor, tmp_path):
    """A 40 MP JPEG of 130 kB must not cost gigabytes: it is predicted at no more than WORK_PIXELS."""
    from depthforge.serve import WORK_PIXELS

    buf = io.BytesIO()
    Image.new("RGB", (6600, 6000), (120, 80, 40)).save(buf, format="JPEG", quality=80)
    with TestClient(create_app(predictor, workdir=str(tmp_path / "work"))) as c:
        r = upload(c, buf.getvalue(), name="big.jpg", mime="image/jpeg")
        limits = c.get("/health").json()["limits"]
    assert r.status_code == 200
    body = r.json()
    assert body["width"] * body["height"] <= WORK_PIXELS and body["width"] / body["height"] == pytest.approx(1.1, 0.01)
    assert limits["work_megapixels"] == WORK_PIXELS / 1e6 and limits["max_megapixels"] >= 40


# ---- the workbench: several models, side by side, 3-D points, video, a bounded pool, retention ----

from depthforge.serve.app import open_source  # noqa: E402
from depthforge.serve.models import Models, Source, parse_budget, parse_sources  # noqa: E402


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    return [str(make_checkpoint(root / "a.ckpt", seed=0)), str(make_checkpoint(root / "b.ckpt", seed=1))]


def served(paths, budget=("models", 2), **kw):
    """An app serving the checkpoints as models a and b, none loaded yet."""
    models = Models([Source("a", paths[0]), Source("b", paths[1])], lambda s: open_source(s, "cpu"), budget)
    return create_app(models=models, **kw)


def test_two_models_side_by_side_on_one_scale(two_checkpoints, tmp_path):
    from depthforge.serve.compare import disagreement

    with TestClient(served(two_checkpoints, workdir=str(tmp_path / "w"))) as c:
        r = c.post("/api/predict?models=a,b", files={"file": ("p.png", png_bytes(), "image/png")})
        assert r.status_code == 200, r.text
        body = r.json()
        a, b = body, body["second"]
        assert (a["model"], b["model"]) == ("a", "b") and a["id"] != b["id"]
        assert (a["vmin"], a["vmax"]) == (b["vmin"], b["vmax"])  # one colour scale for both
        da = np.load(io.BytesIO(c.get(a["urls"]["depth.npy"]).content))
        db = np.load(io.BytesIO(c.get(b["urls"]["depth.npy"]).content))
        assert not np.allclose(da, db)  # two different networks
        assert (a["vmin"], a["vmax"]) == pytest.approx(tuple(np.percentile(np.stack([da, db]), (2, 98))), rel=1e-5)
        cmp = body["compare"]
        assert cmp["median_rel_diff"] == pytest.approx(float(np.median(np.abs(db - da) / da)), rel=1e-5)
        assert 0 < cmp["order_disagreement"] < 1 and cmp["pairs"] > 90_000 and "one colour scale" in cmp["scale"]
        assert cmp == {**disagreement(da, db), **{k: cmp[k] for k in ("id", "urls", "diff_limit", "aligned", "scale")}}
        diff = Image.open(io.BytesIO(c.get(cmp["urls"]["diff.png"]).content))
        assert diff.size == (101, 75)
        again = c.post("/api/predict?models=a,b", files={"file": ("p.png", png_bytes(), "image/png")}).json()
        assert again["compare"]["order_disagreement"] == cmp["order_disagreement"]  # pairs drawn deterministically


def test_order_disagreement_counts_swapped_pairs():
    from depthforge.serve.compare import disagreement

    a = np.arange(1, 101, dtype=np.float32).reshape(10, 10)
    assert disagreement(a, 2 * a)["order_disagreement"] == 0  # a scale keeps every order
    assert disagreement(a, 2 * a)["median_rel_diff"] == pytest.approx(1.0)
    assert disagreement(a, 101 - a)["order_disagreement"] == 1  # every order reversed


def test_models_load_lazily_within_the_budget(two_checkpoints, tmp_path):
    with TestClient(served(two_checkpoints, budget=("models", 1), workdir=str(tmp_path / "w"))) as c:
        health = c.get("/health").json()
        assert [(m["name"], m["loaded"]) for m in health["models"]] == [("a", False), ("b", False)]
        assert health["memory_budget"]["models"] == 1 and health["default"] == "a"
        assert upload(c, png_bytes(20, 30)).json()["unloaded"] == []  # the default model: a
        r = c.post("/api/predict?models=b", files={"file": ("p.png", png_bytes(20, 30), "image/png")}).json()
        assert r["model"] == "b" and r["unloaded"] == ["a"]
        health = c.get("/health").json()
        assert [(m["name"], m["loaded"]) for m in health["models"]] == [("a", False), ("b", True)]
        assert health["memory_budget"]["unloaded_recently"] == ["a"] and health["models"][1]["mb"] > 0
    with TestClient(served(two_checkpoints, budget=("mb", 1e6), workdir=str(tmp_path / "w2"))) as c:
        c.post("/api/predict?models=a,b", files={"file": ("p.png", png_bytes(20, 30), "image/png")})
        assert all(m["loaded"] for m in c.get("/health").json()["models"])  # both fit


def test_serve_options_name_models_and_parse_budgets():
    assert parse_sources(["runs/x/best.ckpt", "da=depth-anything/Depth-Anything-V2-Small-hf", "m.onnx"]) == [
        Source("best", "runs/x/best.ckpt"), Source("da", "depth-anything/Depth-Anything-V2-Small-hf"),
        Source("m", "m.onnx")]
    with pytest.raises(depthforge.DepthforgeError, match="given twice"):
        parse_sources(["a/best.ckpt", "b/best.ckpt"])
    assert parse_budget("2") == ("models", 2) and parse_budget("800MB") == ("mb", 800)
    for bad in ("0", "512", "-1MB", "nanMB", "lots"):
        with pytest.raises(depthforge.DepthforgeError, match="--memory-budget"):
            parse_budget(bad)


@pytest.mark.parametrize("url, status, message", [
    ("/api/predict?models=nope", 404, "model 'nope' is not served here (served: a, b)"),
    ("/api/predict?models=a,b,a", 400, "models=a,b,a: pick one or two models"),
    ("/api/predict?fov=0", 400, "fov=0: a horizontal field of view must be between 0 and 180 degrees"),
    ("/api/video?model=nope", 404, "model 'nope' is not served here"),
], ids=["unknown-model", "three-models", "bad-fov", "video-unknown-model"])
def test_bad_requests_get_one_line(two_checkpoints, tmp_path, url, status, message):
    with TestClient(served(two_checkpoints, workdir=str(tmp_path / "w"))) as c:
        r = c.post(url, files={"file": ("p.png", png_bytes(20, 30), "image/png")})
        assert r.status_code == status and r.json()["detail"].startswith(message) and "\n" not in r.text
        for gone in (f"/api/job/{'0' * 32}", "/api/job/nope", f"/api/result/{'0' * 32}/points.bin"):
            assert c.get(gone).status_code == 404


def test_the_3d_points_are_bounded_and_follow_the_camera(client, monkeypatch):
    from depthforge.serve import compare
    from depthforge.viz.pointcloud import backproject, estimate_intrinsics

    c, app = client
    body = c.post("/api/predict?fov=45", files={"file": ("p.png", png_bytes(), "image/png")}).json()
    assert body["intrinsics"] == "from your 45° horizontal field of view"
    k = estimate_intrinsics(75, 101, 45)
    assert body["focal_px"] == pytest.approx(k[0, 0])
    data = c.get(body["urls"]["points.bin"]).content
    n = int(np.frombuffer(data[:4], "<u4")[0])
    xyz = np.frombuffer(data[4:4 + 12 * n], "<f4").reshape(n, 3)
    depth = np.load(io.BytesIO(c.get(body["urls"]["depth.npy"]).content))
    np.testing.assert_allclose(xyz, backproject(depth, k)[0], rtol=1e-5, atol=1e-6)  # small: every pixel
    assert len(data) == 4 + 15 * n
    # a large photo: at most VIEW_POINTS points, evenly strided
    monkeypatch.setattr(compare, "VIEW_POINTS", 500)
    pts = compare.view_points(depth, np.zeros((75, 101, 3), np.float32), k, limit=500)
    m = int(np.frombuffer(pts[:4], "<u4")[0])
    assert 0 < m <= 500 and m == len(range(0, 75, 4)) * len(range(0, 101, 4))
    # a model's own camera estimate: tests/test_export_camera.py (Depth Pro, PyTorch and exported)


class Held:
    """A predictor that waits for ``go`` before predicting: a worker kept busy."""

    def __init__(self, predictor):
        import threading

        self.predictor, self.go, self.started = predictor, threading.Event(), threading.Event()

    def __call__(self, *args, **kwargs):
        self.started.set()
        assert self.go.wait(20)
        return self.predictor(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.predictor, name)


def test_a_full_pool_answers_503_with_retry_after(predictor, tmp_path):
    import threading

    held = Held(predictor)
    with TestClient(create_app(held, workdir=str(tmp_path / "w"), workers=1, queue=0)) as c:
        limits = c.get("/health").json()["limits"]
        assert (limits["workers"], limits["queue"]) == (1, 0)
        first = {}
        thread = threading.Thread(target=lambda: first.update(r=upload(c, png_bytes(20, 30))))
        thread.start()
        assert held.started.wait(20)
        r = upload(c, png_bytes(20, 30))
        assert r.status_code == 503 and re.fullmatch(r"busy, try again in \d+ s", r.json()["detail"])
        assert int(r.headers["retry-after"]) >= 1 and r.headers["retry-after"] in r.json()["detail"]
        held.go.set()
        thread.join(20)
        assert first["r"].status_code == 200
        assert upload(c, png_bytes(20, 30)).status_code == 200  # the place was given back


def test_results_are_removed_after_the_retention(predictor, tmp_path):
    import time

    with TestClient(create_app(predictor, workdir=str(tmp_path / "w"), retention=0.5)) as c:
        assert c.get("/health").json()["limits"]["retention_s"] == 0.5
        body = upload(c, png_bytes(20, 30)).json()
        root = c.app.state.results.root
        assert (root / body["id"]).is_dir()
        deadline = time.monotonic() + 10
        while (root / body["id"]).exists():  # removed by the sweeper, with no request asking
            assert time.monotonic() < deadline, "the result outlived its retention"
            time.sleep(0.1)
        assert c.get(body["urls"]["depth.npy"]).status_code == 404


def clip_bytes(path, frames=6, size=(32, 48), fps=10.0) -> bytes:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size[::-1])
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    writer.release()
    return path.read_bytes()


def test_video_job_gives_a_playable_depth_video(predictor, tmp_path):
    import time

    import av

    app = create_app(predictor, workdir=str(tmp_path / "w"), video={"mb": 5, "seconds": 3, "frames": 20})
    with TestClient(app) as c:
        r = c.post("/api/video", files={"file": ("clip.mp4", clip_bytes(tmp_path / "c.mp4"), "video/mp4")})
        assert r.status_code == 200, r.text
        job = r.json()["job"]
        deadline = time.monotonic() + 30
        while (state := c.get(f"/api/job/{job}").json())["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert state["state"] == "done" and state["frames"] == state["total"] == 6, state
        video = c.get(state["url"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        (tmp_path / "out.mp4").write_bytes(video.content)
        with av.open(str(tmp_path / "out.mp4")) as f:
            stream = f.streams.video[0]
            assert stream.codec_context.name == "h264"  # what browsers and slide tools play
            decoded = list(f.decode(stream))
        assert len(decoded) == 6 and (decoded[0].width, decoded[0].height) == (96, 32)  # clip | depth
        assert not list(c.app.state.results.root.rglob("clip*"))  # the upload is gone once used
        # too long, not a video, empty: one line each, and the server goes on
        long = clip_bytes(tmp_path / "long.mp4", frames=40)
        for data, name, status, message in [(long, "long.mp4", 413, "long.mp4: the clip is 4.0 s and 40 frames long; "
                                             "the limits are 3 s and 20 frames"),
                                            (b"not a video", "v.mp4", 400, "v.mp4: not a video"),
                                            (b"", "e.mp4", 400, "e.mp4: empty upload")]:
            r = c.post("/api/video", files={"file": (name, data, "video/mp4")})
            assert r.status_code == status and r.json()["detail"] == message or r.json()["detail"].startswith(message)
        assert c.get("/health").json()["limits"]["video"] == {"mb": 5, "seconds": 3, "frames": 20}


def test_serve_command_takes_several_named_models(two_checkpoints, tmp_path, monkeypatch, capsys):
    from depthforge.cli import main

    started = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.update(app=app))
    a, b = two_checkpoints
    assert main(["serve", "--checkpoint", f"first={a}", "--checkpoint", b, "--memory-budget", "1",
                 "--workers", "2", "--queue", "0", "--retention", "60", "--max-video-seconds", "5"]) == 0
    app = started["app"]
    models = app.state.models
    assert models.sources == {"first": a, "b": b} and models.budget == ("models", 1)
    assert list(models.loaded) == ["first"]  # the first at start, the others when asked for
    assert (app.state.pool.workers, app.state.pool.queue, app.state.results.retention) == (2, 0, 60)
    assert not app.state.results.root.exists()  # removed when the server stops
    assert main(["serve", "--checkpoint", a, "--checkpoint", str(tmp_path / "missing.ckpt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --checkpoint missing={tmp_path / 'missing.ckpt'}: no such file"]


def test_the_3d_viewer_library_is_served_locally(client):
    c, _ = client
    page = c.get("/").text
    assert '<script src="/vendor/plotly.min.js"></script>' in page
    js = c.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and len(js.content) > 1_000_000
    assert b"scatter3d" in js.content
