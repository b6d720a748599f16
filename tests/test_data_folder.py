"""Your own data: folders matched by name, CSV/TXT lists, every depth encoding, and the real samples."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from torch.utils.data import DataLoader

from depthforge.data import SkipBad, build_dataset, collate, detect_format
from depthforge.data.check import check_dataset
from depthforge.data.io import read_depth
from depthforge.errors import DepthforgeError

H, W = 5, 7


def rgb(seed: int = 0) -> np.ndarray:
    r, c = np.mgrid[0:H, 0:W]
    return np.stack([r * 50, c * 35, np.full((H, W), seed)], -1).astype(np.uint8)


def metres(seed: int = 0) -> np.ndarray:
    r, c = np.mgrid[0:H, 0:W]
    d = (1.0 + r * 0.5 + c * 0.125 + seed).astype(np.float32)
    d[0, -1] = 0  # invalid in the top-right corner
    return d


def save_rgb(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb(seed)).save(path)


def save_u16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, np.uint16)).save(path)


def test_rgb_and_depth_folders_with_split_and_intrinsics(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            save_rgb(tmp_path / split / "rgb" / f"{i:03d}.jpg", i)
            save_u16(tmp_path / split / "depth" / f"{i:03d}.png", np.round(metres(i) * 1000))
        (tmp_path / split / "intrinsics.txt").write_text("100 101 3 2\n")
    assert detect_format(tmp_path) == "folder"
    train, test = build_dataset(tmp_path, split="train"), build_dataset(tmp_path, split="test")
    assert len(train) == 3 and len(test) == 2
    s = test[1]
    assert s["depth"].shape == (1, H, W) and s["name"] == "001"
    np.testing.assert_allclose(s["depth"][0].numpy(), metres(1), rtol=1e-6)
    assert s["intrinsics"].tolist() == [[100, 0, 3], [0, 101, 2], [0, 0, 1]]


ENCODINGS = {  # name -> metres to the stored array
    "mm": lambda m: np.round(m * 1000).astype(np.uint16),
    "kitti256": lambda m: np.round(m * 256).astype(np.uint16),
    "tum5000": lambda m: np.round(m * 5000).astype(np.uint16),
    # SUN RGB-D: millimetres rotated left by 3 bits in the file
    "sunrgbd": lambda m: (lambda v: ((v << 3) | (v >> 13)) & 0xFFFF)(np.round(m * 1000).astype(np.uint32))
    .astype(np.uint16),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_csv_list_with_each_encoding(tmp_path, encoding):
    save_rgb(tmp_path / "imgs" / "a.png", 1)
    save_u16(tmp_path / "gt" / "a.png", ENCODINGS[encoding](metres(1)))
    save_rgb(tmp_path / "imgs" / "b.png", 2)
    (tmp_path / "pairs.csv").write_text("rgb,depth\nimgs/a.png,gt/a.png\nimgs/b.png,None\n")
    ds = build_dataset({"name": "folder", "root": str(tmp_path / "pairs.csv"), "depth_encoding": encoding})
    assert len(ds) == 2 and ds.has_gt(0) and not ds.has_gt(1)
    step = {"mm": 1e-3, "kitti256": 1 / 256, "tum5000": 2e-4, "sunrgbd": 1e-3}[encoding]
    np.testing.assert_allclose(ds[0]["depth"][0].numpy(), metres(1), atol=step / 2 + 1e-6)
    assert not ds[0]["valid"][0, 0, -1] and not ds[1]["valid"].any()
    np.testing.assert_array_equal((ds[0]["image"].permute(1, 2, 0).numpy() * 255).round(), rgb(1))


def test_txt_list_with_focal_float_files_and_intrinsics(tmp_path):
    save_rgb(tmp_path / "x" / "0.png")
    np.save(tmp_path / "x" / "0_d.npy", metres(0))
    save_rgb(tmp_path / "x" / "1.png")
    Image.fromarray(metres(3)).save(tmp_path / "x" / "1_d.tif")  # float32 TIFF: metres
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("# rgb depth focal\n../x/0.png ../x/0_d.npy 500.5\n"
                                                  "../x/1.png ../x/1_d.tif\n")
    spec = {"name": "folder", "lists": str(tmp_path / "lists"), "depth_encoding": "kitti256",
            "intrinsics": [400, 410, 3.5, 2.5]}
    ds = build_dataset(spec, split="train")
    np.testing.assert_array_equal(ds[0]["depth"][0].numpy(), metres(0))
    np.testing.assert_array_equal(ds[1]["depth"][0].numpy(), metres(3))
    assert ds[0]["intrinsics"].tolist() == [[500.5, 0, 3.5], [0, 500.5, 2.5], [0, 0, 1]]  # the line's focal
    assert ds[1]["intrinsics"].tolist() == [[400, 0, 3.5], [0, 410, 2.5], [0, 0, 1]]
    without = build_dataset({"name": "folder", "lists": {"train": str(tmp_path / "lists" / "train.txt")}},
                            split="train")
    assert without[0]["intrinsics"][0, 2] == pytest.approx((W - 1) / 2)  # focal only: centred principal point
    assert "intrinsics" not in without[1]


def test_split_list_in_root_and_flat_pairs(tmp_path):
    for i in range(2):
        save_rgb(tmp_path / f"{i:05d}_colors.png", i)
        save_u16(tmp_path / f"{i:05d}_depth.png", ENCODINGS["mm"](metres(i)))
    save_rgb(tmp_path / "rgb_extra.png", 9)  # an image without depth: no ground truth
    assert detect_format(tmp_path) == "folder"
    ds = build_dataset(tmp_path)
    assert [ds[i]["name"] for i in range(len(ds))] == ["00000_colors", "00001_colors", "rgb_extra"]
    np.testing.assert_allclose(ds[1]["depth"][0].numpy(), metres(1), atol=5e-4)
    assert not ds[2]["valid"].any()
    (tmp_path / "test.csv").write_text("00001_colors.png,00001_depth.png\n")
    assert len(build_dataset(tmp_path, split="test")) == 1  # a SPLIT.csv in root takes precedence


def test_exr_depth(tmp_path):
    import cv2

    path = tmp_path / "d.exr"
    try:
        ok = cv2.imwrite(str(path), metres(2))
    except cv2.error:
        ok = False
    if ok:
        np.testing.assert_allclose(read_depth(path, "mm"), metres(2))
        return
    path.write_bytes(b"\x76\x2f\x31\x01" + bytes(64))  # an EXR magic number: this OpenCV cannot decode it
    with pytest.raises(DepthforgeError, match=r"d.exr: unreadable .*OpenEXR") as e:
        read_depth(path, "mm")
    assert "\n" not in str(e.value)


def test_folder_errors_name_the_file(tmp_path):
    save_rgb(tmp_path / "rgb" / "a.png")
    save_u16(tmp_path / "depth" / "a.png", np.ones((H + 1, W), np.uint16))
    with pytest.raises(DepthforgeError, match=r"a.png: depth is 7x6, image is 7x5"):
        build_dataset(tmp_path)[0]
    with pytest.raises(DepthforgeError, match="^folder option 'depth_encoding': unknown depth encoding 'cm'; known"):
        build_dataset({"name": "folder", "root": str(tmp_path), "depth_encoding": "cm"})
    with pytest.raises(DepthforgeError, match=f"^{tmp_path / 'depth' / 'a.png'}: unknown depth encoding 'cm'"):
        read_depth(tmp_path / "depth" / "a.png", "cm")
    (tmp_path / "l.txt").write_text("a.png b.png 1 2\n")
    with pytest.raises(DepthforgeError, match=r"l.txt: line 1: expected 'rgb depth \[focal\]'"):
        build_dataset({"name": "folder", "root": str(tmp_path / "l.txt")})


def test_a_depth_map_missing_beside_others_is_a_missing_file(tmp_path, caplog):
    for i in range(3):
        save_rgb(tmp_path / "rgb" / f"{i}.jpg", i)
        if i != 1:
            save_u16(tmp_path / "depth" / f"{i}.png", np.round(metres(i) * 1000))
    ds = build_dataset(tmp_path)
    assert len(ds) == 3 and all(ds.has_gt(i) for i in range(3))
    with pytest.raises(DepthforgeError, match=r"depth/1\.png: file not found") as e:
        ds[1]
    assert e.value.kind == "missing"
    test = check_dataset(str(tmp_path), splits=("test",), progress=False).splits[0]
    assert [(p.index, p.kind) for p in test.problems] == [(1, "missing")] and test.no_gt == 0
    assert str(tmp_path / "depth" / "1.png") in test.problems[0].message
    skip = SkipBad(ds)
    names = [n for b in DataLoader(skip, batch_size=3, collate_fn=collate) for n in b["name"]]
    assert names == ["0", "2"] and skip.num_skipped == 1
    assert any("1.png: file not found" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_images_without_a_depth_folder_have_no_ground_truth(tmp_path):
    for i in range(2):
        save_rgb(tmp_path / "rgb" / f"{i}.png", i)
    (tmp_path / "depth").mkdir()  # empty: still no ground truth
    spec = {"name": "folder", "root": str(tmp_path)}
    ds = build_dataset(spec)
    assert not ds.has_gt(0) and not ds[0]["valid"].any()
    (tmp_path / "depth").rmdir()
    test = check_dataset(spec, splits=("test",), progress=False).splits[0]
    assert test.count == test.no_gt == 2 and not test.problems


# --- the real samples in ../shared/realdata ---------------------------------------------------------------

REAL = {  # folder: (encoding, valid share range, depth min range, depth max range) from realdata/README.md
    "nyu": ("mm", (0.67, 0.74), (0.6, 1.2), (8.0, 9.9)),
    "kitti": ("kitti256", (0.17, 0.22), (1.0, 10.0), (80.0, 86.0)),
    "tum": ("tum5000", (0.64, 0.69), (0.5, 1.5), (8.0, 11.0)),
    "sunrgbd": ("sunrgbd", (0.80, 0.84), (1.0, 1.2), (9.7, 9.95)),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_samples_through_the_folder_loader(realdata, name):
    encoding, share, dmin, dmax = REAL[name]
    assert detect_format(realdata / name) == ("frames" if name == "nyu" else "folder")  # nyu has pose.txt
    ds = build_dataset({"name": "folder", "root": str(realdata / name), "depth_encoding": encoding})
    assert len(ds) == {"nyu": 5, "kitti": 3, "tum": 2, "sunrgbd": 1}[name]
    for i in range(len(ds)):
        s = ds[i]
        d = s["depth"][s["valid"]]
        assert share[0] < float(s["valid"].float().mean()) < share[1]
        assert dmin[0] < float(d.min()) < dmin[1] and dmax[0] < float(d.max()) < dmax[1]
    # NYU over the whole sequence: 0.7-9.8 m
    if name == "nyu":
        all_d = torch.cat([ds[i]["depth"][ds[i]["valid"]] for i in range(len(ds))])
        assert 0.69 < float(all_d.min()) < 0.75 and 9.7 < float(all_d.max()) < 9.9


def test_real_tum_through_a_list_with_intrinsics(realdata, tmp_path):
    rel = os.path.relpath(realdata / "tum", tmp_path)
    (tmp_path / "tum.txt").write_text(f"{rel}/rgb_1.png {rel}/depth_1.png\n{rel}/rgb_2.png {rel}/depth_2.png\n")
    ds = build_dataset({"name": "folder", "root": str(tmp_path / "tum.txt"), "depth_encoding": "tum5000",
                        "intrinsics": [520.9, 521.0, 325.1, 249.7]})
    assert [ds[i]["name"] for i in range(2)] == ["rgb_1", "rgb_2"]
    s = ds[0]
    assert s["image"].shape == (3, 480, 640) and 0.64 < float(s["valid"].float().mean()) < 0.69
    assert s["intrinsics"][0, 0] == pytest.approx(520.9)
    mm = build_dataset({"name": "folder", "root": str(tmp_path / "tum.txt"), "depth_encoding": "mm"})[0]
    torch.testing.assert_close(mm["depth"] / 5.0, s["depth"])  # the encoding is the only difference
