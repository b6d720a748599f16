import numpy as np
import pytest
from PIL import Image

from depthforge.data.io import DEPTH_ENCODINGS, atomic_path, read_depth, read_image, write_depth_png
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
