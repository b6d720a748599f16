"""The iBims-1 reader on .mat files written in the dataset's format (a MATLAB struct ``data``)."""
import math

import numpy as np
import pytest
import scipy.io
import torch
from torch.utils.data import DataLoader

from depthforge.data import build_dataset, collate, detect_format
from depthforge.data.ibims import IBIMS1, calib_intrinsics, read_mat
from depthforge.errors import DepthforgeError
from depthforge.evaluation.failure import failure_row, sample_masks

H, W = 48, 64
FX, FY, CX1, CY1 = 60.0, 61.0, 32.5, 24.5  # CX1, CY1: 1-based, as iBims-1's calib holds them


def ibims_struct(seed: int = 0, planes: bool = True) -> dict:
    """The fields of one iBims-1 image, typed as MATLAB stores them."""
    rng = np.random.default_rng(seed)
    depth = np.full((H, W), 4.0, np.float32)
    depth[10:30, 10:30] = 2.0
    depth[0, :5] = 0  # missing laser returns
    edges = np.zeros((H, W), np.uint8)
    edges[10:30, 10] = edges[10:30, 29] = edges[10, 10:30] = edges[29, 10:30] = 1
    calib = np.array([[FX, 0, 0], [0, FY, 0], [CX1, CY1, 1]])  # transposed camera matrix
    mask_invalid = np.ones((H, W), np.uint8)
    mask_invalid[-3:, :] = 0
    mask_transp = np.ones((H, W), np.uint8)
    mask_transp[35:40, 40:50] = 0  # a window
    wall = np.zeros((H, W), np.uint8)
    wall[:, 35:] = 1
    wall_paras = np.array([[0.0, 0, 0, 0, 0.0, 1.0, 0.0]]) if planes else np.zeros((0, 0))
    return {
        "rgb": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "depth": depth, "edges": edges, "calib": calib,
        "mask_invalid": mask_invalid, "mask_transp": mask_transp,
        "mask_wall": wall, "mask_wall_paras": wall_paras,
        "mask_table": np.zeros((H, W), np.uint8), "mask_table_paras": np.zeros((0, 0)),
        "mask_floor": np.zeros((H, W), np.uint8), "mask_floor_paras": np.zeros((0, 0)),
    }


def write_ibims(root, names=("corridor_01", "office_02"), sub: str | None = None, **kw):
    root.mkdir(parents=True, exist_ok=True)
    (root / "imagelist.txt").write_text("\n".join(names) + "\n")
    folder = root / sub if sub else root
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        scipy.io.savemat(folder / f"{name}.mat", {"data": ibims_struct(i, planes=i == 0, **kw)})
    return root


def test_reader_sample(tmp_path):
    root = write_ibims(tmp_path / "ibims")
    assert detect_format(root) == "ibims1"
    ds = build_dataset(str(root))
    assert isinstance(ds, IBIMS1) and len(ds) == 2 and ds.protocol == "ibims1"
    raw = read_mat(root / "corridor_01.mat")
    assert raw["mask_table_paras"].shape == (0, 0) and raw["mask_wall_paras"].shape == (1, 7)
    s = ds[0]
    assert s["name"] == "corridor_01"
    assert s["image"].shape == (3, H, W) and s["image"].dtype == torch.float32
    assert torch.allclose(s["image"], torch.from_numpy(raw["rgb"].transpose(2, 0, 1) / 255.0).float())
    valid = s["valid"][0].numpy()
    # valid = mask_invalid · mask_transp · (depth ≠ 0), as the script's mask_valid
    want = (raw["mask_invalid"] != 0) & (raw["mask_transp"] != 0) & (raw["depth"] != 0)
    assert np.array_equal(valid, want)
    assert np.array_equal(s["depth"][0].numpy(), np.where(want, raw["depth"], 0))
    k = s["intrinsics"].numpy()
    assert k[0, 0] == FX and k[1, 1] == FY
    assert k[0, 2] == pytest.approx(CX1 - 1) and k[1, 2] == pytest.approx(CY1 - 1)  # 1-based -> 0-based
    assert s["edges"].shape == (1, H, W) and s["edges"].dtype == torch.bool and int(s["edges"].sum()) == 76
    assert np.array_equal(s["transparent"][0].numpy(), raw["mask_transp"] == 0)
    assert s["plane_wall"].shape == (1, H, W) and int(s["plane_wall"].max()) == 1
    assert s["plane_wall_params"].shape == (1, 7) and s["plane_table_params"].shape == (0, 7)
    assert ds[1]["plane_wall_params"].shape == (0, 7)  # empty MATLAB [] for every type


