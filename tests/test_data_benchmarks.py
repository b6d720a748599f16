"""The zero-shot benchmark readers on tiny fixtures written in each set's native layout (file names, dtypes,
units, folders), checked against hand computations."""
import json
import struct

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from depthforge.data import DATASETS, build_dataset, detect_format, SkipBad
from depthforge.errors import DepthforgeError

H, W = 6, 8


def rgb(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save_png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")  # lossless whatever the name (ETH3D names PNG bytes .JPG here)


# --- ETH3D --------------------------------------------------------------------------------------------------

def write_eth3d(root, scene="office", names=("DSC_0219", "DSC_0220")):
    depths = []
    for i, name in enumerate(names):
        save_png(root / "rgb" / scene / "images" / "dslr_images" / f"{name}.JPG", rgb(i))  # PNG bytes: Pillow sniffs
        d = np.full((H, W), 2.5 + i, np.float32)
        d[0, 0] = np.inf  # no laser return
        path = root / "depth" / f"{scene}_dslr_depth" / scene / "ground_truth_depth" / "dslr_images" / f"{name}.JPG"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(d.astype("<f4").tobytes())
        depths.append(d)
    return depths


def test_eth3d_raw_float_depth(tmp_path):
    root = tmp_path / "eth3d"
    depths = write_eth3d(root)
    assert detect_format(root) == "eth3d"
    ds = build_dataset({"name": "eth3d", "root": str(root)})
    assert len(ds) == 2
    s = ds[1]
    assert s["name"] == "office_DSC_0220" and s["image"].shape == (3, H, W)
    assert s["depth"][0, 1, 2].item() == 3.5 and not s["valid"][0, 0, 0] and s["valid"].sum() == H * W - 1
    assert torch.equal(s["image"], torch.from_numpy(rgb(1)).permute(2, 0, 1).float() / 255)
    assert DATASETS.info["eth3d"]["protocols"]["eth3d"] == ("none", 1e-5, float("inf"))
    # ETH3D's own downloads side by side: <scene>/images/dslr_images_undistorted + <scene>/ground_truth_depth
    official = tmp_path / "official"
    save_png(official / "pipes" / "images" / "dslr_images_undistorted" / "DSC_0634.JPG", rgb(3))
    (official / "pipes" / "ground_truth_depth" / "dslr_images").mkdir(parents=True)
    (official / "pipes" / "ground_truth_depth" / "dslr_images" / "DSC_0634.JPG").write_bytes(depths[0].tobytes())
    assert detect_format(official) == "eth3d"
    s = build_dataset(str(official))[0]
    assert s["name"] == "pipes_DSC_0634" and s["depth"][0, 5, 7].item() == 2.5 and "intrinsics" not in s
    # its COLMAP calibration: a camera turned 90 degrees about z (q = (cos 45, 0, 0, sin 45)), t = (1, 2, 3)
    calib = official / "pipes" / "dslr_calibration_undistorted"
    calib.mkdir()
    (calib / "cameras.txt").write_text("# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n0 PINHOLE 8 6 5.0 5.5 4.0 3.0\n")
    c = np.sqrt(0.5)
    (calib / "images.txt").write_text(f"# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                                      f"7 {c} 0 0 {c} 1 2 3 0 dslr_images_undistorted/DSC_0634.JPG\n"
                                      "1.0 2.0 -1 3.0 4.0 12\n")
    s = build_dataset(str(official))[0]
    assert np.allclose(s["intrinsics"].numpy(), [[5, 0, 3.5], [0, 5.5, 2.5], [0, 0, 1]])  # centres at +0.5 in COLMAP
    rot = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # world-to-camera
    assert np.allclose(s["pose"][:3, :3].numpy(), rot.T, atol=1e-6)
    assert np.allclose(s["pose"][:3, 3].numpy(), -rot.T @ [1, 2, 3], atol=1e-6)
    # a depth raster whose size does not match its photo: one line naming it, before anything is decoded
    bad = root / "depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_0219.JPG"
    bad.write_bytes(depths[0][:-1].astype("<f4").tobytes())
    with pytest.raises(DepthforgeError, match=r"DSC_0219\.JPG: 160 bytes, expected 192 for a 8x6 float32") as e:
        ds[0]
    assert e.value.kind == "wrong size"


# --- DIODE --------------------------------------------------------------------------------------------------

def write_diode(root, kinds=("indoors", "outdoor")):
    out = {}
    for i, kind in enumerate(kinds):
        folder = root / "val" / kind / f"scene_0001{i}" / f"scan_0018{i}"
        stem = f"0001{i}_0018{i}_{kind}_000_010"
        save_png(folder / f"{stem}.png", rgb(i))
        depth = np.full((H, W, 1), 1.0 + 10 * i, np.float32)  # DIODE stores (H,W,1)
        mask = np.ones((H, W), np.float32)
        mask[2, 3] = 0
        np.save(folder / f"{stem}_depth.npy", depth)
        np.save(folder / f"{stem}_depth_mask.npy", mask)
        out[kind] = stem
    return out


def test_diode_mask_and_scenes(tmp_path):
    root = tmp_path / "diode"
    stems = write_diode(root)
    assert detect_format(root) == "diode"
    ds = build_dataset({"name": "diode", "root": str(root)})
    assert [ds[i]["name"] for i in range(len(ds))] == [stems["indoors"], stems["outdoor"]]
    s = ds[1]
    assert s["depth"][0, 0, 0].item() == 11.0
    assert not s["valid"][0, 2, 3] and s["depth"][0, 2, 3] == 0 and s["valid"].sum() == H * W - 1  # mask applied
    assert "intrinsics" not in s  # DIODE's published camera is for 1024x768 only
    indoor = build_dataset({"name": "diode", "root": str(root / "val"), "scene": "indoors"})
    assert len(indoor) == 1 and indoor[0]["name"] == stems["indoors"]
    assert DATASETS.info["diode"]["protocols"]["diode"] == ("none", 0.6, 350.0)


def test_diode_missing_mask_is_skipped_and_counted(tmp_path):
    root = tmp_path / "diode"
    stems = write_diode(root)
    ds = build_dataset({"name": "diode", "root": str(root)})
    (root / "val/outdoor/scene_00011/scan_00181" / f"{stems['outdoor']}_depth_mask.npy").unlink()
    ds.items[1] = (ds.items[1][0], ds.items[1][1], ds.items[1][1].with_name(f"{stems['outdoor']}_depth_mask.npy"))
    with pytest.raises(DepthforgeError, match=r"_depth_mask\.npy: file not found") as e:
        ds[1]
    assert e.value.kind == "missing"
    safe = SkipBad(ds)
    assert safe[1] is None and safe[0] is not None and safe.num_skipped == 1


def test_diode_npy_size_checked_from_its_header(tmp_path):
    root = tmp_path / "diode"
    stems = write_diode(root, kinds=("indoors",))
    ds = build_dataset({"name": "diode", "root": str(root)})
    depth = root / "val/indoors/scene_00010/scan_00180" / f"{stems['indoors']}_depth.npy"
    # the header alone, claiming 10 GP (its padding has room for the longer shape)
    depth.write_bytes(depth.read_bytes()[:128].replace(b"(6, 8, 1)", b"(100000, 100000, 1)"))
    with pytest.raises(DepthforgeError, match=r"_depth\.npy: image is 100000x100000 .*decompression bomb guard"):
        ds[0]
    np.save(depth, np.full((1, H, W), 3.0, np.float32))  # a leading axis of 1 is one image too
    assert ds[0]["depth"][0, 0, 0].item() == 3.0
    np.save(depth, np.ones((H, W, 1), np.float32))
    depth.write_bytes(depth.read_bytes()[:-8])
    with pytest.raises(DepthforgeError, match=r"_depth\.npy: truncated \.npy \(184 bytes of data, its header "
                                              r"says 192\)"):
        ds[0]


# --- ScanNet ------------------------------------------------------------------------------------------------

def write_scannet(root, scenes=("scene0406_02", "scene0088_02"), frames=(1100, 300, 800)):
    for scene in scenes:
        for f in frames:
            save_png(root / scene / "color" / f"{f:06d}.png", rgb(f))
            d = np.full((H, W), 1000 + f, np.uint16)
            d[1, 1] = 0
            save_png(root / scene / "depth" / f"{f:06d}.png", d)
            pose = np.eye(4)
            pose[:3, 3] = [f, 0, 0]
            (root / scene / "pose").mkdir(exist_ok=True)
            np.savetxt(root / scene / "pose" / f"{f:06d}.txt", pose)
        (root / scene / "intrinsic").mkdir(exist_ok=True)
        np.savetxt(root / scene / "intrinsic" / "intrinsic_depth.txt",
                   [[577.6, 0, 319.5, 0], [0, 578.7, 239.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def test_scannet_mm_pose_and_sequences(tmp_path):
    root = tmp_path / "scannet"
    write_scannet(root)
    assert detect_format(root) == "scannet"
    ds = build_dataset({"name": "scannet", "root": str(root)})
    assert len(ds) == 6
    seqs = ds.sequences()
    assert seqs == {"scene0088_02": [0, 1, 2], "scene0406_02": [3, 4, 5]}
    names = [ds[i]["name"] for i in seqs["scene0406_02"]]
    assert names == ["scene0406_02_000300", "scene0406_02_000800", "scene0406_02_001100"]  # time order
    s = ds[1]
    assert s["depth"][0, 0, 0].item() == pytest.approx(1.8)  # 1800 mm
    assert not s["valid"][0, 1, 1]
    assert s["pose"][0, 3].item() == 800
    # intrinsic_depth.txt is for 640x480: scaled to the 8x6 image (pixel-centre convention)
    assert s["intrinsics"][0, 0].item() == pytest.approx(577.6 * W / 640)
    assert s["intrinsics"][0, 2].item() == pytest.approx((319.5 + 0.5) * W / 640 - 0.5)
    (root / "scene0406_02" / "pose" / "000300.txt").write_text("-inf " * 16)  # tracking lost
    assert "pose" not in ds[3]


def test_scannet_marigold_list_order_and_missing_frame(tmp_path):
    root = tmp_path / "scannet"
    write_scannet(root, scenes=("scene0406_02",))
    (root / "scannet_val_sampled_list_800_1.txt").write_text(
        "scene0406_02/color/001100.png scene0406_02/depth/001100.png\n"
        "scene0406_02/color/000300.png scene0406_02/depth/000300.png\n"
        "scene0406_02/color/000500.png scene0406_02/depth/000500.png\n")
    ds = build_dataset({"name": "scannet", "root": str(root)})
    assert len(ds) == 3 and ds.sequences() == {"scene0406_02": [0, 1, 2]}
    assert ds[0]["name"] == "scene0406_02_000300"
    safe = SkipBad(ds)
    assert safe[1] is None and safe.num_skipped == 1  # 000500 is listed but not there


# --- Sintel -------------------------------------------------------------------------------------------------

TAG = 202021.25


def dpt_bytes(depth: np.ndarray, tag: float = TAG) -> bytes:
    h, w = depth.shape
    return struct.pack("<fii", tag, w, h) + depth.astype("<f4").tobytes()


def cam_bytes(k: np.ndarray, world_to_cam: np.ndarray) -> bytes:
    return struct.pack("<f", TAG) + k.astype("<f8").tobytes() + world_to_cam.astype("<f8").tobytes()


def write_sintel(root, seqs=("alley_1", "market_2"), frames=(2, 1, 3)):
    k = np.array([[1120.0, 0, 511.5], [0, 1120.0, 217.5], [0, 0, 1]])
    for seq in seqs:
        for f in frames:
            save_png(root / "training" / "final" / seq / f"frame_{f:04d}.png", rgb(f))
            save_png(root / "training" / "clean" / seq / f"frame_{f:04d}.png", rgb(f + 10))
            d = np.full((H, W), float(f), np.float32)
            d[0, :2] = 1e10  # sky
            (root / "training" / "depth" / seq).mkdir(parents=True, exist_ok=True)
            (root / "training" / "depth" / seq / f"frame_{f:04d}.dpt").write_bytes(dpt_bytes(d))
            rot = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
            ext = np.concatenate([rot, [[f], [2.0], [3.0]]], axis=1)  # world-to-camera
            (root / "training" / "camdata_left" / seq).mkdir(parents=True, exist_ok=True)
            (root / "training" / "camdata_left" / seq / f"frame_{f:04d}.cam").write_bytes(cam_bytes(k, ext))
    return k


def test_sintel_dpt_cam_round_trip(tmp_path):
    root = tmp_path / "sintel"
    k = write_sintel(root)
    assert detect_format(root) == "sintel"
    ds = build_dataset({"name": "sintel", "root": str(root)})
    assert len(ds) == 6 and ds.sequences() == {"alley_1": [0, 1, 2], "market_2": [3, 4, 5]}
    s = ds[1]
    assert s["name"] == "alley_1_frame_0002"
    assert torch.equal(s["image"], torch.from_numpy(rgb(2)).permute(2, 0, 1).float() / 255)  # the final pass
    assert s["depth"][0, 3, 3].item() == 2.0 and not s["valid"][0, 0, :2].any()  # 1e10: rendered infinity
    assert np.allclose(s["intrinsics"].numpy(), k)
    # camera-to-world = inverse of [R | t]: the camera centre is -R^T t
    rot = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    assert np.allclose(s["pose"][:3, :3].numpy(), rot.T) and np.allclose(s["pose"][:3, 3].numpy(), -rot.T @ [2, 2, 3])
    clean = build_dataset({"name": "sintel", "root": str(root / "training"), "render_pass": "clean"})
    assert torch.equal(clean[1]["image"], torch.from_numpy(rgb(12)).permute(2, 0, 1).float() / 255)


def test_sintel_wrong_magic_and_size(tmp_path):
    root = tmp_path / "sintel"
    write_sintel(root, seqs=("alley_1",), frames=(1,))
    dpt = root / "training/depth/alley_1/frame_0001.dpt"
    dpt.write_bytes(dpt_bytes(np.ones((H, W)), tag=1.5))
    ds = build_dataset({"name": "sintel", "root": str(root)})
    with pytest.raises(DepthforgeError, match=r"frame_0001\.dpt: not a Sintel \.dpt depth file \(tag 1\.5, "
                                              r"expected 202021\.25\)") as e:
        ds[0]
    assert "\n" not in str(e.value)
    dpt.write_bytes(dpt_bytes(np.ones((H, W)))[:-4])
    with pytest.raises(DepthforgeError, match=r"frame_0001\.dpt: 200 bytes, expected 204"):
        ds[0]
    dpt.write_bytes(struct.pack("<fii", TAG, 100000, 100000))  # a header claiming 10 GP: refused before reading
    with pytest.raises(DepthforgeError, match=r"frame_0001\.dpt: image is 100000x100000"):
        ds[0]
    dpt.write_bytes(dpt_bytes(np.ones((H, W))))
    (root / "training/camdata_left/alley_1/frame_0001.cam").write_bytes(struct.pack("<f", 3.0) + bytes(168))
    with pytest.raises(DepthforgeError, match=r"frame_0001\.cam: not a Sintel \.cam camera file"):
        ds[0]


# --- Hypersim -----------------------------------------------------------------------------------------------

def h5(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("dataset", data=array)


def write_hypersim(root, scene="ai_001_010", cam="cam_00", frame=3, plane=2.0, w=W, h=H):
    """A fronto-parallel wall at ``plane`` metres: Hypersim stores its distance from the camera centre."""
    focal = 886.81 * w / 1024
    u = np.arange(w) - (w - 1) / 2
    v = np.arange(h) - (h - 1) / 2
    distance = plane * np.sqrt(u[None] ** 2 + v[:, None] ** 2 + focal**2) / focal
    entity = np.ones((h, w), np.int32)
    entity[0, 0] = -1  # a ray that hit nothing
    color = np.random.default_rng(0).uniform(0, 2, (h, w, 3)).astype(np.float16)
    images = root / scene / "images"
    h5(images / f"scene_{cam}_final_hdf5" / f"frame.{frame:04d}.color.hdf5", color)
    h5(images / f"scene_{cam}_geometry_hdf5" / f"frame.{frame:04d}.depth_meters.hdf5", distance.astype(np.float16))
    h5(images / f"scene_{cam}_geometry_hdf5" / f"frame.{frame:04d}.render_entity_id.hdf5", entity)
    return distance.astype(np.float16).astype(np.float64), color, entity


def test_hypersim_distance_to_planar_depth_and_tone_map(tmp_path):
    root = tmp_path / "hypersim"
    distance, color, entity = write_hypersim(root)
    assert detect_format(root) == "hypersim"
    s = build_dataset({"name": "hypersim", "root": str(root)})[0]
    assert s["name"] == "ai_001_010_cam_00_0003"
    valid = s["valid"][0].numpy()
    assert not valid[0, 0] and valid.sum() == H * W - 1
    # the wall is at 2 m everywhere (up to the float16 the distances are stored in)
    assert np.allclose(s["depth"][0].numpy()[valid], 2.0, atol=2e-3)
    f = 886.81 * W / 1024
    assert np.allclose(s["intrinsics"].numpy(), [[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]])
    # tone map by hand: 90th percentile brightness over valid pixels -> 0.8 after gamma 1/2.2, 8-bit
    c = color.astype(np.float64)
    bright = (0.3 * c[..., 0] + 0.59 * c[..., 1] + 0.11 * c[..., 2])[entity != -1]
    scale = 0.8 ** 2.2 / np.percentile(bright, 90)
    expect = np.floor(np.clip((scale * c) ** (1 / 2.2), 0, 1) * 255) / 255
    assert np.allclose(s["image"].permute(1, 2, 0).numpy(), expect, atol=1e-6)
    assert "pose" not in s


def test_hypersim_split_csv_and_pose(tmp_path):
    root = tmp_path / "hypersim"
    write_hypersim(root, frame=0)
    write_hypersim(root, frame=1)
    (root / "metadata_images_split_scene_v1.csv").write_text(
        "scene_name,camera_name,frame_id,included_in_public_release,exclude_reason,split_partition_name\n"
        "ai_001_010,cam_00,0,True,,train\nai_001_010,cam_00,1,True,,test\nai_001_010,cam_00,2,False,x,test\n")
    detail = root / "ai_001_010" / "_detail"
    (detail).mkdir()
    (detail / "metadata_scene.csv").write_text("parameter_name,parameter_value\nmeters_per_asset_unit,0.0254\n")
    rot = np.stack([np.eye(3), np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])])
    h5(detail / "cam_00" / "camera_keyframe_orientations.hdf5", rot)
    h5(detail / "cam_00" / "camera_keyframe_positions.hdf5", np.array([[0.0, 0, 0], [100.0, 0, 50]]))
    ds = build_dataset({"name": "hypersim", "root": str(root)})
    assert len(ds) == 1 and ds[0]["name"] == "ai_001_010_cam_00_0001" and ds.sequences() == {"ai_001_010_cam_00": [0]}
    pose = ds[0]["pose"].numpy()
    # Hypersim's camera y up / z backward -> y down / z forward: columns 2 and 3 of R change sign
    assert np.allclose(pose[:3, :3], [[0, 0, -1], [0, -1, 0], [-1, 0, 0]])
    assert np.allclose(pose[:3, 3], [2.54, 0, 1.27])
    assert len(build_dataset({"name": "hypersim", "root": str(root)}, split="train")) == 1


# --- DA-2K and pair accuracy --------------------------------------------------------------------------------

def write_da2k(root):
    save_png(root / "images" / "indoor" / "0001.png", rgb(1))
    save_png(root / "images" / "transparent_reflective" / "0002.png", rgb(2))
    ann = {
        "images/indoor/0001.png": [{"point1": [1, 2], "point2": [5, 7], "closer_point": "point1"},
                                   {"point1": [0, 0], "point2": [3, 3], "closer_point": "point2"}],
        "images/transparent_reflective/0002.png": [{"point1": [2, 1], "point2": [4, 6], "closer_point": "point1"}],
    }
    (root / "annotations.json").write_text(json.dumps(ann))


def test_da2k_pairs_and_categories(tmp_path):
    root = tmp_path / "da2k"
    write_da2k(root)
    assert detect_format(root) == "da2k"
    ds = build_dataset({"name": "da2k", "root": str(root)})
    assert len(ds) == 2 and ds.categories() == {"indoor": [0], "transparent_reflective": [1]}
    s = ds[0]
    assert s["name"] == "indoor_0001" and s["category"] == "indoor" and not s["valid"].any()
    assert s["pairs"].dtype == torch.int64 and s["pairs"].tolist() == [[1, 2, 5, 7], [0, 0, 3, 3]]
    assert s["closer"].tolist() == [0, 1]
    glass = build_dataset({"name": "da2k", "root": str(root), "category": "transparent_reflective"})
    assert len(glass) == 1 and glass[0]["pairs"].tolist() == [[2, 1, 4, 6]]
    ann = json.loads((root / "annotations.json").read_text())
    ann["images/indoor/0001.png"][0]["point2"] = [6, 7]  # row 6 of a 6-row image
    (root / "annotations.json").write_text(json.dumps(ann))
    with pytest.raises(DepthforgeError, match=r"annotations\.json: images/indoor/0001\.png: a point lies outside "
                                              r"the 8x6 image"):
        build_dataset({"name": "da2k", "root": str(root)})[0]
    (root / "annotations.json").write_text(json.dumps({"images/indoor/0001.png": [{"point1": [1, 2]}]}))
    with pytest.raises(DepthforgeError, match=r"expected point1 \[h, w\], point2"):
        build_dataset({"name": "da2k", "root": str(root)})


def test_pair_accuracy_by_hand():
    from depthforge.evaluation.metrics import pair_accuracy

    depth = np.array([[1.0, 2.0, 3.0],
                      [4.0, 5.0, 5.0]])
    pairs = torch.tensor([[0, 0, 1, 1],   # 1 m vs 5 m: first closer
                          [1, 0, 0, 2],   # 4 m vs 3 m: second closer
                          [0, 1, 1, 2],   # 2 m vs 5 m: first closer
                          [1, 1, 1, 2]])  # 5 m vs 5 m: a tie
    closer = torch.tensor([0, 1, 1, 0])   # the third label disagrees with the depths; the tie is always wrong
    assert pair_accuracy(depth, pairs, closer, "metric") == 0.5
    assert pair_accuracy(3 * depth + 7, pairs, closer, "relative") == 0.5  # the order survives scale and shift
    assert pair_accuracy(1 / depth, pairs, closer, "disparity") == 0.5
    # depth read as disparity: every order flips, so only the disagreeing third pair is right
    assert pair_accuracy(depth, pairs, closer, "disparity") == 0.25
    assert pair_accuracy(depth, pairs, 1 - closer, "metric") == 0.25  # the tie is wrong either way
    nan = depth.copy()
    nan[0, 0] = np.nan
    assert pair_accuracy(nan, pairs, closer, "metric") == 0.25
    assert np.isnan(pair_accuracy(depth, np.zeros((0, 4)), np.zeros(0), "metric"))
    with pytest.raises(DepthforgeError, match="outside the 3x2 prediction"):
        pair_accuracy(depth, [[0, 0, 2, 0]], [0], "metric")
    with pytest.raises(DepthforgeError, match="unknown output kind 'depth'"):
        pair_accuracy(depth, pairs, closer, "depth")


# --- MoGe's evaluation sets ---------------------------------------------------------------------------------

def moge_png(path, depth, near, far, unit=None):
    """MoGe's log encoding, written by hand: 0 unknown, 65535 infinite, 1..65534 log-spaced from near to far."""
    from PIL import PngImagePlugin

    code = 1 + np.round(np.log(np.clip(np.nan_to_num(depth, nan=near, posinf=far), near, far) / near)
                        / np.log(far / near) * 65533)
    code = code.astype(np.uint16)
    code[np.isnan(depth)] = 0
    code[np.isinf(depth)] = 65535
    info = PngImagePlugin.PngInfo()
    info.add_text("near", str(near))
    info.add_text("far", str(far))
    if unit is not None:
        info.add_text("unit", str(unit))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(code).save(path, pnginfo=info)


def write_moge(root):
    for name, instances in (("Sintel", ["alley_1/0001"]), ("NYUv2", ["0001", "0002"])):
        (root / name).mkdir(parents=True)
        (root / name / ".index.txt").write_text("\n".join(instances) + "\n")
        for j, inst in enumerate(instances):
            folder = root / name / inst
            save_png(folder / "image.jpg", rgb(j))
            depth = np.full((H, W), 2.0, np.float64)
            depth[0, 0], depth[0, 1], depth[0, 2] = 1.0, np.nan, np.inf
            depth[5, 7] = 4000.0  # beyond 1000 x its 1st percentile: MoGe drops it
            moge_png(folder / "depth.png", depth, near=1.0, far=4000.0)
            (folder / "meta.json").write_text(json.dumps({"intrinsics": [[0.5, 0, 0.5], [0, 0.75, 0.5], [0, 0, 1]]}))


def test_moge_layout(tmp_path):
    from depthforge.data.moge import METRIC_SETS

    root = tmp_path / "moge"
    write_moge(root)
    assert detect_format(root) == "moge" and detect_format(root / "Sintel") == "moge"
    ds = build_dataset({"name": "moge", "root": str(root)})
    assert ds.subsets() == {"NYUv2": [0, 1], "Sintel": [2]}  # MoGe's order of its sets
    assert "NYUv2" in METRIC_SETS and "Sintel" not in METRIC_SETS
    s = ds[2]
    assert s["name"] == "Sintel_alley_1_0001" and s["subset"] == "Sintel"
    d, v = s["depth"][0].numpy(), s["valid"][0].numpy()
    # code 1 + round(ln(2)/ln(4000)*65533) decoded back: exact to the 16-bit step
    code = 1 + np.round(np.log(2.0) / np.log(4000.0) * 65533)
    assert d[3, 3] == pytest.approx(4000.0 ** ((code - 1) / 65533), rel=1e-6) and abs(d[3, 3] - 2) < 1e-3
    assert d[0, 0] == pytest.approx(1.0) and not v[0, 1] and not v[0, 2] and not v[5, 7] and v.sum() == H * W - 3
    assert np.allclose(s["intrinsics"].numpy(), [[4, 0, 3.5], [0, 4.5, 2.5], [0, 0, 1]])
    only = build_dataset({"name": "moge", "root": str(root), "sets": ["NYUv2"]})
    assert len(only) == 2
    with pytest.raises(DepthforgeError, match="set 'KITTI' not found"):
        build_dataset({"name": "moge", "root": str(root), "sets": "KITTI"})
    moge_png(root / "NYUv2" / "0001" / "depth.png", np.full((H, W), 2.0), 1.0, 4.0, unit=0.5)  # legacy 'unit'
    assert ds[0]["depth"][0, 3, 3].item() == pytest.approx(1.0, rel=1e-4)
    Image.fromarray(np.ones((H, W), np.uint16)).save(root / "NYUv2" / "0002" / "depth.png")
    with pytest.raises(DepthforgeError, match=r"0002/depth\.png: no 'near'/'far' text fields"):
        ds[1]
    (root / "NYUv2" / "0001" / "meta.json").unlink()
    assert SkipBad(ds)[0] is None


# --- detection and the benchmark facts ----------------------------------------------------------------------

def test_each_benchmark_is_registered_with_its_folder(tmp_path):
    for name in ("eth3d", "diode", "scannet", "sintel", "hypersim", "da2k", "moge"):
        bench = DATASETS.info[name]["benchmark"]
        assert bench["folder"] == name and bench["split"] == "test"
    with pytest.raises(DepthforgeError, match="no known dataset layout"):
        detect_format(tmp_path)
