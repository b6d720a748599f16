"""Readers of RGB-D video with camera poses: TUM RGB-D / Bonn and a folder of frames with a pose file. Each test
writes the native layout from a clip of the synthetic video suite (exact depth and poses) and reads it back; the
five real NYU frames run as a real sequence."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from depthforge.data import build_dataset, detect_format
from depthforge.data.poses import associate, pose_line, read_poses
from depthforge.data.synth import SynthVideo
from depthforge.errors import DepthforgeError
from depthforge.evaluation.metrics import get_protocol
from depthforge.evaluation.sequences import per_sequence
from depthforge.evaluation.temporal import tae

SIZE = (48, 64)
NYU_K = [518.8579, 519.4696, 325.5824, 253.7362]


def synth_clip(frames=5):
    data = SynthVideo(n=1, size=SIZE, frames=frames, moving=False)
    return [data[i] for i in range(frames)]


def save_rgb(path, sample):
    Image.fromarray(np.round(sample["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)


def save_depth(path, sample, scale):
    Image.fromarray(np.round(sample["depth"][0].numpy() * scale).astype(np.uint16)).save(path)


def write_tum(folder, samples):
    """A TUM RGB-D sequence: colour at 30 Hz, depth 5 ms later, poses at 100 Hz (the nearest one is the frame's),
    plus a depth frame with no colour partner and a last colour frame after the poses end."""
    (folder / "rgb").mkdir(parents=True)
    (folder / "depth").mkdir()
    rgb, depth, gt = ["# color images", "# timestamp filename"], ["# depth maps"], ["# timestamp tx ty tz qx qy qz qw"]
    for t, s in enumerate(samples):
        stamp = 1305031102.0 + t / 30
        save_rgb(folder / "rgb" / f"{stamp:.6f}.png", s)
        save_depth(folder / "depth" / f"{stamp + 0.005:.6f}.png", s, 5000)
        rgb.append(f"{stamp:.6f} rgb/{stamp:.6f}.png")
        depth.append(f"{stamp + 0.005:.6f} depth/{stamp + 0.005:.6f}.png")
        for off, pose in ((-0.01, np.eye(4)), (0.0, s["pose"].numpy()), (0.01, np.eye(4))):  # decoys around it
            gt.append(f"{stamp + off + 0.0005:.4f} " + pose_line(pose))
    depth.append(f"{1305031102.0 - 1:.6f} depth/none.png")  # no colour frame within 0.02 s
    stamp = 1305031102.0 + len(samples) / 30 + 1
    save_rgb(folder / "rgb" / "late.png", samples[0])
    rgb.append(f"{stamp:.6f} rgb/late.png")
    depth.append(f"{stamp:.6f} depth/late.png")  # associated, but no pose: left out
    for name, lines in (("rgb.txt", rgb), ("depth.txt", depth), ("groundtruth.txt", gt)):
        (folder / name).write_text("\n".join(lines) + "\n")


def test_associate_takes_the_closest_pairs_first_as_tums_script():
    assert associate([0.0, 0.033, 0.066], [0.031, 0.004, 0.07, 0.5]) == [(0, 1), (1, 0), (2, 2)]
    assert associate([0.0, 0.01], [0.009]) == [(1, 0)]  # one stamp is used once, by the closer one


def test_tum_sequence_reads_back_with_its_poses(tmp_path):
    samples = synth_clip()
    root = tmp_path / "rgbd_dataset_freiburg2_desk"
    write_tum(root, samples)
    assert detect_format(root) == "tum" and detect_format(tmp_path) == "tum"  # a sequence, or a folder of them
    data = build_dataset(str(root))
    assert list(data.sequences().values()) == [[0, 1, 2, 3, 4]] and len(data) == 5
    for s, got in zip(samples, (data[i] for i in range(5))):
        np.testing.assert_allclose(got["depth"].numpy(), s["depth"].numpy(), atol=1 / 5000)  # ÷ 5000
        np.testing.assert_allclose(got["pose"].numpy(), s["pose"].numpy(), atol=1e-5)  # not a decoy
        np.testing.assert_allclose(got["intrinsics"][0, 0], 520.9)  # freiburg2, by the folder's name
    gts = [data[i]["depth"][0].numpy().astype(float) for i in range(5)]
    assert tae(gts, [s["intrinsics"].numpy() for s in samples], [data[i]["pose"].numpy() for i in range(5)]) < 0.6
    # eval --data on the sequence: one clip, TAE with the file's poses, flicker from optical flow
    from conftest import make_checkpoint
    from depthforge.evaluation.evaluate import evaluate

    res = evaluate(make_checkpoint(tmp_path / "m.ckpt", size=SIZE), data=str(root), out=tmp_path / "ev",
                   progress=False, pictures=False)
    assert res["clips"] == 1 and res["model"]["frames"] == 5 and res["per_clip"][0]["clip"] == root.name
    assert np.isfinite(res["model"]["tae"]) and np.isfinite(res["model"]["flicker"])


def test_frames_with_a_pose_file_in_number_order(tmp_path):
    samples = synth_clip(11)
    for t, s in enumerate(samples, 1):  # rgb_1 ... rgb_11: rgb_10 comes after rgb_9
        save_rgb(tmp_path / f"rgb_{t}.png", s)
        save_depth(tmp_path / f"depth_{t}.png", s, 1000)
    (tmp_path / "pose.txt").write_text("\n".join(pose_line(s["pose"]) for s in samples) + "\n")
    k = samples[0]["intrinsics"].numpy()
    (tmp_path / "intrinsics.txt").write_text(f"{k[0, 0]} {k[1, 1]} {k[0, 2]} {k[1, 2]}\n")
    assert detect_format(tmp_path) == "frames"
    data = build_dataset(str(tmp_path))
    assert [data[i]["name"] for i in (0, 8, 9, 10)] == ["rgb_1", "rgb_9", "rgb_10", "rgb_11"]
    for i in (0, 9):
        np.testing.assert_allclose(data[i]["pose"].numpy(), samples[i]["pose"].numpy(), atol=1e-5)
    gts = [data[i]["depth"][0].numpy().astype(float) for i in range(11)]
    assert tae(gts, [data[i]["intrinsics"].numpy() for i in range(11)], [data[i]["pose"].numpy() for i in range(11)]) \
        < 0.6


def test_a_clip_written_by_data_synth_reads_back_as_frames_with_poses(tmp_path):
    """``depthforge data synth --video`` writes the video suite's clip as a frames folder (read back: the same
    8-bit images, depth to the millimetre, poses and intrinsics as the suite's, no moving ball) and as an H.264
    video that decodes to as many frames at the asked rate."""
    import av

    from depthforge.cli import main

    out = tmp_path / "clips"
    assert main(["data", "synth", "--video", "--out", str(out), "--frames", "4", "--size", *map(str, SIZE),
                 "--fps", "12"]) == 0
    assert detect_format(out / "clip_0000") == "frames"
    data, suite = build_dataset(str(out / "clip_0000")), synth_clip(4)
    assert len(data) == 4
    for got, want in zip(data, suite):
        np.testing.assert_allclose(got["pose"].numpy(), want["pose"].numpy(), atol=1e-6)
        np.testing.assert_allclose(got["intrinsics"].numpy(), want["intrinsics"].numpy(), atol=1e-4)
        np.testing.assert_allclose(got["image"].numpy(), want["image"].numpy(), atol=1e-6)
        assert (got["depth"] - want["depth"]).abs().max().item() <= 0.0005 + 1e-6  # millimetres
    with av.open(str(out / "clip_0000.mp4")) as video:
        stream = video.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(stream)]
        assert float(stream.average_rate) == 12 and len(frames) == 4 and frames[0].shape == (*SIZE, 3)
    assert not (tmp_path / "clips" / "clip_0001").exists()
    # refused before anything is written
    for bad in (["--frames", "1"], ["--fps", "0"], ["--fps", "inf"], ["--holes"], ["--size", "4", "4"]):
        assert main(["data", "synth", "--video", "--out", str(tmp_path / "bad"), *bad]) == 1, bad
    assert main(["data", "synth", "--out", str(tmp_path / "bad"), "--frames", "8"]) == 1  # --frames is for clips
    assert not (tmp_path / "bad").exists()


def frames_folder(tmp_path, n=3):
    tmp_path.mkdir()
    samples = synth_clip(n)
    for t, s in enumerate(samples, 1):
        save_rgb(tmp_path / f"rgb_{t}.png", s)
        save_depth(tmp_path / f"depth_{t}.png", s, 1000)
    (tmp_path / "pose.txt").write_text("\n".join(pose_line(s["pose"]) for s in samples) + "\n")
    return tmp_path


def test_bad_frames_and_poses_give_one_line(tmp_path, capsys):
    from conftest import make_checkpoint
    from depthforge.cli import main
    from depthforge.evaluation.evaluate import evaluate

    ckpt = make_checkpoint(tmp_path / "m.ckpt", size=SIZE)
    root = frames_folder(tmp_path / "clip")
    (root / "depth_2.png").write_bytes(b"not a png")  # unreadable: skipped and counted
    evaluate(ckpt, data=str(root), out=tmp_path / "ev", progress=False, pictures=False)
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["model"]["skipped"] == 1 and saved["model"]["frames"] == 2
    assert math.isnan(saved["model"]["tae"])  # no intrinsics here: no TAE, and flicker from optical flow
    lines = (root / "pose.txt").read_text().splitlines()
    for text, message in (("\n".join(lines[:2]), "2 poses for 3 frames"),
                          ("\n".join(lines[:1] + ["0 0 zero 0 0 0 1"] + lines[2:]), "pose.txt:2: pose does not parse"),
                          ("\n".join(lines[:2] + ["0 0 0 0 0 0"]), "expected 7 numbers"),
                          ("\n".join(lines[:2] + ["0 0 0 0 0 0 0"]), "quaternion of zero length")):
        (root / "pose.txt").write_text(text + "\n")
        capsys.readouterr()
        assert main(["eval", "--checkpoint", str(ckpt), "--data", str(root), "--out", str(tmp_path / "x"),
                     "--no-progress"]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and err.startswith("error: "), err
    (root / "pose.txt").write_text("\n".join(lines) + "\n")
    for t in (1, 3):
        (root / f"depth_{t}.png").unlink()  # no frame left with ground truth
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(root), "--out", str(tmp_path / "y"),
                 "--no-progress"]) == 1
    assert "no clip with ground truth" in capsys.readouterr().err


def test_tum_bad_lists_give_one_line(tmp_path):
    root = tmp_path / "seq"
    write_tum(root, synth_clip(2))
    gt = (root / "groundtruth.txt").read_text().splitlines()
    (root / "groundtruth.txt").write_text("\n".join(gt[:2] + [gt[2].replace(" ", " x", 1)] + gt[3:]) + "\n")
    with pytest.raises(DepthforgeError, match="groundtruth.txt:3: expected a timestamp|groundtruth.txt:3: pose"):
        build_dataset(str(root))
    (root / "rgb.txt").write_text("1305031102.0\n")
    with pytest.raises(DepthforgeError, match="rgb.txt:1: expected 2 fields"):
        build_dataset(str(root))


class Constant:
    output = "relative"

    def predict_tensor(self, images):
        import torch

        return torch.ones(images.shape[0], 1, *images.shape[-2:])


def test_the_real_nyu_frames_as_a_sequence(realdata):
    root = realdata / "nyu"
    assert detect_format(root) == "frames"
    data = build_dataset({"name": "frames", "root": str(root), "intrinsics": NYU_K})
    assert len(read_poses(root / "pose.txt")) == 5 and list(data.sequences().values()) == [[0, 1, 2, 3, 4]]
    row, = per_sequence(Constant(), data, get_protocol("nyu"), "median", progress=False)
    # the Kinect's own depth, reprojected with these poses, disagrees by a few % (noise, holes, 0.3-0.6 m steps)
    assert 1.0 < row["tae_gt"] < 8.0
    assert row["frames"] == 5 and row["tae"] > 0 and 0.2 < row["abs_rel"] < 1
