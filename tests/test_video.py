"""predict_video: tiny synthetic clips in; H.264 side-by-side, 16-bit depth video and frame files out; lost sources."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

import depthforge
from depthforge import DepthforgeError
from depthforge.inference.video import VideoWriter, is_video_source, predict_video
from conftest import make_checkpoint



@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    # runs at 48x64 whatever the clip's size: the video path, not the model, is under test
    return depthforge.load(make_checkpoint(tmp_path_factory.mktemp("video") / "model.ckpt", size=(48, 64)),
                           device="cpu")


def write_clip(path, frames=10, size=(90, 124), fps=12.0):
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for i in range(frames):  # a bright box sliding over a two-tone background
        frame = np.full((h, w, 3), 60, np.uint8)
        frame[h // 2:] = 140
        frame[20:50, 5 + 8 * i: 35 + 8 * i] = (30, 200, 240)
        writer.write(frame)
    writer.release()
    return path


def read_all(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


def test_video_file_gives_side_by_side_depth_video(predictor, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    result = predict_video(predictor, clip, tmp_path / "out" / "clip_depth.mp4", progress=False)
    assert result["frames"] == 10 and result["fps"] > 0 and result["size"] == [90, 124]
    assert result["video_fps"] == pytest.approx(12.0) and result["path"] == str(tmp_path / "out" / "clip_depth.mp4")
    frames, fps = read_all(tmp_path / "out" / "clip_depth.mp4")
    assert len(frames) == 10 and frames[0].shape == (90, 2 * 124, 3) and fps == pytest.approx(12.0)
    # left half is the input frame, right half a colour map (plasma: not gray)
    source, _ = read_all(clip)
    assert np.abs(frames[3][:, :124].astype(int) - source[3].astype(int)).mean() < 12
    right = frames[3][:, 124:].astype(int)
    assert np.abs(right[..., 0] - right[..., 2]).mean() > 20
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_depth.mp4"]  # atomic


def test_max_frames_and_batches(predictor, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=7)
    result = predict_video(predictor, str(clip), tmp_path / "short.mp4", max_frames=5, progress=True, batch_size=2)
    assert result["frames"] == 5 and len(read_all(tmp_path / "short.mp4")[0]) == 5


def test_is_video_source():
    assert is_video_source("0") and is_video_source("12")
    assert is_video_source("clip.MP4") and is_video_source("a/b/c.mov") and is_video_source("x.webm")
    assert not is_video_source("photo.jpg") and not is_video_source("folder") and not is_video_source("-1")


def test_sources_that_cannot_be_opened(predictor, tmp_path):
    with pytest.raises(DepthforgeError, match="missing.mp4: file not found"):
        predict_video(predictor, tmp_path / "missing.mp4", tmp_path / "o.mp4")
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(DepthforgeError, match="notes.mp4: cannot be opened as a video") as e:
        predict_video(predictor, tmp_path / "notes.mp4", tmp_path / "o.mp4")
    assert "\n" not in str(e.value)
    with pytest.raises(DepthforgeError, match="camera 57: cannot be opened"):
        predict_video(predictor, 57, tmp_path / "o.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]  # nothing half-written


# --- videos that play everywhere, what else is written, and what a lost source keeps -----------------------

def video_facts(path):
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        facts = {"codec": s.codec_context.name, "pix_fmt": s.codec_context.format.name, "fps": float(s.average_rate),
                 "size": (s.codec_context.height, s.codec_context.width)}
        facts["frames"] = [f.to_ndarray() for f in c.decode(s)]
    return facts


def test_video_is_h264_with_its_frame_rate(predictor, tmp_path, caplog):
    clip = write_clip(tmp_path / "clip.mp4", frames=4, size=(48, 64), fps=12.5)
    with caplog.at_level("INFO", logger="depthforge.inference.video"):
        result = predict_video(predictor, clip, tmp_path / "clip_depth.mp4", progress=False)
    facts = video_facts(tmp_path / "clip_depth.mp4")
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p" and facts["fps"] == pytest.approx(12.5)
    assert facts["size"] == (48, 128) and len(facts["frames"]) == 4
    assert result["size"] == [48, 64] and result["video_fps"] == pytest.approx(12.5)
    assert "12.5 frames/s" in caplog.text and "4 frames at" in caplog.text  # the rates, said in the log


def test_odd_sizes_are_padded_to_even(tmp_path):
    writer = VideoWriter(tmp_path / "odd.mp4", 29.97)
    for i in range(3):
        writer.write(np.full((45, 61, 3), 40 * i, np.uint8))
    writer.close()
    facts = video_facts(tmp_path / "odd.mp4")
    assert facts["size"] == (46, 62) and len(facts["frames"]) == 3 and facts["fps"] == pytest.approx(29.97)


def test_depth_video_and_per_frame_files(predictor, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=4)
    out = tmp_path / "out" / "clip_depth.mp4"
    result = predict_video(predictor, clip, out, progress=False, outputs=("depth", "npy", "png"))
    mkv, frames = tmp_path / "out" / "clip_depth.mkv", tmp_path / "out" / "clip_depth_frames"
    assert result["files"] == [str(mkv), str(frames)] and not out.exists()
    assert sorted(p.name for p in frames.iterdir()) == [f"00000{i}.{e}" for i in range(4) for e in ("npy", "png")]
    facts = video_facts(mkv)
    assert facts["codec"] == "ffv1" and facts["pix_fmt"] == "gray16le" and len(facts["frames"]) == 4
    for i, coded in enumerate(facts["frames"]):  # lossless: the video holds the 16-bit PNG's millimetres
        depth = np.load(frames / f"00000{i}.npy")
        png = cv2.imread(str(frames / f"00000{i}.png"), cv2.IMREAD_UNCHANGED)
        assert depth.shape == (90, 124) and png.dtype == np.uint16
        assert np.array_equal(coded, png) and np.abs(png / 1000.0 - depth).max() <= 0.0005 + 1e-6


def test_stabilised_by_default_and_off_on_request(predictor, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=4)
    predict_video(predictor, clip, tmp_path / "s" / "c.mp4", progress=False, outputs=("npy",))
    predict_video(predictor, clip, tmp_path / "r" / "c.mp4", progress=False, outputs=("npy",), stabilize=False)
    raw = [np.load(tmp_path / "r" / "c_frames" / f"00000{i}.npy") for i in range(4)]
    stab = [np.load(tmp_path / "s" / "c_frames" / f"00000{i}.npy") for i in range(4)]
    source = read_all(clip)[0]
    assert np.allclose(raw[3], predictor(source[3][..., ::-1]), atol=1e-5)  # off: the model's own frame
    assert np.array_equal(stab[0], raw[0]) and not np.allclose(stab[3], raw[3])


class FakeCamera:
    """cv2.VideoCapture stand-in: ``frames`` frames, then what ``then`` says ("gone": read fails; "ctrl-c")."""
    frames, then = 3, "gone"

    def __init__(self, index):
        self.n = 0

    def isOpened(self):
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48, cv2.CAP_PROP_FPS: 15}.get(prop, 0)

    def read(self):
        if self.n >= self.frames:
            if self.then == "ctrl-c":
                raise KeyboardInterrupt
            return False, None
        self.n += 1
        frame = np.full((48, 64, 3), 50, np.uint8)
        frame[10:30, self.n * 4:self.n * 4 + 20] = 220
        return True, frame

    def release(self):
        pass


@pytest.mark.parametrize("then, code, said", [("gone", 1, "stopped delivering frames"), ("ctrl-c", 130, "interrupted")])
def test_a_lost_camera_keeps_a_playable_video_and_says_so(predictor, tmp_path, monkeypatch, then, code, said):
    monkeypatch.setattr(cv2, "VideoCapture", type("Cam", (FakeCamera,), {"then": then}))
    out = tmp_path / "camera0_depth.mp4"
    kept = f"camera 0: {said}.*kept the 3 frames written in .*camera0_depth.mp4"
    with pytest.raises(DepthforgeError, match=kept) as e:
        predict_video(predictor, 0, out, progress=False)
    assert getattr(e.value, "exit_code", 1) == code and "\n" not in str(e.value)
    facts = video_facts(out)
    assert len(facts["frames"]) == 3 and facts["codec"] == "h264" and facts["fps"] == pytest.approx(15)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera0_depth.mp4"]  # no temp file left


def test_cli_camera_lost_exits_non_zero_keeping_the_video(tmp_path, monkeypatch, capsys):
    from depthforge.cli import main

    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    ckpt = make_checkpoint(tmp_path / "m.ckpt", size=(48, 64))
    argv = ["predict", "0", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"), "--device", "cpu",
            "--video-out", "color", "npy"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    last = err.replace("\r", "\n").splitlines()[-1]  # after the progress bar
    assert last.startswith("error: camera 0: stopped delivering frames") and err.count("error") == 1, err
    assert len(video_facts(tmp_path / "o" / "camera0_depth.mp4")["frames"]) == 3
    assert len(list((tmp_path / "o" / "camera0_depth_frames").iterdir())) == 3


def test_videos_that_cannot_be_decoded(predictor, tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "clip.mp4", frames=10)
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # mp4v from OpenCV: its index is at the end
    with pytest.raises(DepthforgeError, match=r"cut.mp4: (cannot be opened as a video|cannot be decoded)") as e:
        predict_video(predictor, tmp_path / "cut.mp4", tmp_path / "o" / "cut_depth.mp4", progress=False)
    assert "\n" not in str(e.value) and not (tmp_path / "o").exists()
    # the header's frame count is bounded before a frame is decoded
    monkeypatch.setattr("depthforge.inference.video.MAX_FRAMES", 8)
    with pytest.raises(DepthforgeError, match="clip.mp4: the header says 10 frames, more than 8; use --max-frames"):
        predict_video(predictor, clip, tmp_path / "o" / "clip_depth.mp4", progress=False)
    short = predict_video(predictor, clip, tmp_path / "o" / "clip_depth.mp4", progress=False, max_frames=3)
    assert short["frames"] == 3


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed")
def test_depth_video_plays_in_chromium(predictor, tmp_path):
    """The written mp4 in a <video>: Chromium decodes it (readyState reaches HAVE_ENOUGH_DATA, the size is the
    side-by-side panel's) and plays it (currentTime advances)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    clip = write_clip(tmp_path / "clip.mp4", frames=12, size=(48, 64), fps=12.0)
    predict_video(predictor, clip, tmp_path / "clip_depth.mp4", progress=False)
    (tmp_path / "page.html").write_text('<video id="v" src="clip_depth.mp4" muted playsinline></video>')
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page()
            page.goto((tmp_path / "page.html").as_uri())
            state = "() => { const v = document.getElementById('v'); return v.readyState >= 4 || v.error !== null; }"
            page.wait_for_function(state, timeout=15_000)
            facts = page.evaluate("() => { const v = document.getElementById('v'); return "
                                  "[v.readyState, v.error && v.error.code, v.videoWidth, v.videoHeight, v.duration]; }")
            assert facts[:4] == [4, None, 128, 48] and facts[4] == pytest.approx(1.0, abs=0.1), facts
            page.evaluate("document.getElementById('v').play()")
            page.wait_for_function("document.getElementById('v').currentTime > 0.25", timeout=15_000)
        finally:
            browser.close()


def test_a_file_damaged_mid_way_keeps_the_frames_before(predictor, tmp_path):
    """An H.264 file cut in the middle (its index is at the front): the frames before the cut are written and
    kept, playable, and the run fails in one line saying where decoding stopped."""
    writer = VideoWriter(tmp_path / "full.mp4", 10)
    rng = np.random.default_rng(0)
    for _ in range(12):  # noise: every frame is large, so the cut falls between frames, not in the index
        writer.write((rng.random((48, 64, 3)) * 255).astype(np.uint8))
    writer.close()
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    out = tmp_path / "o" / "cut_depth.mp4"
    with pytest.raises(DepthforgeError, match=r"cut.mp4: cannot be decoded after frame (\d+) \(.*\); kept the \1 "
                                              r"frames written in .*cut_depth.mp4$") as e:
        predict_video(predictor, tmp_path / "cut.mp4", out, progress=False)
    kept = int(str(e.value).split("after frame ")[1].split()[0])
    assert 0 < kept < 12 and len(video_facts(out)["frames"]) == kept