def test_calib_layout():
    calib = np.array([[500.0, 0, 0], [0, 501.0, 0], [320.5, 240.5, 1]])
    assert np.allclose(calib_intrinsics(calib), [[500, 0, 319.5], [0, 501, 239.5], [0, 0, 1]])


def test_batch_of_one_collates_and_feeds_failure_row(tmp_path):
    root = write_ibims(tmp_path / "data", sub="ibims1_core_mat")  # BS-Net's layout
    assert detect_format(root) == "ibims1"
    ds = build_dataset({"name": "ibims1", "root": str(root)})
    for batch in DataLoader(ds, batch_size=1, collate_fn=collate):
        assert batch["image"].shape == (1, 3, H, W)
        masks = sample_masks(batch)
        gt = batch["depth"][0, 0].numpy()
        valid = batch["valid"][0, 0].numpy()
        pred = np.where(valid, gt, 3.0)  # perfect where gt is known
        row = failure_row(pred, gt, valid, masks)
        assert row["dde_0"] == 1.0 and row["whdr"] == 0.0
        assert math.isnan(row["transparent/abs_rel"])  # iBims-1 has no gt on transparent pixels
        assert row["rest/abs_rel"] == 0.0
        # the prediction's square lies on the annotated edges (acc 0); the 3.0 m fill of the holes adds edges more
        # than 10 px from them, which count (at 10 px) in the completeness only
        assert row["dbe_acc"] == 0.0 and row["dbe_comp"] == pytest.approx(3.821138211382114, rel=1e-9)
        if batch["name"] == ["corridor_01"]:  # the wall plane (y-facing, constant depth 4 m)
            assert row["pe_count"] == 1 and row["pe_orient"] == pytest.approx(0, abs=1e-4)
            assert row["pe_flat"] == pytest.approx(0, abs=1e-4)
        else:
            assert row["pe_count"] == 0 and math.isnan(row["pe_flat"])


def test_bad_files_are_one_line_errors(tmp_path):
    root = write_ibims(tmp_path / "ibims")
    (root / "office_02.mat").unlink()
    ds = IBIMS1(root=str(root))
    with pytest.raises(DepthforgeError, match="office_02.mat: file not found"):
        ds[1]
    fields = ibims_struct()
    del fields["edges"]
    scipy.io.savemat(root / "office_02.mat", {"data": fields})
    with pytest.raises(DepthforgeError, match="no field 'edges'"):
        ds[1]
    (root / "office_02.mat").write_bytes(b"not a mat file")
    with pytest.raises(DepthforgeError, match="not a readable iBims-1"):
        ds[1]
    fields = ibims_struct()
    fields["depth"] = fields["depth"][:-1]
    scipy.io.savemat(root / "office_02.mat", {"data": fields})
    with pytest.raises(DepthforgeError, match="wrong size|depth is"):
        ds[1]
    with pytest.raises(DepthforgeError, match="only 'test'"):
        IBIMS1(root=str(root), split="train")
    with pytest.raises(DepthforgeError, match="imagelist.txt"):
        IBIMS1(root=str(tmp_path))


def test_detector_needs_the_list_and_its_mat_files(tmp_path):
    (tmp_path / "imagelist.txt").write_text("room_01\n")
    with pytest.raises(DepthforgeError):
        detect_format(tmp_path)  # a list without .mat files is no iBims-1 folder
    scipy.io.savemat(tmp_path / "room_01.mat", {"depth": np.zeros((2, 2))})
    assert detect_format(tmp_path / "imagelist.txt") == "ibims1"
    with pytest.raises(DepthforgeError, match="no struct 'data'"):
        IBIMS1(root=str(tmp_path))[0]
