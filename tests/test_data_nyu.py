"""NYU-Depth v2 loaders on tiny files written in each real format (asymmetric H != W patterns, so a transposed
read fails)."""
import pickle
import zipfile
from io import BytesIO

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch.utils.data import DataLoader

from depthforge.data import build_dataset, detect_format
from depthforge.data.nyu import detect_layout
from depthforge.data.sample import NYU_INTRINSICS_640
from depthforge.errors import DepthforgeError

H, W = 6, 8


def rgb_pattern(seed: int) -> np.ndarray:
    """Red grows down the rows, green along the columns: smooth enough for JPEG, wrong if transposed."""
    r, c = np.mgrid[0:H, 0:W]
    return np.stack([r * 40 + seed % 7, c * 30 + 10, np.full((H, W), 5 * seed % 250)], -1).astype(np.uint8)


def png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}))
    return buf.getvalue()


def depth8(seed: int) -> np.ndarray:
    """DenseDepth training depth: 8 bits, 255 = 10 m."""
    return (np.arange(H * W).reshape(H, W) * 5 + seed + 1).astype(np.uint8)


def depth16(seed: int) -> np.ndarray:
    """Millimetres, 0 (invalid) in the top-left corner."""
    d = (np.arange(H * W).reshape(H, W) * 97 + 500 + seed).astype(np.uint16)
    d[0, 0] = 0
    return d


@pytest.fixture
def densedepth_zip(tmp_path):
    """DenseDepth's nyu_data.zip: CSVs under data/, 8-bit JPEG/PNG training pairs, 16-bit test pairs."""
    train = [("living_room_0038_out", 37), ("living_room_0038_out", 38), ("kitchen_0003_out", 1)]
    members, train_rows, test_rows = {}, [], []
    for n, (scene, k) in enumerate(train):
        rgb, dep = f"data/nyu2_train/{scene}/{k}.jpg", f"data/nyu2_train/{scene}/{k}.png"
        members[rgb], members[dep] = png(rgb_pattern(n), "JPEG"), png(depth8(n))
        train_rows.append(f"{rgb},{dep}")
    for n in range(2):
        rgb, dep = f"data/nyu2_test/{n:05d}_colors.png", f"data/nyu2_test/{n:05d}_depth.png"
        members[rgb], members[dep] = png(rgb_pattern(100 + n)), png(depth16(n))
        test_rows.append(f"{rgb},{dep}")
    members["data/nyu2_train.csv"] = ("\n".join(train_rows) + "\n").encode()
    members["data/nyu2_test.csv"] = ("\r\n".join(test_rows)).encode()  # Windows line ends, no final newline
    path = tmp_path / "nyu_data.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def check_densedepth(ds_train, ds_test):
    assert len(ds_train) == 3 and len(ds_test) == 2
    s = ds_train[0]
    assert s["image"].shape == (3, H, W) and s["depth"].shape == (1, H, W)
    np.testing.assert_allclose(s["depth"][0].numpy(), depth8(0) * (10.0 / 255.0), rtol=1e-6)
    assert np.abs(s["image"].permute(1, 2, 0).numpy() * 255 - rgb_pattern(0)).max() < 4  # JPEG, quality 100
    assert s["name"] == "living_room_0038_out_37"
    t = ds_test[1]
    np.testing.assert_allclose(t["depth"][0].numpy(), depth16(1) / 1000.0, rtol=1e-6)
    np.testing.assert_array_equal((t["image"].permute(1, 2, 0).numpy() * 255).round(), rgb_pattern(101))
    assert not t["valid"][0, 0, 0] and t["valid"][0, 0, 1]
    assert torch.equal(t["intrinsics"], torch.from_numpy(NYU_INTRINSICS_640))
    assert t["name"] == "00001_colors"


