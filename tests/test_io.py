import io

import numpy as np
import pytest
from PIL import Image

from depthforge.data.io import DEPTH_ENCODINGS, read_depth, read_image

from depthforge.files import atomic_path, write_depth_png
from depthforge.errors import DepthforgeError


def test_depth_png_round_trip_in_millimetres(tmp_path):
    depth = np.array([[0.0, 1.2345], [9.999, np.nan]], np.float32)
    write_depth_png(tmp_path / "d.png", depth)
    raw = np.asarray(Image.open(tmp_path / "d.png"))
    assert raw.dtype == np.uint16
    assert raw[0, 0] == 0 and raw[0, 1] in (1234, 1235) and raw[1, 0] == 9999 and raw[1, 1] == 0
    back = read_depth(tmp_path / "d.png", "mm")
    assert back.dtype == np.float32 and back[1, 1] == 0 and abs(back[1, 0] - 9.999) < 1e-6


def test_encodings_convert_units_once():
    v = np.array([[0, 5000, 256]], np.uint16)
    assert DEPTH_ENCODINGS["tum5000"](v)[0, 1] == 1.0
    assert DEPTH_ENCODINGS["kitti256"](v)[0, 2] == 1.0
    rotated = np.array([[(1500 << 3 | 1500 >> 13) & 0xFFFF]], np.uint16)  # SUN RGB-D stores mm rotated left by 3
    assert DEPTH_ENCODINGS["sunrgbd"](rotated)[0, 0] == pytest.approx(1.5)


@pytest.mark.parametrize("content,match", [(b"hello", "not an image"), (None, "not found")])
def test_bad_images_are_one_line_errors(tmp_path, content, match):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DepthforgeError, match=match) as e:
        read_image(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_truncated_png_is_reported(tmp_path):
    path = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DepthforgeError, match="t.png"):
        read_image(path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_depth_png_never_writes_valid_depth_as_invalid(tmp_path):
    from depthforge.encode import depth_to_png16

    depth = np.array([[100.0, 0.0001, -1.0, np.inf, 65.5349]], np.float32)
    raw = np.asarray(Image.open(io.BytesIO(depth_to_png16(depth))))
    # beyond 65.535 m is clipped to the largest value, a tiny depth to the smallest; invalid stays 0
    assert raw.tolist() == [[65535, 1, 0, 0, 65535]]
    raw = np.asarray(Image.open(io.BytesIO(depth_to_png16(np.array([[80.0, 300.0]]), scale=256))))
    assert raw.tolist() == [[20480, 65535]]


def test_png16_encoding_follows_max_depth_and_names_the_file(tmp_path):
    from depthforge.encode import PNG16_SCALES, depth_png_name, png16_encoding

    assert png16_encoding(10.0) == "mm" and png16_encoding(65.535) == "mm"
    assert png16_encoding(80.0) == "kitti256" and png16_encoding(float("inf")) == "kitti256"
    assert png16_encoding(0.0) == "kitti256" and png16_encoding(float("nan")) == "kitti256"  # unknown: the wide one
    assert depth_png_name("a_depth", "mm") == "a_depth.png"
    assert depth_png_name("a_depth", "kitti256") == "a_depth_kitti256.png"
    with pytest.raises(DepthforgeError, match="tum5000"):
        depth_png_name("a_depth", "tum5000")
    depth = np.array([[1.0, 79.9]], np.float32)
    write_depth_png(tmp_path / "k.png", depth, PNG16_SCALES["kitti256"])
    np.testing.assert_allclose(read_depth(tmp_path / "k.png", "kitti256"), depth, atol=1 / 512)


def test_image_and_npy_bytes():
    from depthforge.encode import image_bytes, npy_bytes, to_uint8

    u8 = np.array([[[0, 128, 255]]], np.uint8)
    assert to_uint8(u8) is u8
    assert to_uint8(np.array([[[-0.5, 0.5, 2.0]]])).tolist() == [[[0, 128, 255]]]
    image = np.random.default_rng(0).random((6, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(image_bytes(image, "png")))), to_uint8(image))
    jpeg = Image.open(io.BytesIO(image_bytes(image, "jpeg")))
    assert jpeg.format == "JPEG" and jpeg.size == (7, 6)
    with pytest.raises(DepthforgeError, match="png or jpeg"):
        image_bytes(image, "gif")
    back = np.load(io.BytesIO(npy_bytes(np.arange(4, dtype=np.float64))), allow_pickle=False)
    assert back.dtype == np.float32 and back.tolist() == [0, 1, 2, 3]
