"""predict_video: a tiny synthetic mp4 in, a side-by-side depth video with every frame out."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import depthforge
from depthforge import DepthforgeError
from depthforge.inference.video import is_video_source, predict_video
from conftest import make_checkpoint



@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return depthforge.load(make_checkpoint(tmp_path_factory.mktemp("video") / "model.ckpt"), device="cpu")


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