def test_densedepth_reads_inside_the_zip(densedepth_zip):
    assert detect_format(densedepth_zip) == "nyu" and detect_layout(densedepth_zip) == "densedepth"
    check_densedepth(build_dataset(densedepth_zip, split="train"), build_dataset(densedepth_zip, split="test"))
    # a folder holding the zip is found too
    assert len(build_dataset({"name": "nyu", "root": densedepth_zip.parent}, split="test")) == 2


def test_densedepth_extracted_folder(densedepth_zip, tmp_path):
    out = tmp_path / "extracted"
    with zipfile.ZipFile(densedepth_zip) as z:
        z.extractall(out)
    densedepth_zip.unlink()
    assert detect_format(out) == "nyu"
    spec = {"name": "nyu", "root": str(out), "layout": "densedepth"}
    check_densedepth(build_dataset(spec, split="train"), build_dataset(spec, split="test"))
    # root may also be the data/ folder itself
    assert len(build_dataset({"name": "nyu", "root": str(out / "data")}, split="train")) == 3


def test_densedepth_zip_dataset_works_in_dataloader_workers(densedepth_zip):
    ds = build_dataset(densedepth_zip, split="train")
    ds[0]  # the parent opens the zip before the workers fork; they must not share its file offset
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[2]["depth"], ds[2]["depth"])
    batches = list(DataLoader(ds, batch_size=1, num_workers=2))
    assert [b["name"][0] for b in batches] == [ds[i]["name"] for i in range(3)]
    for i, b in enumerate(batches):
        assert torch.equal(b["depth"][0], ds[i]["depth"])


def test_densedepth_zip_is_opened_once_per_step(densedepth_zip, monkeypatch):
    """Detecting the layout, finding the CSVs and the reader's handle: one open each, not one per probe."""
    opened = []
    real_init = zipfile.ZipFile.__init__

    def counting(self, file, *args, **kwargs):
        opened.append(str(file))
        real_init(self, file, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "__init__", counting)
    build_dataset(densedepth_zip, split="test")  # detect_format, then the dataset
    assert opened == [str(densedepth_zip)] * 3
    opened.clear()
    build_dataset({"name": "nyu", "root": str(densedepth_zip)}, split="test")
    assert len(opened) == 2


def test_densedepth_depth_encoding_and_layout_options(densedepth_zip):
    fixed = build_dataset({"name": "nyu", "root": str(densedepth_zip), "depth_encoding": "tum5000"})
    np.testing.assert_allclose(fixed[1]["depth"][0].numpy(), depth16(1) / 5000.0, rtol=1e-6)
    with pytest.raises(DepthforgeError, match=r"^nyu option 'depth_encoding' \(auto or a fixed one\): unknown "
                                              r"depth encoding 'milimetres'; known: mm, "):
        build_dataset({"name": "nyu", "root": str(densedepth_zip), "depth_encoding": "milimetres"})
    with pytest.raises(DepthforgeError, match="not an NYU labelled .mat"):
        build_dataset({"name": "nyu", "root": str(densedepth_zip), "layout": "mat"})
    with pytest.raises(DepthforgeError, match="nyu: unknown layout 'zip'"):
        build_dataset({"name": "nyu", "root": str(densedepth_zip), "layout": "zip"})


def test_densedepth_missing_member_is_one_line(tmp_path):
    path = tmp_path / "nyu_data.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data/nyu2_test.csv", "data/nyu2_test/0_colors.png,data/nyu2_test/0_depth.png\n")
    ds = build_dataset(path, split="test")
    with pytest.raises(DepthforgeError, match=r"nyu_data.zip!data/nyu2_test/0_colors.png: file not found") as e:
        ds[0]
    assert "\n" not in str(e.value) and e.value.kind == "missing"


# --- the labelled .mat ----------------------------------------------------------------------------------

N = 5


def frames() -> tuple[np.ndarray, np.ndarray]:
    """(images [N,H,W,3] uint8, depths [N,H,W] metres) in the orientation the loader must return."""
    images = np.stack([rgb_pattern(10 + n) for n in range(N)])
    depths = np.stack([(np.arange(H * W).reshape(H, W) + 1) * 0.1 + n for n in range(N)]).astype(np.float32)
    depths[:, -1, 0] = 0  # a hole in the bottom-left corner
    return images, depths


