"""depthforge.load / Predictor: any input form and size in, float32 depth at the input's size out; colorize."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from depthforge.models import Contract, DepthModel
from PIL import Image

import depthforge
from depthforge import DepthforgeError, build_model
from depthforge.inference.predictor import Predictor, from_module, to_image
from depthforge.models.checkpoint import meta
from depthforge.viz.colors import colorize, depth_range, legend
from depthforge.data.io import read_depth
from conftest import TINY, make_checkpoint

KWARGS = TINY


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("api") / "model.ckpt")


@pytest.fixture(scope="module")
def predictor(ckpt):
    return depthforge.load(ckpt, device="cpu")


def rng_image(h, w, c=3, dtype=np.uint8, seed=0):
    r = np.random.default_rng(seed)
    hi = {np.uint8: 256, np.uint16: 65536}[dtype]
    shape = (h, w) if c == 1 else (h, w, c)
    return r.integers(0, hi, shape).astype(dtype)


def test_package_exports_load_and_predictor(predictor):
    assert depthforge.load is __import__("depthforge.inference.load", fromlist=["load"]).load
    assert isinstance(predictor, depthforge.Predictor)
    assert predictor.metric is True and predictor.max_depth == 10.0 and predictor.multiple == 8
    assert predictor.info["model"] == {"name": "seed-unet", "kwargs": KWARGS}
    assert predictor.train_size == (96, 128)


@pytest.mark.parametrize("make", [
    lambda: rng_image(333, 517),                                       # RGB uint8, odd size
    lambda: rng_image(333, 517, c=1),                                  # gray
    lambda: rng_image(333, 517, c=4),                                  # RGBA
    lambda: rng_image(333, 517, dtype=np.uint16),                      # 16-bit RGB
    lambda: rng_image(333, 517)[..., :1],                              # (H,W,1)
    lambda: rng_image(333, 517).astype(np.float32) / 255,              # float in [0,1]
    lambda: Image.fromarray(rng_image(333, 517)),                      # PIL
], ids=["rgb", "gray", "rgba", "uint16", "hw1", "float", "pil"])
def test_any_input_form_gives_float32_depth_at_input_size(predictor, make):
    depth = predictor(make())
    assert depth.shape == (333, 517) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth > 0).all() and (depth < predictor.max_depth).all()


def test_paths_including_16bit_png_and_grayscale(predictor, tmp_path):
    gray16 = tmp_path / "gray16.png"
    Image.fromarray(rng_image(101, 67, c=1, dtype=np.uint16)).save(gray16)
    assert Image.open(gray16).mode.startswith("I")
    rgba = tmp_path / "rgba.png"
    Image.fromarray(rng_image(50, 31, c=4)).save(rgba)
    assert predictor(gray16).shape == (101, 67)
    assert predictor(str(rgba)).shape == (50, 31)
    # a path and the same pixels as an array give the same depth
    a = rng_image(40, 52)
    Image.fromarray(a).save(tmp_path / "a.png")
    np.testing.assert_allclose(predictor(tmp_path / "a.png"), predictor(a), atol=1e-6)


def test_list_in_list_out_matches_single_calls(predictor):
    images = [rng_image(333, 517, seed=1), rng_image(64, 200, seed=2), rng_image(333, 517, seed=3), rng_image(7, 5)]
    depths = predictor(images)
    assert isinstance(depths, list) and [d.shape for d in depths] == [(333, 517), (64, 200), (333, 517), (7, 5)]
    for image, depth in zip(images, depths):
        np.testing.assert_allclose(depth, predictor(image), atol=1e-5)
    assert predictor([]) == []


def test_resize_modes(predictor, tmp_path):
    image = rng_image(333, 517)
    train, pad = predictor(image, resize="train"), predictor(image, resize="pad")
    assert train.shape == pad.shape == (333, 517)
    assert not np.allclose(train, pad)  # really two different paths through infer
    # without data.size in the config, "train" falls back to padding to the multiple
    bare = depthforge.load(make_checkpoint(tmp_path / "bare.ckpt", size=None), device="cpu")
    assert bare.train_size is None
    np.testing.assert_allclose(bare(image), bare(image, resize="pad"), atol=0)
    np.testing.assert_allclose(bare(image), pad, atol=1e-6)  # same weights (same seed)
    with pytest.raises(DepthforgeError, match="resize"):
        predictor(image, resize="stretch")


def test_flip_averages_with_the_mirrored_prediction(predictor):
    image = rng_image(64, 96)  # multiple of 8 and pad mode: mirroring commutes with padding exactly
    d, dm = predictor(image, resize="pad"), predictor(image[:, ::-1], resize="pad")
    np.testing.assert_allclose(predictor(image, resize="pad", flip=True), 0.5 * (d + dm[:, ::-1]), atol=1e-6)


def test_predict_tensor(predictor):
    x = torch.rand(2, 3, 45, 77)
    y = predictor.predict_tensor(x)
    assert y.shape == (2, 1, 45, 77) and y.dtype == torch.float32
    np.testing.assert_allclose(y[1, 0].numpy(), predictor(x[1].permute(1, 2, 0).numpy()), atol=1e-6)
    with pytest.raises(DepthforgeError, match=r"\[N,3,H,W\]"):
        predictor.predict_tensor(torch.rand(3, 45, 77))


def test_from_module_wraps_an_in_memory_model():
    model = build_model("seed-unet", **KWARGS)
    p = from_module(model, meta("seed-unet", KWARGS, model), "cpu")
    assert isinstance(p, Predictor) and p(rng_image(10, 12)).shape == (10, 12)


def test_real_photo(predictor, realdata):
    depth = predictor(realdata / "nyu" / "rgb_1.png")
    assert depth.shape == (480, 640) and depth.dtype == np.float32 and np.isfinite(depth).all()


@pytest.mark.parametrize("bad, message", [
    ("missing.png", "missing.png: file not found"),
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.full((4, 4), 255.0, np.float32), r"in \[0, 1\]"),
    (np.full((4, 4), np.nan, np.float32), "NaN"),
    (np.zeros((4, 4), np.int64), "dtype"),
    (np.zeros((0, 4), np.uint8), "empty"),
    (42, "expected a path"),
])
def test_bad_inputs_give_one_line_errors(predictor, bad, message):
    with pytest.raises(DepthforgeError, match=message) as e:
        predictor(bad)
    assert "\n" not in str(e.value)


def test_bad_files_name_the_file(predictor, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(DepthforgeError, match="notes.png: not an image"):
        predictor(text)
    with pytest.raises(DepthforgeError, match="nothing.ckpt: checkpoint not found"):
        depthforge.load(tmp_path / "nothing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(DepthforgeError, match="junk.ckpt: not a depthforge checkpoint"):
        depthforge.load(tmp_path / "junk.ckpt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is missing")
def test_cuda_request_without_cuda_is_a_clear_error(ckpt):
    with pytest.raises(DepthforgeError, match="CUDA is not available"):
        depthforge.load(ckpt, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu(ckpt):
    image = rng_image(120, 170)
    np.testing.assert_allclose(depthforge.load(ckpt, device="cuda")(image),
                               depthforge.load(ckpt, device="cpu")(image), atol=1e-3)


def test_to_image_scales_each_dtype():
    assert to_image(np.full((2, 2), 255, np.uint8)).max() == 1.0
    assert to_image(np.full((2, 2), 65535, np.uint16)).max() == 1.0
    assert to_image(np.ones((2, 2), bool)).shape == (2, 2, 3)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7
    np.testing.assert_array_equal(to_image(rgba)[0, 0], [1, 0, 0])


# ----- colour mapping (colors.py) -----

def test_colorize_near_is_bright_and_invalid_black():
    depth = np.array([[1.0, 2.0, 3.0, 0.0, np.nan, np.inf]], np.float32)
    rgb = colorize(depth, vmin=1.0, vmax=3.0)
    assert rgb.shape == (1, 6, 3) and rgb.dtype == np.uint8
    brightness = rgb[0, :3].astype(int).sum(axis=1)
    assert brightness[0] > brightness[1] > brightness[2]  # near is bright
    np.testing.assert_array_equal(rgb[0, 3:], 0)
    assert colorize(depth, 1.0, 3.0, invalid_color=(255, 0, 255))[0, 3].tolist() == [255, 0, 255]
    # plasma's ends: yellow for the nearest, dark blue-purple for the farthest
    assert rgb[0, 0].tolist() == [240, 249, 33] and rgb[0, 2].tolist() == [13, 8, 135]


def test_colorize_default_range_uses_percentiles():
    depth = np.linspace(1, 5, 1000, dtype=np.float32).reshape(20, 50)
    depth[0, 0] = 1000.0  # one outlier must not flatten the picture
    lo, hi = depth_range(depth)
    assert 1.0 < lo < 1.2 and 4.8 < hi < 5.0
    np.testing.assert_array_equal(colorize(depth), colorize(depth, lo, hi))
    assert depth_range(np.zeros((3, 3))) == (0.0, 1.0)
    with pytest.raises(DepthforgeError, match="colour map"):
        colorize(depth, cmap="no-such-map")


def test_legend_matches_colorize():
    stops = legend(1.0, 3.0, n=3)
    assert [m for m, _ in stops] == [1.0, 2.0, 3.0]
    assert stops[0][1] == "#f0f921" and stops[-1][1] == "#0d0887"


# ----- depthforge predict's files (predict.py) -----

class FarModel(DepthModel):
    """Depth from brightness: 1 m (black) to 91 m (white), like a KITTI model (max_depth 80) seeing far road/sky."""

    def __init__(self):
        super().__init__()
        self.set_contract(Contract("metric", 80.0, mean=(0.0,) * 3, std=(1.0,) * 3))

    def forward(self, x):
        return 1.0 + 90.0 * x.mean(1, keepdim=True)


def test_far_depth_is_written_as_kitti256_not_as_invalid(tmp_path):
    from depthforge.inference.photos import collect_inputs, predict_images

    image = np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], 3, axis=2).repeat(8, axis=0)
    Image.fromarray(image).save(tmp_path / "road.png")
    out = tmp_path / "out"
    assert predict_images(from_module(FarModel(), {}, "cpu"), collect_inputs([str(tmp_path / "road.png")]), out,
                          progress=False) == (1, 0)
    assert not (out / "road_depth.png").exists()
    depth = np.load(out / "road.npy")
    assert depth.max() > 90  # beyond 65.535 m: millimetres would not fit in 16 bits
    back = read_depth(out / "road_depth_kitti256.png", "kitti256")
    assert (back > 0).all()
    np.testing.assert_allclose(back, depth, atol=1 / 512)


def test_predict_pairs_dataset_folders_and_reads_their_intrinsics_once(tmp_path, caplog):
    from depthforge.files import write_depth_png
    from depthforge.viz.pointcloud import read_ply
    from depthforge.inference.photos import collect_inputs, predict_images

    data = tmp_path / "scene"
    (data / "rgb").mkdir(parents=True)
    (data / "depth").mkdir()
    gray = np.full((6, 8, 3), 255 * 2 // 9, np.uint8)  # FarModel: 1 + 90 * 2/9 = 21 m
    Image.fromarray(gray).save(data / "rgb" / "a.png")
    write_depth_png(data / "depth" / "a.png", np.full((6, 8), 20.0, np.float32))
    (data / "depth" / "a.txt").write_text("notes")  # not a depth file: must not be taken as a's ground truth
    (data / "intrinsics.txt").write_text("10 10 0 0\n")
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(gray).save(flat / "b.png")
    (tmp_path / "intrinsics.txt").write_text("not for flat/b.png")  # an unrelated file above a flat folder
    items = collect_inputs([str(data), str(flat)])
    assert [(i.image.name, i.gt and i.gt.name) for i in items] == [("a.png", "a.png"), ("b.png", None)]
    np.testing.assert_array_equal(items[0].intrinsics, [[10, 0, 0], [0, 10, 0], [0, 0, 1]])
    assert items[1].intrinsics is None
    assert collect_inputs([str(flat / "b.png")])[0].intrinsics is None
    out = tmp_path / "out"
    caplog.set_level("WARNING")
    assert predict_images(from_module(FarModel(), {}, "cpu"), items, out, ply=True, progress=False) == (2, 0)
    points, _ = read_ply(out / "a.ply")
    z = points[:, 2]
    # pixel (u, v) = (7, 5) with fx = fy = 10 and (cx, cy) = (0, 0) -> x = 7 z / 10, y = 5 z / 10
    np.testing.assert_allclose(points[z.size - 1], [0.7 * z[-1], 0.5 * z[-1], z[-1]], rtol=1e-5)
    assert (out / "a_panel.png").is_file() and not (out / "b_panel.png").exists()
    assert sum("no camera intrinsics" in r.getMessage() for r in caplog.records) == 1  # only b.png guesses


def test_predict_reports_ground_truth_of_the_wrong_size(tmp_path, caplog):
    from depthforge.files import write_depth_png
    from depthforge.inference.photos import collect_inputs, predict_images

    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "rgb" / "a.png")
    write_depth_png(tmp_path / "depth" / "a.png", np.ones((5, 8), np.float32))
    out = tmp_path / "out"
    assert predict_images(from_module(FarModel(), {}, "cpu"), collect_inputs([str(tmp_path)]), out,
                          progress=False) == (0, 1)
    assert any("a.png: depth is 8x5, image is 8x6" in r.getMessage() for r in caplog.records)


def test_panel_uses_the_colour_range_of_the_color_picture():
    from depthforge.viz.figure import choose_scales

    depth = np.random.default_rng(0).uniform(1, 10, (20, 30)).astype(np.float32)
    # a prediction in another range than the ground truth keeps the range of its own _color.png picture
    assert choose_scales(depth, 5 * depth)[0] == depth_range(depth)
    both = np.concatenate([depth.ravel(), 1.1 * depth.ravel()])
    assert choose_scales(depth, 1.1 * depth) == (depth_range(both), depth_range(both), True)
