"""The real-data recipes end to end on tiny files in the real formats: seed-nyu on DenseDepth's nyu_data.zip, kitti
on the Eigen lists, and training through a dataset with planted bad files that ``data check`` then names."""
import io
import zipfile
from contextlib import redirect_stdout

import numpy as np
import pytest
from PIL import Image

from depthforge.models.checkpoint import read_checkpoint
from depthforge.cli import main
from depthforge.recipe import apply_overrides, load_config
from depthforge.data import build_dataset
from depthforge.data.kitti import KB_CROP, KITTI_CALIB
from depthforge.data.transforms import build_train_transform
from depthforge.evaluation.evaluate import NYU_ANCHORS, evaluate
from depthforge.evaluation.report import markdown_table
from depthforge.evaluation.metrics import METRIC_NAMES
from depthforge.training.fit import fit

pytestmark = pytest.mark.slow

TINY = ["model.width=0.125", "model.levels=3", "train.epochs=1", "train.batch_size=4", "train.num_workers=0",
        "train.log_every_n_steps=1"]


def png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def scene(seed: int, h: int, w: int, far: float) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8, depth metres): a tilted plane in depth whose shading the image shows, so there is something to
    learn; each seed tilts it differently."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    a, b = rng.uniform(0.2, 0.8, 2)
    depth = (1.0 + (far - 1.5) * (a * r + b * (1 - c)) / (a + b)).astype(np.float32)
    shade = (255 * (1 - depth / far)).astype(np.uint8)
    rgb = np.stack([shade, np.roll(shade, seed, 1), (r * 200).astype(np.uint8)], -1)
    return rgb, depth


def assert_finite(res: dict) -> None:
    for key in METRIC_NAMES:
        assert np.isfinite(res["model"][key]), key


# --- seed-nyu on DenseDepth's nyu_data.zip ----------------------------------------------------------------