def write_labeled_mat(path) -> None:
    """MATLAB v7.3 as h5py sees it: images [N,3,W,H], depths [N,W,H] (MATLAB's column-major HxWx3xN)."""
    images, depths = frames()
    with h5py.File(path, "w", userblock_size=512) as f:  # MATLAB writes a 512-byte header before the HDF5 data
        f["images"] = images.transpose(0, 3, 2, 1)
        f["depths"] = depths.transpose(0, 2, 1)
        f["rawDepths"] = depths.transpose(0, 2, 1) * 0.5


TRAIN_1BASED, TEST_1BASED = [1, 3, 4], [2, 5]


@pytest.fixture(params=["scipy-v5", "hdf5-v7.3"])
def labeled(tmp_path, request):
    write_labeled_mat(tmp_path / "nyu_depth_v2_labeled.mat")
    if request.param == "scipy-v5":
        scipy.io.savemat(tmp_path / "splits.mat", {"trainNdxs": np.array(TRAIN_1BASED, float)[:, None],
                                                   "testNdxs": np.array(TEST_1BASED, float)[:, None]})
    else:
        with h5py.File(tmp_path / "splits.mat", "w", userblock_size=512) as f:
            f["trainNdxs"] = np.array(TRAIN_1BASED, float)[None]
            f["testNdxs"] = np.array(TEST_1BASED, float)[None]
    return tmp_path


def test_labeled_mat_returns_hxw_frames_of_each_split(labeled):
    images, depths = frames()
    mat = labeled / "nyu_depth_v2_labeled.mat"
    assert detect_format(mat) == "nyu" and detect_format(labeled) == "nyu" and detect_layout(mat) == "mat"
    train, test = build_dataset(mat, split="train"), build_dataset(labeled, split="test")
    assert len(train) == 3 and len(test) == 2
    for ds, idx in ((train, TRAIN_1BASED), (test, TEST_1BASED)):
        for i, j in enumerate(idx):
            s = ds[i]
            assert s["image"].shape == (3, H, W) and s["depth"].shape == (1, H, W)
            np.testing.assert_array_equal((s["image"].permute(1, 2, 0).numpy() * 255).round(), images[j - 1])
            np.testing.assert_allclose(s["depth"][0].numpy(), depths[j - 1])
            assert s["name"] == f"{j:04d}" and not s["valid"][0, -1, 0]
            assert torch.equal(s["intrinsics"], torch.from_numpy(NYU_INTRINSICS_640))


def test_labeled_mat_indices_raw_depths_and_workers(labeled):
    _, depths = frames()
    spec = {"name": "nyu", "root": str(labeled), "indices": [4, 0], "depth_key": "rawDepths"}
    ds = build_dataset(spec)
    assert len(ds) == 2
    np.testing.assert_allclose(ds[0]["depth"][0].numpy(), depths[4] * 0.5)
    assert len(build_dataset({"name": "nyu", "root": str(labeled)}, split="all")) == N
    assert len(pickle.dumps(ds)) < 2000  # paths and indices only: no arrays, no open HDF5 handle
    batches = list(DataLoader(ds, batch_size=1, num_workers=2))
    np.testing.assert_allclose(batches[1]["depth"][0, 0].numpy(), depths[0] * 0.5)


