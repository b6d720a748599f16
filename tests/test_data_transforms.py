"""Depth-correct augmentation: geometry moves depth and intrinsics together, colour touches the image only."""
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from depthforge.data import SkipBad, collate
from depthforge.data.sample import intrinsics_matrix, make_sample
from depthforge.data.transforms import (adjust_color, build_eval_transform, build_train_transform, crop, hflip,
                                        random_crop, resize, rotate)
from depthforge.errors import DepthforgeError

H, W = 24, 32


def sample(seed: int = 0, holes: bool = True, k: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    image = rng.random((H, W, 3), dtype=np.float32)
    depth = rng.uniform(0.5, 10.0, (H, W)).astype(np.float32)
    if holes:
        depth[rng.random((H, W)) < 0.3] = 0
    return make_sample(image, depth, f"s{seed}", intrinsics_matrix(30.0, 30.0, 15.0, 11.0) if k else None)


def test_hflip_mirrors_pixels_and_principal_point():
    s = sample()
    f = hflip(s)
    assert torch.equal(f["depth"][..., 0], s["depth"][..., -1]) and torch.equal(f["image"][..., 3], s["image"][..., -4])
    assert f["intrinsics"][0, 2] == pytest.approx(W - 1 - 15.0) and f["intrinsics"][1, 2] == 11.0
    back = hflip(f)
    assert torch.equal(back["depth"], s["depth"]) and torch.equal(back["intrinsics"], s["intrinsics"])


def test_crop_keeps_metres_and_moves_the_principal_point():
    s = sample()
    c = crop(s, 4, 6, 16, 20)
    assert c["depth"].shape == (1, 16, 20)
    assert torch.equal(c["depth"], s["depth"][:, 4:20, 6:26]) and torch.equal(c["valid"], s["valid"][:, 4:20, 6:26])
    assert (c["intrinsics"][0, 2], c["intrinsics"][1, 2]) == (15.0 - 6, 11.0 - 4)
    with pytest.raises(DepthforgeError, match="s0: crop 40x16 at"):
        crop(s, 0, 0, 16, 40)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(random_crop(s, (8, 8), g1)["depth"], random_crop(s, (8, 8), g2)["depth"])


def test_resize_never_blends_depth():
    s = sample()
    for size in ((12, 16), (37, 41)):
        r = resize(s, size)
        values = set(s["depth"].unique().tolist())
        assert set(r["depth"][r["valid"]].unique().tolist()) <= values
        assert torch.equal(r["valid"], r["depth"] > 0)


def test_rotation_keeps_valid_values_unblended_and_borders_invalid():
    s = sample(holes=False)
    r = rotate(s, 2.5)
    assert r["depth"].shape == s["depth"].shape
    values = set(s["depth"].flatten().tolist())
    assert set(r["depth"][r["valid"]].tolist()) <= values  # every valid pixel is one measured value
    assert not r["valid"].all() and r["valid"].float().mean() > 0.9  # rotated-in corners are invalid
    assert (r["depth"][~r["valid"]] == 0).all()
    # about the principal point: a camera roll, the intrinsics do not change
    assert torch.equal(r["intrinsics"], s["intrinsics"])
    assert rotate(s, 0) is s


def test_rotation_direction_and_centre():
    depth = np.zeros((9, 9), np.float32)
    depth[4, 7] = 5.0  # right of the centre
    s = make_sample(np.zeros((9, 9, 3), np.float32), depth, "x")
    r = rotate(s, 90)  # counter-clockwise as displayed: right of centre goes above it
    assert r["depth"][0, 1, 4] == 5.0 and int(r["valid"].sum()) == 1


def test_colour_jitter_leaves_depth_untouched():
    s = sample()
    j = adjust_color(s, brightness=1.2, contrast=0.8, saturation=0.5, gamma=1.1)
    assert j["depth"] is s["depth"] and j["valid"] is s["valid"] and j["intrinsics"] is s["intrinsics"]
    assert not torch.allclose(j["image"], s["image"]) and 0 <= float(j["image"].min()) <= float(j["image"].max()) <= 1
    grey = adjust_color(s, saturation=0.0)["image"]
    assert torch.allclose(grey[0], grey[1], atol=1e-6) and torch.allclose(grey[1], grey[2], atol=1e-6)
    assert torch.equal(adjust_color(s)["image"], s["image"])


FULL = {"hflip": 0.5, "crop": True, "rotate": 2.5,
        "jitter": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "gamma": [0.9, 1.1]}}


