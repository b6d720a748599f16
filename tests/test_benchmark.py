"""``depthforge benchmark``: the alignment protocols as the papers name them, per-set figures against hand
computations on tiny sets in their native layouts, resuming without recomputing, pair accuracy, bad input, and the
real frames of ../shared/realdata."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, make_checkpoint
from test_data_ibims import write_ibims

from depthforge.cli import main
from depthforge.data import build_dataset
from depthforge.errors import DepthforgeError
from depthforge.evaluation import benchmark as bm
from depthforge.evaluation.benchmark import ALIGNMENTS, alignment_for, benchmark, score_image
from depthforge.evaluation.metrics import Protocol, get_protocol
from depthforge.inference.load import open_model

H, W = 48, 64


def sample_of(gt: np.ndarray) -> dict:
    """A collated batch of one around ground truth ``gt`` (H,W) metres."""
    depth = torch.from_numpy(gt.astype(np.float32))[None, None]
    return {"depth": depth, "valid": depth > 0, "image": torch.zeros(1, 3, *gt.shape), "name": ["x"]}


def scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.8, 9.0, (H, W))
    gt[:3] = 0  # holes
    return gt


@pytest.mark.parametrize("space, matching, other", [
    ("depth", ["marigold", "moge-affine-depth"], ["depth-anything", "moge-affine-disparity", "moge-scale"]),
    ("disparity", ["depth-anything", "moge-affine-disparity"], ["marigold", "moge-affine-depth", "moge-scale"]),
])
def test_an_exact_affine_transform_scores_zero_only_under_its_protocol(space, matching, other):
    gt = scene()
    with np.errstate(divide="ignore"):
        pred = 0.37 * gt + 1.5 if space == "depth" else 1.0 / np.where(gt > 0, 2.0 / gt + 0.3, 1.0)
    crop = get_protocol("none")
    for protocol in matching + other:
        mode = alignment_for(protocol, "relative", "m")[1]
        row, _ = score_image(pred, sample_of(gt), crop, mode, "relative")
        if protocol in matching:
            assert row["abs_rel"] < 1e-6 and row["d1"] == 1.0, protocol
        else:
            assert row["abs_rel"] > 0.02, protocol


def test_scale_only_and_metric_protocols():
    gt, crop = scene(1), get_protocol("none")
    scaled, _ = score_image(3.0 * gt, sample_of(gt), crop, alignment_for("moge-scale", "relative", "m")[1],
                            "relative")
    shifted, _ = score_image(3.0 * gt + 1, sample_of(gt), crop, alignment_for("moge-scale", "relative", "m")[1],
                             "relative")
    assert scaled["abs_rel"] < 1e-6 and shifted["abs_rel"] > 0.02
    for name in ("metric", "moge-metric"):
        same, _ = score_image(gt, sample_of(gt), crop, alignment_for(name, "metric", "m")[1], "metric")
        off, _ = score_image(1.1 * gt, sample_of(gt), crop, alignment_for(name, "metric", "m")[1], "metric")
        assert same["abs_rel"] == 0 and off["abs_rel"] == pytest.approx(0.1, rel=1e-5)


def test_marigold_clips_the_aligned_prediction_to_the_sets_valid_range():
    """Marigold clips to the dataset's valid range after the fit: a pixel aligned beyond the cap counts at it."""
    gt = np.linspace(1.0, 9.8, 16).reshape(4, 4)
    pred = gt.copy()
    pred[-1, -1] = 14.0  # the far corner predicted too far: aligned beyond the 10 m cap
    mode = alignment_for("marigold", "relative", "m")[1]
    capped, depth = score_image(pred, sample_of(gt), Protocol("none", 1e-3, 10.0), mode,
                                "relative")
    fitted = bm.to_metres(pred, gt, gt > 0, "relative", mode)
    by_hand = np.clip(fitted, 1e-3, 10.0)
    assert fitted.max() > 10 and capped["abs_rel"] == pytest.approx(np.mean(np.abs(by_hand - gt) / gt), rel=1e-5)


def test_output_kinds_a_protocol_cannot_align_are_one_line():
    for protocol, output in (("marigold", "disparity"), ("metric", "relative"), ("moge-metric", "disparity"),
                             ("moge-scale", "disparity")):
        with pytest.raises(DepthforgeError, match=f"predicts {output}.*cannot align"):
            alignment_for(protocol, output, "m")
    assert set(ALIGNMENTS) >= {"marigold", "depth-anything", "moge-affine-disparity", "moge-affine-depth",
                               "moge-scale", "moge-metric", "metric"}