def densedepth_zip(path, n_train: int = 10, n_test: int = 4, h: int = 48, w: int = 64):
    """nyu_data.zip as DenseDepth ships it: data/nyu2_{train,test}.csv; training pairs are JPEG + 8-bit PNG
    (255 = 10 m), test pairs PNG + 16-bit PNG in mm with Kinect holes (0)."""
    members, rows = {}, {"train": [], "test": []}
    for i in range(n_train):
        rgb, depth = scene(i, h, w, 10.0)
        a, d = f"data/nyu2_train/room_{i // 5:04d}_out/{i}.jpg", f"data/nyu2_train/room_{i // 5:04d}_out/{i}.png"
        members[a], members[d] = png(rgb, "JPEG"), png(np.round(depth / 10 * 255).astype(np.uint8))
        rows["train"].append(f"{a},{d}")
    for i in range(n_test):
        rgb, depth = scene(100 + i, h, w, 10.0)
        mm = np.round(depth * 1000).astype(np.uint16)
        mm[: h // 6, : w // 5] = 0
        a, d = f"data/nyu2_test/{i:05d}_colors.png", f"data/nyu2_test/{i:05d}_depth.png"
        members[a], members[d] = png(rgb), png(mm)
        rows["test"].append(f"{a},{d}")
    for split, lines in rows.items():
        members[f"data/nyu2_{split}.csv"] = "\n".join(lines) + "\n"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_seed_nyu_recipe_trains_and_evaluates_on_the_densedepth_zip(tmp_path):
    data = densedepth_zip(tmp_path / "nyu_data.zip")
    cfg = apply_overrides(load_config("seed-nyu"), [f"data.root={data}", f"test_data.root={data}",
                                                    "data.size=[32, 48]", f"out={tmp_path / 'run'}", *TINY,
                                                    "train.precision=32-true"])
    assert cfg["data"]["name"] == "nyu" and cfg["eval"]["protocol"] == "nyu"
    out = fit(cfg, progress=False)
    ckpt = out / "checkpoints" / "best.ckpt"
    assert ckpt.is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    # the training baseline's mean depth shows the 8-bit training PNGs read as 255 = 10 m (planes of 1-9.5 m)
    assert 4.5 < read_checkpoint(ckpt)["baselines"]["constant"] < 6.0
    res = evaluate(ckpt, out=tmp_path / "eval", pictures=False, progress=False)
    assert res["protocol"] == "nyu" and res["max_depth"] == 10.0 and res["images"] == 4
    assert_finite(res)
    assert set(res["baselines"]) == {"constant", "mean_map"}
    assert res["anchors"] == NYU_ANCHORS
    md = (tmp_path / "eval" / "metrics.md").read_text()
    assert "published δ1 on NYU-Depth v2: DenseDepth 0.846 · BinsFormer 0.925 · Depth Anything V2 0.984" in md
    assert f"this model: {res['model']['d1']:.3f}" in md


# --- kitti on the Eigen lists -----------------------------------------------------------------------------

KH, KW = KB_CROP[0] + 8, KB_CROP[1] + 14  # a little larger than the KB crop, like the real 375x1242


def kitti_layout(root, frames: dict[str, list[str | None]]):
    """KITTI raw + data_depth_annotated + eigen_{split}_files_with_gt.txt; a frame's where is train/, val/ or
    None (listed as 'None': no ground truth). Depth is sparse 16-bit, value / 256 = metres, up to ~90 m."""
    raw, ann = root / "raw", root / "data_depth_annotated"
    n = 0
    for split, wheres in frames.items():
        lines = []
        for where in wheres:
            frame, n = f"{n:010d}", n + 1
            rgb_rel = f"2011_09_26/2011_09_26_drive_0001_sync/image_02/data/{frame}.png"
            rgb, depth = scene(n, KH, KW, 90.0)
            (raw / rgb_rel).parent.mkdir(parents=True, exist_ok=True)
            (raw / rgb_rel).write_bytes(png(rgb))
            if where is None:
                lines.append(f"{rgb_rel} None {KITTI_CALIB['2011_09_26'][0]}")
                continue
            dep_rel = f"2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/{frame}.png"
            raw16 = np.round(depth * 256).astype(np.uint16)
            raw16[(np.arange(KH)[:, None] + np.arange(KW)) % 4 != 0] = 0  # LiDAR: ~25 % of pixels
            raw16[: KH // 3] = 0  # nothing above the horizon
            (ann / where / dep_rel).parent.mkdir(parents=True, exist_ok=True)
            (ann / where / dep_rel).write_bytes(png(raw16))
            lines.append(f"{rgb_rel} {dep_rel} {KITTI_CALIB['2011_09_26'][0]}")
        (root / f"eigen_{split}_files_with_gt.txt").write_text("\n".join(lines) + "\n")
    return raw, ann


def test_kitti_recipe_settings():
    cfg = load_config("kitti")
    assert cfg["model"]["name"] == "seed-unet" and cfg["model"]["max_depth"] == 80.0
    assert cfg["data"]["name"] == "kitti" and cfg["data"]["root"] == "data/kitti"
    h, w = cfg["data"]["size"]
    assert (2 * h, 2 * w) == KB_CROP and h % 2 ** cfg["model"]["levels"] == 0 == w % 2 ** cfg["model"]["levels"]
    assert cfg["eval"]["protocol"] == "kitti" and cfg["eval"]["max_depth"] == 80.0
    assert cfg["test_data"]["name"] == "kitti"
    aug = build_train_transform(cfg["augment"], (h, w))  # every augment key is one the transform knows
    assert aug.hflip == 0.5 and aug.rotate == 1.0 and aug.jitter
    t = cfg["train"]
    assert (t["batch_size"], t["epochs"], t["lr"], t["amsgrad"]) == (8, 20, 1e-4, True)
    assert t["precision"] == "bf16-mixed" and t["channels_last"] is True


def test_kitti_recipe_trains_and_evaluates_on_the_eigen_lists(tmp_path):
    raw, ann = kitti_layout(tmp_path, {"train": ["train", "val", None, "train", "train", "val", "train"],
                                       "test": ["val", None, "val"]})
    roots = [f"{s}.{k}={v}" for s in ("data", "test_data")
             for k, v in (("root", tmp_path), ("image_root", raw), ("depth_root", ann))]
    # the recipe's own precision (bf16-mixed) and channels_last, at a tiny size
    cfg = apply_overrides(load_config("kitti"), roots + ["data.size=[32, 112]", f"out={tmp_path / 'run'}", *TINY])
    # the lists' None frames are listed, and dropped by the recipe's require_gt
    spec = {k: v for k, v in cfg["data"].items() if k not in ("size", "val_fraction")}
    assert len(build_dataset({**spec, "require_gt": False}, split="train")) == 7
    train = build_dataset(spec, split="train")
    assert len(train) == 6 and train[0]["depth"].shape == (1, *KB_CROP)
    assert len(build_dataset(cfg["test_data"], split="test")) == 2

    out = fit(cfg, progress=False)
    ckpt = out / "checkpoints" / "best.ckpt"
    assert ckpt.is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    res = evaluate(ckpt, out=tmp_path / "eval", pictures=False, progress=False)
    assert res["protocol"] == "kitti" and res["max_depth"] == 80.0 and res["images"] == 2
    assert_finite(res)
    assert "anchors" not in res and "published" not in markdown_table(res)


# --- bad files: training runs through them, data check names them -----------------------------------------

def test_training_runs_through_bad_files_and_data_check_names_them(tmp_path, caplog):
    """A folder dataset listed in train.csv/test.csv, with a truncated depth PNG, a missing depth file and an
    all-zero depth map among its training pairs."""
    h, w = 24, 32
    root = tmp_path / "mydata"
    (root / "color").mkdir(parents=True)  # not rgb/: with rgb/ + depth/ the folders, not the lists, would be read
    (root / "gt").mkdir()
    for split, names in (("train", [f"f{i:02d}" for i in range(12)]), ("test", ["t00", "t01"])):
        for name in names:
            rgb, depth = scene(len(name) + int(name[1:]), h, w, 8.0)
            Image.fromarray(rgb).save(root / "color" / f"{name}.png")
            mm = np.round(depth * 1000).astype(np.uint16)
            Image.fromarray(mm if name != "f07" else np.zeros_like(mm)).save(root / "gt" / f"{name}.png")
        (root / f"{split}.csv").write_text("rgb,depth\n" + "".join(f"color/{n}.png,gt/{n}.png\n" for n in names))
    corrupt, missing = root / "gt" / "f03.png", root / "gt" / "f05.png"
    corrupt.write_bytes(corrupt.read_bytes()[:70])
    missing.unlink()

    cfg = apply_overrides(load_config("quick"), [f"data={{name: folder, root: {root}}}", "data.size=[24, 32]",
                                                 "data.val_fraction=0.3", f"test_data={{name: folder, root: {root}}}",
                                                 f"out={tmp_path / 'run'}", *TINY, "train.precision=32-true"])
    out = fit(cfg, progress=False)
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "f03.png" in warned and "f05.png" in warned and "f07" in warned

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["data", "check", str(root)]) == 1  # a dataset with problems: a script can tell
    text = buf.getvalue()
    lines = {kind: next((ln for ln in text.splitlines() if f"[{kind}]" in ln), "")
             for kind in ("unreadable", "missing", "all-invalid")}
    assert "f03.png" in lines["unreadable"], text
    assert "f05.png" in lines["missing"], text
    assert "f07" in lines["all-invalid"], text
    assert "train: 3 bad samples" in text and "training skips 3 of 12" in text, text