def test_train_transform_sizes_and_empty_config():
    s = sample()
    plain = build_train_transform({}, (12, 16))(s)
    assert torch.equal(plain["depth"], resize(s, (12, 16))["depth"])
    out = build_train_transform(FULL, (16, 20))(s)
    assert out["image"].shape == (3, 16, 20) and out["depth"].shape == (1, 16, 20)
    assert set(out["depth"][out["valid"]].tolist()) <= set(s["depth"].flatten().tolist())
    small = build_train_transform({"crop": True}, (30, 40))(s)  # smaller than the crop: enlarged first
    assert small["depth"].shape == (1, 30, 40)
    sized = build_train_transform({"crop": [12, 12]}, (24, 24))(s)  # crop 12x12 at native scale, then resize
    assert sized["depth"].shape == (1, 24, 24)
    assert build_eval_transform((12, 16))(s)["depth"].shape == (1, 12, 16) and build_eval_transform(None)(s) is s


def test_train_transform_is_reproducible_under_a_seed():
    def run(seed):
        torch.manual_seed(seed)
        t = build_train_transform(FULL, (16, 20))
        return [t(sample(i)) for i in range(4)]

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x["image"], y["image"]) and torch.equal(x["depth"], y["depth"]) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x["image"], y["image"]) for x, y in zip(a, c, strict=True))
    t = build_train_transform(FULL, (16, 20))
    t2 = pickle.loads(pickle.dumps(t))
    assert torch.equal(t.seed(5)(sample())["image"], t2.seed(5)(sample())["image"])


class _Samples(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return sample(i)


def test_workers_draw_their_own_augmentations_reproducibly():
    t = build_train_transform({"jitter": {"brightness": [0.5, 0.9]}}, (H, W))  # darker: no clamping

    def epoch():
        torch.manual_seed(7)
        t(sample())  # used in the parent first: the forked workers must not continue its generator
        loader = DataLoader(SkipBad(_Samples(), t), batch_size=1, num_workers=2, collate_fn=collate)
        return torch.cat([b["image"] for b in loader])

    first, second = epoch(), epoch()
    assert torch.equal(first, second)
    gains = [float(first[i].mean() / sample(i)["image"].mean()) for i in range(4)]
    assert len({round(g, 4) for g in gains}) == 4  # not the same draw in both workers


def test_bad_augment_config_is_one_line():
    with pytest.raises(DepthforgeError, match="augment: unknown option"):
        build_train_transform({"flip": 0.5}, (8, 8))
    with pytest.raises(DepthforgeError, match="augment.jitter.gamma"):
        build_train_transform({"jitter": {"gamma": "x"}}, (8, 8))
    with pytest.raises(DepthforgeError, match="crop 40x40 is larger"):
        build_train_transform({"crop": [40, 40]}, (8, 8))(sample())


def test_benchmark_masks_follow_every_geometric_change():
    """Masks a benchmark adds (edges, glass, depth_through) move with the depth: nearest neighbour, same crop,
    same flip, same rotation; bool masks stay bool."""
    from depthforge.data.transforms import crop, hflip, resize, rotate

    torch.manual_seed(0)
    depth = torch.rand(1, 24, 32) * 5 + 1
    sample = {"image": torch.rand(3, 24, 32), "depth": depth, "valid": depth > 0, "name": "s",
              "edges": depth > 3.5, "depth_through": depth + 1.0, "clutter": 3.0}
    for out in (resize(sample, (12, 16)), hflip(sample), crop(sample, 2, 3, 10, 12), rotate(sample, 10.0)):
        assert out["edges"].dtype == torch.bool and out["edges"].shape == out["depth"].shape
        inside = out["depth"] > 0
        # the mask and the second depth map stay attached to the same pixels as the depth
        assert torch.equal(out["edges"][inside], out["depth"][inside] > 3.5)
        assert torch.allclose(out["depth_through"][inside], out["depth"][inside] + 1.0)
        assert out["clutter"] == 3.0