def test_a_sample_with_point_pairs_is_scored_by_pair_accuracy():
    """DA-2K-like samples: pairs (y1, x1, y2, x2) with the closer point marked are scored on the raw output, and
    the runner keeps such a sample although it has no valid depth pixel."""
    depth = np.tile(np.linspace(1, 5, W), (H, 1))  # nearer on the left
    pairs = torch.tensor([[[0, 1, 0, 50], [5, 40, 5, 10], [9, 3, 9, 60], [2, 30, 2, 20]]])
    closer = torch.tensor([[0, 1, 0, 0]])  # the last one is wrong: x=20 is nearer than x=30
    sample = {"image": torch.zeros(1, 3, H, W), "pairs": pairs, "closer": closer, "name": ["p"]}
    row, _ = score_image(depth, sample, get_protocol("none"), "lstsq", "metric")
    assert row == {"pair_accuracy": 0.75}
    row, _ = score_image(1 / depth, sample, get_protocol("none"), "lstsq-disparity", "disparity")
    assert row == {"pair_accuracy": 0.75}

    class Constant:
        output = "metric"

        def predict_tensor(self, images):
            return torch.from_numpy(depth.astype(np.float32))[None, None]

    rows, skipped, worst = bm.run_pair(Constant(), [{**{k: v[0] for k, v in sample.items() if k != "name"},
                                                     "name": "p", "valid": torch.zeros(1, H, W, dtype=bool)}],
                                       get_protocol("none"), "none", None, _NoBar())
    assert rows == [{"name": "p", "pair_accuracy": 0.75}] and skipped == 0 and worst[0]["gt"] is None


class _NoBar:
    def update(self, n):
        pass


def write_tum(folder: Path, n: int = 2) -> list[np.ndarray]:
    """realdata's TUM layout: rgb_N.png and depth_N.png (uint16, metres x 5000, 0 invalid); returns the depths."""
    folder.mkdir(parents=True)
    depths = []
    for i in range(1, n + 1):
        rng = np.random.default_rng(i)
        raw = rng.integers(2500, 40000, (H, W)).astype(np.uint16)
        raw[:, :4] = 0
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(folder / f"rgb_{i}.png")
        Image.fromarray(raw).save(folder / f"depth_{i}.png")
        depths.append(raw / 5000.0)
    return depths


@pytest.fixture
def root(tmp_path):
    """A data root with an iBims-1 set and a realdata TUM set, in their native layouts."""
    write_ibims(tmp_path / "data" / "ibims1")
    write_tum(tmp_path / "data" / "realdata" / "tum")
    return tmp_path / "data"


@pytest.fixture
def models(tmp_path):
    return [str(make_checkpoint(tmp_path / f"m{s}.ckpt", size=(32, 48), seed=s)) for s in (0, 1)]


def by_hand(source: str, dataset, cap: float) -> dict[str, float]:
    """Marigold's protocol written out: least-squares s, t over gt in (1e-3, cap) on valid pixels; s·pred + t
    clipped to (1e-3, cap); AbsRel and δ1 per image, then the mean."""
    predictor = open_model(source, resize="train").predictor
    abs_rel, d1 = [], []
    for i in range(len(dataset)):
        s = dataset[i]
        gt, valid = s["depth"][0].numpy().astype(np.float64), s["valid"][0].numpy()
        raw = predictor.predict_tensor(s["image"][None])[0, 0].numpy().astype(np.float64)
        m = valid & (gt > 1e-3) & (gt < cap)
        a = np.stack([raw[m], np.ones(m.sum())], 1)
        scale, shift = np.linalg.lstsq(a, gt[m], rcond=None)[0]
        p = np.clip(scale * raw[m] + shift, 1e-3, cap)
        abs_rel.append(np.mean(np.abs(p - gt[m]) / gt[m]))
        d1.append(np.mean(np.maximum(p / gt[m], gt[m] / p) < 1.25))
    return {"abs_rel": float(np.mean(abs_rel)), "d1": float(np.mean(d1))}


