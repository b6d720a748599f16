"""``check_dataset`` lists every bad file without stopping; SkipBad lets training run through the same files."""
import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from depthforge.data import SkipBad, build_dataset, collate
from depthforge.data.check import check_dataset, format_report

H, W = 12, 16


def plant(root):
    """A list of 7 pairs: 3 good, a truncated PNG, a missing file, an all-zero depth map, a depth of the wrong size."""
    root.mkdir(parents=True, exist_ok=True)
    r, c = np.mgrid[0:H, 0:W]
    lines = []
    for i in range(7):
        Image.fromarray(np.stack([r * 20, c * 15, np.full_like(r, i)], -1).astype(np.uint8)).save(root / f"{i}.png")
        depth = (1000 + r * 100 + c * 10 + i).astype(np.uint16)
        if i == 5:
            depth[:] = 0
        if i == 6:
            depth = np.ones((H, W + 2), np.uint16)
        Image.fromarray(depth).save(root / f"{i}_d.png")
        lines.append(f"{i}.png,{i}_d.png")
    (root / "3_d.png").write_bytes((root / "3_d.png").read_bytes()[:60])  # truncated
    (root / "4_d.png").unlink()  # missing
    (root / "test.csv").write_text("rgb,depth\n" + "\n".join(lines) + "\n")
    return {"name": "folder", "root": str(root), "depth_encoding": "mm"}


@pytest.fixture
def planted(tmp_path):
    return plant(tmp_path)


def test_check_lists_every_bad_file(planted, tmp_path):
    report = check_dataset(planted, splits=("train", "test"), progress=False)
    train, test = report.splits
    assert train.error is not None and "no rgb/ folder, no train.csv" in train.error  # listed, not raised
    assert test.count == test.checked == 7 and test.sizes == {f"{W}x{H}": 4}
    kinds = {p.index: p.kind for p in test.problems}
    assert kinds == {3: "unreadable", 4: "missing", 5: "all-invalid", 6: "wrong size"}
    assert all(p.skipped for p in test.problems) and test.skipped == 4 and not report.ok
    assert "3_d.png" in test.problems[0].message and "4_d.png" in test.problems[1].message
    assert test.depth_min == pytest.approx(1.0) and test.depth_max == pytest.approx((1000 + 1100 + 150 + 2) / 1000)
    assert test.valid_share == pytest.approx(1.0)
    text = format_report(report)
    for needle in ("test", "1.00-2.25", "[missing] #4", "[unreadable] #3", "[all-invalid] #5", "[wrong size] #6",
                   "training skips 4 of 7", "train: cannot open"):
        assert needle in text, needle
    assert report.to_dict()["splits"][1]["problems"][0]["kind"] == "unreadable"


def test_problem_kinds_do_not_depend_on_words_in_the_path(tmp_path):
    spec = plant(tmp_path / "not found, depth is truncated, cannot")
    test = check_dataset(spec, splits=("test",), progress=False).splits[0]
    assert {p.index: p.kind for p in test.problems} == {3: "unreadable", 4: "missing", 5: "all-invalid",
                                                         6: "wrong size"}


def test_check_in_worker_processes_and_with_a_limit(planted):
    report = check_dataset(planted, splits=("test",), workers=2, progress=False)
    assert sorted(p.index for p in report.splits[0].problems) == [3, 4, 5, 6]
    limited = check_dataset(planted, splits=("test",), limit=4, progress=False).splits[0]
    assert limited.checked == 4 and [p.index for p in limited.problems] == [3]
    assert "4 of 7" in format_report(check_dataset(planted, splits=("test",), limit=4, progress=False))


def test_check_flags_frames_of_an_unexpected_size(tmp_path):
    """NYU frames are 480x640: a smaller one loads (training would not skip it) but the check lists it."""
    import io
    import zipfile

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    with zipfile.ZipFile(tmp_path / "nyu_data.zip", "w") as z:
        rows = []
        for i, (h, w) in enumerate(((480, 640), (240, 320))):
            z.writestr(f"data/nyu2_test/{i}_colors.png", png(np.full((h, w, 3), 90, np.uint8)))
            z.writestr(f"data/nyu2_test/{i}_depth.png", png(np.full((h, w), 2500, np.uint16)))
            rows.append(f"data/nyu2_test/{i}_colors.png,data/nyu2_test/{i}_depth.png")
        z.writestr("data/nyu2_test.csv", "\n".join(rows))
    test = check_dataset(str(tmp_path / "nyu_data.zip"), splits=("test",), progress=False).splits[0]
    assert [(p.index, p.kind, p.skipped) for p in test.problems] == [(1, "wrong size", False)]
    assert "1_colors: image is 320x240, the dataset's frames are 640x480" in test.problems[0].message
    assert test.skipped == 0 and test.depth_min == test.depth_max == pytest.approx(2.5)


def test_cli_encoding_keeps_the_detected_layout(tmp_path, capsys):
    import io
    import zipfile

    from depthforge.cli import main

    buf = io.BytesIO()
    Image.fromarray(np.full((H, W), 2500, np.uint16)).save(buf, format="PNG")
    with zipfile.ZipFile(tmp_path / "nyu_data.zip", "w") as z:
        z.writestr("data/nyu2_test/0_colors.png", Image.new("RGB", (W, H)).tobytes())  # not a PNG: unreadable
        z.writestr("data/nyu2_test/0_depth.png", buf.getvalue())
        z.writestr("data/nyu2_test.csv", "data/nyu2_test/0_colors.png,data/nyu2_test/0_depth.png\n")
    assert main(["data", "check", str(tmp_path / "nyu_data.zip"), "--encoding", "mm", "--splits", "test"]) == 1
    out = capsys.readouterr().out
    assert "cannot open" not in out and "nyu_data.zip!data/nyu2_test/0_colors.png: not an image file" in out, out
    # an unknown encoding is a bad option, refused in one line before any split is read
    assert main(["data", "check", str(tmp_path / "nyu_data.zip"), "--encoding", "cm", "--splits", "test"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --encoding: unknown depth encoding 'cm'") and err.count("\n") == 1


def test_cli_checks_a_registered_dataset_by_name(monkeypatch):
    from depthforge.cli import main
    from depthforge.data import check

    specs = []
    monkeypatch.setattr(check, "check_dataset", lambda spec, splits: specs.append(spec) or check.DatasetReport("x", []))
    assert main(["data", "check", "synth", "--encoding", "mm"]) == 0
    assert specs == [{"name": "synth", "depth_encoding": "mm"}]


@pytest.mark.parametrize("workers", [0, 2])
def test_skipbad_dataloader_runs_through_and_counts(planted, workers, caplog):
    ds = SkipBad(build_dataset(planted))
    seen = []
    for _ in range(2):  # two epochs: each bad sample is counted and logged once
        for batch in DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=collate):
            if batch is not None:
                seen += batch["name"]
    assert sorted(seen) == ["0", "0", "1", "1", "2", "2"]
    assert ds.num_skipped == 4
    if workers == 0:
        assert sum("skipping sample" in r.message for r in caplog.records) == 4
