"""KITTI Eigen split through the BTS/AdaBins lists, on tiny files in the real layout and on the real frames."""
import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from depthforge.data import SkipBad, build_dataset, collate, detect_format
from depthforge.data.kitti import KITTI_CALIB
from depthforge.errors import DepthforgeError

H, W = 360, 1230  # a little larger than the KB crop (352x1216), not symmetric
TOP, LEFT = H - 352, (W - 1216) // 2


def depth_raw(seed: int) -> np.ndarray:
    """Sparse 16-bit KITTI-style ground truth (value / 256 = metres); a row/column pattern a transpose breaks."""
    r, c = np.mgrid[0:H, 0:W]
    d = ((r * 37 + c * 3 + seed * 11) % 20000 + 256).astype(np.uint16)
    d[(r + c) % 4 != 0] = 0  # ~25 % valid
    return d


def image(seed: int) -> np.ndarray:
    r, c = np.mgrid[0:H, 0:W]
    return np.stack([r % 256, c % 256, np.full_like(r, seed)], -1).astype(np.uint8)


FRAMES = [  # (date, drive, frame, where the annotated depth lives: train/ | val/ | None)
    ("2011_09_26", "2011_09_26_drive_0002_sync", "0000000069", "train"),
    ("2011_09_26", "2011_09_26_drive_0002_sync", "0000000070", None),
    ("2011_09_28", "2011_09_28_drive_0001_sync", "0000000005", "val"),
]


