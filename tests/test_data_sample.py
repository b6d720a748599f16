"""The shared pieces every dataset builds its samples with: the size check and the list-focal intrinsics rule."""
import numpy as np
import pytest

from depthforge.data.sample import NYU_INTRINSICS_640, check_same_size, make_sample, with_focal
from depthforge.errors import DepthforgeError


def test_check_same_size_names_the_depth_file_and_both_sizes():
    image = np.zeros((5, 7, 3), np.float32)
    check_same_size("d.png", image, np.zeros((5, 7), np.float32))
    check_same_size("d.png", image, None)  # no ground truth: nothing to compare
    with pytest.raises(DepthforgeError, match=r"^gt/d\.png: depth is 8x5, image is 7x5$") as e:
        check_same_size("gt/d.png", image, np.zeros((5, 8), np.float32))
    assert e.value.kind == "wrong size"


def test_with_focal_keeps_the_principal_point_or_centres_it():
    k = with_focal(NYU_INTRINSICS_640, 500.0, 480, 640)
    assert k[0, 0] == k[1, 1] == 500.0
    assert (k[0, 2], k[1, 2]) == (NYU_INTRINSICS_640[0, 2], NYU_INTRINSICS_640[1, 2])
    assert with_focal(None, 100.0, 5, 7).tolist() == [[100, 0, 3], [0, 100, 2], [0, 0, 1]]  # (W-1)/2, (H-1)/2
    assert with_focal(NYU_INTRINSICS_640, None, 480, 640) is NYU_INTRINSICS_640
    assert with_focal(None, None, 5, 7) is None


def test_a_sample_does_not_share_its_intrinsics_with_the_caller():
    k = NYU_INTRINSICS_640.copy()
    s = make_sample(np.zeros((2, 3, 3), np.float32), None, "x", k)
    s["intrinsics"][0, 2] -= 10  # as an in-place transform would
    assert k[0, 2] == NYU_INTRINSICS_640[0, 2]