def test_figures_equal_hand_computations_and_a_second_call_recomputes_nothing(root, models, tmp_path, monkeypatch):
    calls = []
    opened = bm.open_for_eval

    def counting(source, device, flip):
        o = opened(source, device, flip)
        predict = o.predictor.predict_tensor
        o.predictor.predict_tensor = lambda x: calls.append(source) or predict(x)
        return o

    monkeypatch.setattr(bm, "open_for_eval", counting)
    out = tmp_path / "out"
    report = benchmark(models, root=root, protocol="marigold", out=out, progress=False, pictures=False)
    assert len(calls) == 2 * (2 + 2)  # two models, two images in each of two sets
    sets = {"ibims1": build_dataset({"name": "ibims1", "root": str(root / "ibims1")}),
            "realdata-tum": build_dataset({"name": "realdata-tum", "root": str(root / "realdata")})}
    assert list(report["sets"]) == ["ibims1", "realdata-tum"]
    tum = np.asarray(Image.open(root / "realdata" / "tum" / "depth_1.png"), np.float64) / 5000  # TUM: 1/5000 m
    np.testing.assert_allclose(sets["realdata-tum"][0]["depth"][0].numpy(), tum, rtol=1e-6)
    want = {m: {n: by_hand(m, ds, 10.0) for n, ds in sets.items()} for m in models}
    labels = [m["label"] for m in report["models"]]
    for label, m in zip(labels, models):
        for n in sets:
            got = report["results"][label][n]
            assert got["abs_rel"] == pytest.approx(want[m][n]["abs_rel"], rel=1e-4), (m, n)
            assert got["d1"] == pytest.approx(want[m][n]["d1"], abs=1e-9), (m, n)
    # average rank over the four columns: 1 for the better model of a column, 2 for the other
    ranks = {m: [] for m in models}
    for n in sets:
        a, b = models
        for c, lower in (("abs_rel", True), ("d1", False)):
            if want[a][n][c] == want[b][n][c]:
                ranks[a].append(1.5), ranks[b].append(1.5)
            else:
                first = a if (want[a][n][c] < want[b][n][c]) == lower else b
                ranks[first].append(1), ranks[b if first == a else a].append(2)
    for label, m in zip(labels, models):
        assert report["rank"][label] == pytest.approx(np.mean(ranks[m]))
    md = (out / "benchmark.md").read_text()
    assert "ibims1 AbsRel ↓" in md and "realdata-tum δ1 ↑" in md and "avg. rank" in md and "| marigold |" in md
    assert "full frame, valid depth 0.001–10 m" in md
    assert json.loads((out / "benchmark.json").read_text())["results"] == report["results"]

    again = benchmark(models, root=root, protocol="marigold", out=out, progress=False, pictures=False)
    assert len(calls) == 8 and again["results"] == report["results"]  # nothing recomputed

    with pytest.raises(DepthforgeError, match="stored by a run with protocol marigold.*--overwrite"):
        benchmark(models, root=root, protocol="depth-anything", out=out, progress=False)
    benchmark(models[:1], root=root, protocol="depth-anything", out=out, progress=False, overwrite=True,
              pictures=False)
    assert len(calls) == 12


def test_an_interrupted_run_resumes_with_the_unfinished_pairs_only(root, models, tmp_path, monkeypatch):
    real, ran = bm.run_pair, []

    def interrupted(predictor, dataset, *args):
        if len(ran) == 1:
            raise KeyboardInterrupt
        ran.append(dataset)
        return real(predictor, dataset, *args)

    monkeypatch.setattr(bm, "run_pair", interrupted)
    out = tmp_path / "out"
    with pytest.raises(DepthforgeError, match="interrupted: 1 more pairs finished.*run the same command again"):
        benchmark(models[:1], root=root, out=out, progress=False, pictures=False)
    assert len(list((out / "pairs").glob("*/*.json"))) == 1 and not (out / "benchmark.md").exists()
    monkeypatch.setattr(bm, "run_pair", lambda *a: ran.append(a[1]) or real(*a))
    report = benchmark(models[:1], root=root, out=out, progress=False, pictures=False)
    assert len(ran) == 2 and ran[0] is not ran[1]  # only the second set ran again
    assert set(report["results"][report["models"][0]["label"]]) == {"ibims1", "realdata-tum"}
    assert report["models"][0]["protocol"] == "metric"  # a metric model's default