@pytest.fixture
def kitti(tmp_path):
    raw, ann = tmp_path / "raw", tmp_path / "data_depth_annotated"
    lines = []
    for n, (date, drive, frame, where) in enumerate(FRAMES):
        rgb_rel = f"{date}/{drive}/image_02/data/{frame}.png"
        (raw / rgb_rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image(n)).save(raw / rgb_rel)
        if where is None:
            lines.append(f"{rgb_rel} None 721.5377")
            continue
        dep_rel = f"{drive}/proj_depth/groundtruth/image_02/{frame}.png"
        (ann / where / dep_rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(depth_raw(n)).save(ann / where / dep_rel)
        lines.append(f"{rgb_rel} {dep_rel} {KITTI_CALIB[date][0]}")
    # this date's calibration file overrides the table
    (raw / "2011_09_26" / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\nP_rect_02: 7.0e+02 0 6.1e+02 4.4e+01 0 7.01e+02 1.7e+02 0 0 0 1 0\n")
    (tmp_path / "eigen_test_files_with_gt.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "eigen_train_files_with_gt.txt").write_text(lines[0] + "\n" + lines[2] + "\n")
    return {"name": "kitti", "root": str(tmp_path), "image_root": str(raw), "depth_root": str(ann)}


def test_eigen_lists_kb_crop_and_metres(kitti):
    ds = build_dataset(kitti, split="test")
    assert len(ds) == 3 and len(build_dataset(kitti, split="train")) == 2
    s = ds[0]
    assert s["image"].shape == (3, 352, 1216) and s["depth"].shape == (1, 352, 1216)
    np.testing.assert_allclose(s["depth"][0].numpy(), depth_raw(0)[TOP:, LEFT:LEFT + 1216] / 256.0)
    np.testing.assert_array_equal((s["image"][0].numpy() * 255).round(), image(0)[TOP:, LEFT:LEFT + 1216, 0])
    assert s["valid"].float().mean() == pytest.approx(0.25, abs=0.01)
    assert s["name"] == "2011_09_26_drive_0002_sync_image_02_0000000069"
    k = s["intrinsics"].numpy()  # focal from the list, principal point from calib_cam_to_cam.txt, moved by the crop
    assert k[0, 0] == k[1, 1] == pytest.approx(721.5377)
    assert (k[0, 2], k[1, 2]) == pytest.approx((610.0 - LEFT, 170.0 - TOP))
    k3 = ds[2]["intrinsics"].numpy()  # no calib file for 2011_09_28: the published calibration
    assert (k3[0, 2], k3[1, 2]) == pytest.approx((604.0814 - LEFT, 180.5066 - TOP))
    np.testing.assert_allclose(ds[2]["depth"][0].numpy(), depth_raw(2)[TOP:, LEFT:LEFT + 1216] / 256.0)


def test_without_kb_crop_the_native_frame(kitti):
    s = build_dataset({**kitti, "kb_crop": False}, split="test")[0]
    assert s["depth"].shape == (1, H, W)
    np.testing.assert_allclose(s["depth"][0].numpy(), depth_raw(0) / 256.0)
    assert s["intrinsics"][0, 2] == pytest.approx(610.0)


def test_frames_without_ground_truth(kitti):
    ds = build_dataset(kitti, split="test")
    s = ds[1]
    assert not ds.has_gt(1) and s["depth"].shape == (1, 352, 1216) and not s["valid"].any()
    assert len(build_dataset({**kitti, "require_gt": True}, split="test")) == 2
    skip = SkipBad(ds)
    batches = [b for b in DataLoader(skip, batch_size=3, collate_fn=collate)]
    assert len(batches) == 1 and batches[0]["depth"].shape[0] == 2 and skip.num_skipped == 1


def test_detection_and_errors(kitti, tmp_path):
    assert detect_format(tmp_path) == "kitti"
    assert detect_format(tmp_path / "raw") == "kitti"  # the raw folder: dates holding *_drive_*_sync
    with pytest.raises(DepthforgeError, match="unknown split 'val'"):
        build_dataset(kitti, split="val")
    with pytest.raises(DepthforgeError, match="eigen_test_files_with_gt.txt: list file not found"):
        build_dataset({"name": "kitti", "root": str(tmp_path / "raw")}, split="test")
    (tmp_path / "data_depth_annotated" / "train" / "2011_09_26_drive_0002_sync" / "proj_depth" / "groundtruth"
     / "image_02" / "0000000069.png").unlink()
    with pytest.raises(DepthforgeError, match=r"0000000069.png: file not found"):
        build_dataset(kitti, split="test")[0]


def test_lists_may_name_any_split(kitti, tmp_path):
    val = tmp_path / "my_val.txt"
    val.write_text((tmp_path / "eigen_train_files_with_gt.txt").read_text())
    assert len(build_dataset({**kitti, "lists": {"val": str(val)}}, split="val")) == 2
    assert len(build_dataset({**kitti, "lists": str(val)}, split="val")) == 2
    with pytest.raises(DepthforgeError, match=r"eigen_val_files_with_gt.txt: list file not found"):
        build_dataset({**kitti, "lists": str(tmp_path)}, split="val")
    with pytest.raises(DepthforgeError, match=r"lists: no list for split 'val' \(given: test\)"):
        build_dataset({**kitti, "lists": {"test": str(val)}}, split="val")


def test_unknown_depth_encoding_fails_when_built(kitti):
    with pytest.raises(DepthforgeError, match=r"^kitti option 'depth_encoding': unknown depth encoding 'kiti256'; "
                                              r"known: mm, kitti256, ") as e:
        build_dataset({**kitti, "depth_encoding": "kiti256"})
    assert "\n" not in str(e.value)


def test_check_sorts_kitti_problems_by_kind(kitti, tmp_path):
    from depthforge.data.check import check_dataset

    (tmp_path / "data_depth_annotated" / "train" / "2011_09_26_drive_0002_sync" / "proj_depth" / "groundtruth"
     / "image_02" / "0000000069.png").unlink()
    rgb = tmp_path / "raw" / "2011_09_28" / "2011_09_28_drive_0001_sync" / "image_02" / "data" / "0000000005.png"
    Image.fromarray(image(2)[:300, :1000]).save(rgb)  # smaller than the KB crop
    test = check_dataset(kitti, splits=("test",), progress=False).splits[0]
    assert [(p.index, p.kind) for p in test.problems] == [(0, "missing"), (2, "wrong size")]
    assert "0000000069.png: file not found" in test.problems[0].message and test.no_gt == 1


def test_real_kitti_frames_through_the_eigen_loader(realdata, tmp_path):
    """The real 1242x375 frames (2011_09_28) laid out as KITTI raw + annotated depth, read with the KB crop."""
    raw, ann, lines = tmp_path / "raw", tmp_path / "ann", []
    for frame in ("0000000005", "0000000050", "0000000100"):
        rgb_rel = f"2011_09_28/2011_09_28_drive_0001_sync/image_02/data/{frame}.png"
        dep_rel = f"2011_09_28_drive_0001_sync/proj_depth/groundtruth/image_02/{frame}.png"
        for base, rel, src in ((raw, rgb_rel, f"rgb_{frame}.png"), (ann, dep_rel, f"depth_{frame}.png")):
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / rel).symlink_to(realdata / "kitti" / src)
        lines.append(f"{rgb_rel} {dep_rel} 707.0493")
    (tmp_path / "eigen_test_files_with_gt.txt").write_text("\n".join(lines) + "\n")
    ds = build_dataset({"name": "kitti", "root": str(tmp_path), "image_root": str(raw), "depth_root": str(ann)})
    full = build_dataset({"name": "kitti", "root": str(tmp_path), "image_root": str(raw), "depth_root": str(ann),
                          "kb_crop": False})
    top, left = 375 - 352, (1242 - 1216) // 2
    for i in range(3):
        s, f = ds[i], full[i]
        assert s["image"].shape == (3, 352, 1216) and f["image"].shape == (3, 375, 1242)
        assert 0.17 < f["valid"].float().mean() < 0.22  # README: ~19-21 % valid
        d = f["depth"][f["valid"]]
        assert 75 < float(d.max()) < 86 and float(d.min()) > 1  # metres, up to ~85 m
        assert (s["depth"] == f["depth"][:, top:, left:left + 1216]).all()
        k = s["intrinsics"].numpy()  # README: 707.0493, 707.0493, 604.0814, 180.5066 at 1242x375
        assert k[0, 0] == pytest.approx(707.0493) and (k[0, 2], k[1, 2]) == pytest.approx((604.0814 - left,
                                                                                           180.5066 - top))