def test_labeled_mat_non_finite_depth_is_invalid(tmp_path):
    images, depths = frames()
    depths[0, 1, 2], depths[0, 2, 3] = np.nan, -np.inf
    with h5py.File(tmp_path / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = images.transpose(0, 3, 2, 1)
        f["depths"] = depths.transpose(0, 2, 1)
    s = build_dataset({"name": "nyu", "root": str(tmp_path), "indices": [0]})[0]
    assert s["depth"][0, 1, 2] == 0 and s["depth"][0, 2, 3] == 0 and not s["valid"][0, 1, 2]
    assert s["depth"][0, 1, 3] == pytest.approx(depths[0, 1, 3])


def test_labeled_mat_errors_are_one_line(tmp_path):
    write_labeled_mat(tmp_path / "nyu_depth_v2_labeled.mat")
    with pytest.raises(DepthforgeError, match="splits.mat: splits file not found"):
        build_dataset(tmp_path, split="train")
    with pytest.raises(DepthforgeError, match="frame index 9 out of range"):
        build_dataset({"name": "nyu", "root": str(tmp_path), "indices": [9]})
    (tmp_path / "splits.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(DepthforgeError, match="not a readable splits.mat") as e:
        build_dataset(tmp_path, split="test")
    assert "\n" not in str(e.value)


# --- BTS / AdaBins --------------------------------------------------------------------------------------

@pytest.fixture
def bts(tmp_path):
    root = tmp_path / "nyu_depth_v2"
    lists = tmp_path / "train_test_inputs"
    lists.mkdir()
    train_lines, test_lines = [], []
    for n, scene in enumerate(["kitchen_0028b", "bedroom_0004"]):
        d = root / "sync" / scene
        d.mkdir(parents=True)
        (d / f"rgb_{n:05d}.jpg").write_bytes(png(rgb_pattern(n), "JPEG"))
        (d / f"sync_depth_{n:05d}.png").write_bytes(png(depth16(n)))
        train_lines.append(f"/{scene}/rgb_{n:05d}.jpg /{scene}/sync_depth_{n:05d}.png 518.8579")
    d = root / "official_splits" / "test" / "bathroom"
    d.mkdir(parents=True)
    (d / "rgb_00045.jpg").write_bytes(png(rgb_pattern(7), "JPEG"))
    (d / "sync_depth_00045.png").write_bytes(png(depth16(7)))
    test_lines.append("bathroom/rgb_00045.jpg bathroom/sync_depth_00045.png 500.0")
    (lists / "nyudepthv2_train_files_with_gt.txt").write_text("\n".join(train_lines) + "\n")
    (lists / "nyudepthv2_test_files_with_gt.txt").write_text("\n".join(test_lines) + "\n")
    return root


def test_bts_layout_lists_and_focal(bts):
    assert detect_format(bts) == "nyu" and detect_layout(bts) == "bts"
    train, test = build_dataset(bts, split="train"), build_dataset(bts, split="test")
    assert len(train) == 2 and len(test) == 1
    s = train[1]
    np.testing.assert_allclose(s["depth"][0].numpy(), depth16(1) / 1000.0, rtol=1e-6)
    assert s["name"] == "bedroom_0004_rgb_00001" and s["intrinsics"][0, 0] == pytest.approx(518.8579)
    t = test[0]
    np.testing.assert_allclose(t["depth"][0].numpy(), depth16(7) / 1000.0, rtol=1e-6)
    k = t["intrinsics"].numpy()
    assert k[0, 0] == k[1, 1] == 500.0
    assert (k[0, 2], k[1, 2]) == pytest.approx((NYU_INTRINSICS_640[0, 2], NYU_INTRINSICS_640[1, 2]))


def test_bts_list_given_as_a_file(bts, tmp_path):
    lst = tmp_path / "train_test_inputs" / "nyudepthv2_test_files_with_gt.txt"
    ds = build_dataset({"name": "nyu", "root": str(bts), "layout": "bts", "lists": str(lst)}, split="test")
    assert len(ds) == 1
    with pytest.raises(DepthforgeError, match="unknown split 'val'"):
        build_dataset({"name": "nyu", "root": str(bts)}, split="val")


def test_bts_depth_encoding_option(bts):
    s = build_dataset({"name": "nyu", "root": str(bts), "depth_encoding": "tum5000"}, split="test")[0]
    np.testing.assert_allclose(s["depth"][0].numpy(), depth16(7) / 5000.0, rtol=1e-6)