def run_cli(*args) -> tuple[int, str]:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        rc = main(["benchmark", *args, "--no-progress"])
    return rc, err.getvalue()


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_input_is_one_line(root, models, tmp_path, monkeypatch):
    monkeypatch.delenv(bm.ENV, raising=False)
    out = str(tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, err = run_cli("--model", models[0], "--root", str(empty), "--out", out)
    assert rc == 1 and "no recognised benchmark; looked for" in one_line(err)
    assert f"ibims1 ({empty / 'ibims1'})" in err and "nyu (" in err and "realdata-tum (" in err
    rc, err = run_cli("--model", models[0], "--out", out)
    assert rc == 1 and "no data root: pass --root DIR or set DEPTHFORGE_DATA" in one_line(err)
    rc, err = run_cli("--model", models[0], "--root", str(root), "--sets", "eth3dd", "--out", out)
    assert rc == 1 and "--sets eth3dd: no such benchmark set" in one_line(err)
    rc, err = run_cli("--model", models[0], "--root", str(root), "--sets", "nyu", "--out", out)
    assert rc == 1 and "benchmark set not found: nyu" in one_line(err)

    # a model whose output the protocol cannot align
    from depthforge import build_model
    from depthforge.models.checkpoint import meta, save_model

    model = build_model("seed-unet", **TINY)
    model.set_contract(replace(model.contract, output="disparity", input_size=(32, 48)))
    disp = tmp_path / "disp.ckpt"
    save_model(disp, model, meta("seed-unet", TINY, model))
    rc, err = run_cli("--model", models[0], "--model", str(disp), "--root", str(root), "--protocol", "marigold",
                      "--out", out)
    assert rc == 1 and "predicts disparity depth, which protocol 'marigold' cannot align" in one_line(err)
    assert not list(Path(out).glob("pairs/*/*.json"))  # refused before the first model ran

    # a set whose folder lacks its files is skipped and counted; the others run
    (root / "nyu").mkdir()
    monkeypatch.setenv(bm.ENV, str(root))
    rc, err = run_cli("--model", models[0], "--out", out, "--sets", "nyu,ibims1", "--limit", "1")
    assert rc == 0
    report = json.loads((Path(out) / "benchmark.json").read_text())
    assert list(report["sets"]) == ["ibims1"] and report["sets"]["ibims1"]["images"] == 1
    assert "files of nyu missing" in report["skipped_sets"]["nyu"]
    assert "nyu: skipped" in (Path(out) / "benchmark.md").read_text()
    page = (Path(out) / "index.html").read_text()
    assert "ibims1: worst images" in page and page.count("data:image/png;base64") == 1
    # only sets with missing files: nothing to run
    rc, err = run_cli("--model", models[0], "--out", out, "--sets", "nyu")
    assert rc == 1 and "no benchmark set could be read" in one_line(err)


def test_realdata_sets_read_the_shared_frames(realdata):
    counts = {"nyu": 5, "kitti": 3, "tum": 2, "sunrgbd": 1}
    for subset, n in counts.items():
        ds = build_dataset({"name": f"realdata-{subset}", "root": str(realdata)})
        s = ds[0]
        assert len(ds) == n and s["image"].shape[0] == 3 and s["depth"].shape[1:] == s["image"].shape[1:]
        top = float(s["depth"].max())
        assert (top < 10 if subset != "kitti" else 70 < top < 90), (subset, top)
    found, skipped = bm.find_sets(realdata.parent, ["realdata"])
    assert set(found) == {f"realdata-{s}" for s in counts} and not skipped


def test_eval_and_compare_take_a_benchmark_set_by_name_under_the_data_root(root, monkeypatch):
    """``--data realdata-tum`` (eval, compare beside its suites) finds the set where ``benchmark`` does."""
    from depthforge.evaluation.evaluate import dataset_spec

    monkeypatch.setenv(bm.ENV, str(root))
    spec = dataset_spec(None, "realdata-tum")
    assert spec == {"name": "realdata-tum", "root": str(root / "realdata"), "subset": "tum", "size": (240, 320)}
    assert len(build_dataset(spec)) == 2


def test_da2k_runs_end_to_end_scored_by_pair_accuracy(models, tmp_path):
    """A DA-2K root: the set has no valid depth, is kept, and its column is the share of pairs in the right order
    of the raw prediction (smaller depth = closer for a metric model), computed here by hand."""
    from test_data_benchmarks import write_da2k

    write_da2k(tmp_path / "data" / "da2k")
    report = benchmark(models[:1], root=tmp_path / "data", out=tmp_path / "out", progress=False, pictures=False)
    ds = build_dataset({"name": "da2k", "root": str(tmp_path / "data" / "da2k")})
    predictor = open_model(models[0], resize="train").predictor
    right = []
    for i in range(len(ds)):
        s = ds[i]
        raw = predictor.predict_tensor(s["image"][None])[0, 0].numpy()
        for (y1, x1, y2, x2), c in zip(s["pairs"].tolist(), s["closer"].tolist()):
            near, far = ((y1, x1), (y2, x2)) if c == 0 else ((y2, x2), (y1, x1))
            right.append(raw[near] < raw[far])
    got = report["results"][report["models"][0]["label"]]["da2k"]
    assert report["sets"]["da2k"]["columns"] == ["pair_accuracy"] and got["images"] == 2
    # per image, then the mean, as every figure of the table
    assert got["pair_accuracy"] == pytest.approx(np.mean([np.mean(right[:2]), np.mean(right[2:])]))
    assert "da2k acc ↑" in (tmp_path / "out" / "benchmark.md").read_text()
