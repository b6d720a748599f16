"""``depthforge compare`` and the failure-mode columns of ``depthforge eval``: report files and keys, the best
value per column in the right direction, relative models flagged as aligned, recipes under one budget."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

from conftest import liven, make_checkpoint
from depthforge.errors import DepthforgeError
from depthforge.evaluation.compare import model_label, best, budget_recipes, check_suites, compare, parse_recipe
from depthforge.evaluation.evaluate import evaluate, per_image
from depthforge.evaluation.metrics import get_protocol
from depthforge.evaluation.report import higher_is_better, markdown_table

# The smallest seed U-Net recipe that trains: a few scenes at 48x64.
TINY_DATA = "data.n=12,data.size=[48,64],test_data.n=3,train.batch_size=4,model.levels=2"


def recipe_checkpoint(path, seed: int = 0, width: float = 0.25):
    """A tiny untrained seed U-Net saved with its recipe (quick at 48x64, 2 test scenes), as training saves one."""
    from dataclasses import replace

    from depthforge import build_model
    from depthforge.models.checkpoint import meta, save_model
    from depthforge.recipe import resolve

    recipe = resolve("quick", ["data.size=[48,64]", "test_data.n=2", f"model.width={width}", "model.levels=2"])
    torch.manual_seed(seed)
    kwargs = {"width": width, "levels": 2}
    model = build_model("seed-unet", **kwargs)
    model.set_contract(replace(model.contract, input_size=(48, 64)))
    save_model(path, model, meta("seed-unet", kwargs, model, recipe.to_dict()))
    return path


def hf_folder(path, live: bool = False):
    """A tiny random Depth Anything V2 (relative: disparity) saved as a Hugging Face folder, as test_models_hf;
    ``live``: weights of unit gain (``conftest.liven``), so outputs vary by O(1)."""
    import transformers
    from depthforge.models import hf

    torch.manual_seed(0)
    net = transformers.DepthAnythingForDepthEstimation(transformers.DepthAnythingConfig.from_dict(
        dict(hf.DepthAnythingV2.micro))).eval()
    if live:
        liven(net)
    net.save_pretrained(path)
    transformers.DPTImageProcessorPil(size={"height": 42, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
                                      ).save_pretrained(path)
    return path


def test_parse_recipe_keeps_commas_inside_values():
    assert parse_recipe("quick") == ("quick", [])
    assert parse_recipe("quick:model.width=1.0,data.size=[48,64],train.lr=1e-3") == \
        ("quick", ["model.width=1.0", "data.size=[48,64]", "train.lr=1e-3"])
    with pytest.raises(DepthforgeError, match="NAME"):
        parse_recipe(":model.width=1")


def test_best_follows_each_columns_direction():
    rows = {"a": {"d1": 0.9, "abs_rel": 0.20, "glass/d105": 0.1, "through/abs_rel": 0.5, "latency_ms": 5.0,
                  "dbe_acc": math.nan},
            "b": {"d1": 0.8, "abs_rel": 0.10, "glass/d105": 0.3, "through/abs_rel": 0.5, "latency_ms": 9.0,
                  "dbe_acc": 3.0}}
    marked = best(rows, ["d1", "abs_rel", "glass/d105", "through/abs_rel", "latency_ms", "dbe_acc", "missing"])
    assert marked == {"d1": ["a"], "abs_rel": ["b"], "glass/d105": ["b"], "through/abs_rel": ["a", "b"],
                      "latency_ms": ["a"], "dbe_acc": ["b"]}
    assert higher_is_better("d1") and higher_is_better("through/glass/d1") and higher_is_better("edge_f1")
    assert not higher_is_better("dbe_acc") and not higher_is_better("dde_m") and not higher_is_better("whdr")


def test_budget_recipes_share_the_first_recipes_data(tmp_path):
    out = budget_recipes([f"quick:{TINY_DATA}", "quick:model.width=1.0", "binsformer-synth"], tmp_path, 7, None)
    (l1, r1), (l2, r2), (l3, r3) = out
    assert l1 == "quick [train.batch_size=4, model.levels=2]" and l2 == "quick [model.width=1.0]"
    assert l3 == "binsformer-synth"
    for r in (r2, r3):
        assert r.data == r1.data and r.test_data == r1.test_data and r.seed == r1.seed
        assert r.train.max_steps == 7 and r.train.epochs >= 7
    assert r1.data.size == (48, 64) and r2.model.kwargs["width"] == 1.0 and r3.model.name == "binsformer"
    assert len({r.out for _, r in out}) == 3 and all(r.out.startswith(str(tmp_path)) for _, r in out)
    with pytest.raises(DepthforgeError, match="one budget"):
        budget_recipes(["quick"], tmp_path, None, None)
    with pytest.raises(DepthforgeError, match="one budget"):
        budget_recipes(["quick"], tmp_path, 5, 1.0)
    assert check_suites(["all"]) == ["edges", "clutter", "glass"] and check_suites(["none"]) == []
    with pytest.raises(DepthforgeError, match="suite 'glas'"):
        check_suites(["glas"])


class GlassScene(torch.utils.data.Dataset):
    """One glass-suite-like sample: a pane at 1 m in front of a wall at 3 m (``depth``: the pane; ``depth_through``:
    the wall behind it), with exact edges."""

    def __len__(self):
        return 1

    def __getitem__(self, i):
        depth = np.full((24, 32), 3.0, np.float32)
        glass = np.zeros((24, 32), bool)
        glass[6:18, 8:24] = True
        depth[glass] = 1.0
        edges = np.zeros_like(glass)
        edges[6, 8:24] = edges[17, 8:24] = edges[6:18, 8] = edges[6:18, 23] = True
        t = lambda a: torch.from_numpy(a)[None]  # noqa: E731
        wall = np.full((24, 32), 3.0, np.float32)
        return {"image": torch.rand(3, 24, 32), "depth": t(depth), "valid": t(depth > 0), "name": "pane",
                "glass": t(glass), "edges": t(edges), "depth_through": t(wall), "clutter": 5.0,
                "twin_image": torch.rand(3, 24, 32), "twin_depth": t(wall)}  # the twin: the room without the pane


class Wall:
    """A predictor that sees through glass: 3 m everywhere."""
    output = "metric"

    def predict_tensor(self, x):
        return torch.full((x.shape[0], 1, *x.shape[-2:]), 3.0)


def test_per_image_reports_both_glass_conventions_and_failure_modes():
    rows = per_image(Wall(), GlassScene(), get_protocol("none"), "none", progress=False)["model"]
    row = rows[0]
    assert row["edges"] == "exact" and not math.isnan(row["dbe_acc"]) and "whdr" in row and "dde_0" in row
    assert row["glass/abs_rel"] == pytest.approx(2.0) and row["rest/abs_rel"] == pytest.approx(0.0)
    assert row["through/glass/abs_rel"] == pytest.approx(0.0) and row["through/d1"] == 1.0
    assert row["clutter"] == 5.0
    # paired: on the twin the wall is right (0 inside the pane's mask), so the glass costs AbsRel 2.0 and δ1 1.0
    assert row["twin/abs_rel"] == 0 and row["twin_rest/abs_rel"] == 0
    assert row["glass_gap/abs_rel"] == pytest.approx(2.0) and row["glass_gap/d1"] == pytest.approx(-1.0)
    results = {"checkpoint": "wall", "images": 1, "protocol": "none", "max_depth": 10.0, "align": "none",
               "edges": "exact", "model": {k: v for k, v in row.items() if isinstance(v, float)}, "baselines": {}}
    md = markdown_table(results)
    assert "Glass, both ground-truth conventions" in md and "exact occlusion edges" in md
    assert "Glass against its twin rendered without glass" in md


def test_eval_on_a_suite_and_on_rooms_says_which_edges(tmp_path):
    ckpt = make_checkpoint(tmp_path / "model.ckpt", size=(48, 64))
    edges = evaluate(ckpt, suite="edges", suite_n=2, out=tmp_path / "edges", progress=False, pictures=False)
    rooms = evaluate(ckpt, data="synth", limit=2, out=tmp_path / "rooms", progress=False, pictures=False)
    assert edges["edges"] == "exact" and rooms["edges"] == "derived" and edges["suite"] == "edges"
    for r in (edges, rooms):
        assert {"whdr", "dbe_acc", "dbe_comp", "dde_0", "seed_loss", "seed_acc"} <= set(r["model"])
        assert np.isfinite(r["model"]["dbe_comp"])
    assert "derived from the ground truth's depth discontinuities" in (tmp_path / "rooms" / "metrics.md").read_text()
    with pytest.raises(DepthforgeError, match="suite 'mirror'"):
        evaluate(ckpt, suite="mirror", out=tmp_path / "x", progress=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A comparison of two tiny checkpoints and a relative (disparity) Hugging Face model on the first one's test
    set (2 rooms at 48x64) and 2 scenes of the edges and clutter suites; the second checkpoint has a name without
    a checkpoint suffix (a checkpoint is one by its content)."""
    tmp = tmp_path_factory.mktemp("compare")
    models = [str(recipe_checkpoint(tmp / "a.ckpt", seed=0, width=0.125)),
              str(recipe_checkpoint(tmp / "b.weights", seed=1)), str(hf_folder(tmp / "da-v2"))]
    return compare(models, suites=["edges", "clutter"], out=tmp / "report", suite_n=2, progress=False, device="cpu")


def test_report_folder_files_and_json_keys(report):
    from pathlib import Path

    out = Path(report["out"])
    for name in ("compare.json", "compare.md", "index.html", "accuracy_latency.png", "suites.png", "distance.png",
                 "scenes_test.png", "scenes_edges.png", "scenes_clutter.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    saved = json.loads((out / "compare.json").read_text())
    assert {"created", "models", "sets", "main", "pictures", "size", "budget"} <= set(saved)
    assert list(saved["sets"]) == ["test", "edges", "clutter"] and saved["main"] == "test"
    assert saved["size"] == [48, 64] and saved["sets"]["edges"]["spec"]["size"] == [48, 64]
    for m in saved["models"]:
        assert {"label", "kind", "source", "output", "align", "parameters", "gflops", "latency_ms"} <= set(m)
        assert m["parameters"] > 0 and m["gflops"] > 0 and m["latency_ms"] > 0
    labels = [m["label"] for m in saved["models"]]
    assert labels == ["a.ckpt", "b.weights", "da-v2"]
    # the kind says how the model was opened (inference.load.kind_of), whatever its file is called
    assert [m["kind"] for m in saved["models"]] == ["checkpoint", "checkpoint", "pretrained"]
    for name, data in saved["sets"].items():
        assert set(data["models"]) == set(labels) and data["images"] == 2
        assert {"columns", "best", "protocol", "edges", "spec"} <= set(data)
    main = saved["sets"]["test"]
    assert main["edges"] == "derived" and saved["sets"]["edges"]["edges"] == "exact"
    assert {"parameters", "gflops", "latency_ms", "d1", "abs_rel", "seed_loss", "seed_acc", "whdr", "dbe_acc",
            "dbe_comp"} <= set(main["columns"])
    assert "whdr_cluttered" in saved["sets"]["clutter"]["columns"]
    bands = main["by_distance"]["a.ckpt"]  # iBims-1's 1-m bands, the rooms' 10-m cap
    assert len(bands["band_m"]) == 10 and sum(bands["images"]) >= 2 and set(main["by_distance"]) == set(labels)


def test_best_marked_per_column_in_json_and_tables(report):
    from pathlib import Path

    out = Path(report["out"])
    main = report["sets"]["test"]
    facts = {m["label"]: m for m in report["models"]}
    for column in ("d1", "abs_rel", "latency_ms", "parameters"):
        values = {label: facts[label][column] if column in facts[label] else m[column]
                  for label, m in main["models"].items()}
        want = (max if column == "d1" else min)(values.values())
        assert main["best"][column] == [k for k, v in values.items() if v == want]
    md = (out / "compare.md").read_text()
    # the row of the best d1 has its d1 cell in bold
    cols = main["columns"]
    winner = main["best"]["d1"][0]
    row = next(line for line in md.splitlines() if line.startswith(f"| {winner}"))
    assert row.split(" | ")[1 + cols.index("d1")].startswith("**")
    html = (out / "index.html").read_text()
    assert html.count('class="best"') >= len(cols) and "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_relative_models_are_flagged_aligned(report):
    from pathlib import Path

    facts = {m["label"]: m for m in report["models"]}
    assert facts["da-v2"]["output"] == "disparity" and facts["da-v2"]["align"] == "lstsq-disparity"
    assert facts["a.ckpt"]["align"] == "none"
    md = (Path(report["out"]) / "compare.md").read_text()
    assert "| da-v2† |" in md and "| a.ckpt |" in md and "disparity output aligned per image" in md


@pytest.mark.slow
def test_compare_trains_two_widths_under_one_budget_beside_a_hf_folder(tmp_path):
    """The CLI end to end: the seed U-Net at two widths, 4 steps each on the same data, and a HF folder."""
    from depthforge.cli import main

    folder = hf_folder(tmp_path / "da-v2")
    start = time.perf_counter()
    rc = main(["compare", "--recipe", f"quick:{TINY_DATA},model.width=0.125",
               "--recipe", "quick:model.width=0.25,model.levels=2,train.batch_size=4", "--model", str(folder),
               "--budget-steps", "4", "--suites", "edges", "--suite-n", "2", "--out", str(tmp_path / "report"),
               "--no-progress"])
    took = time.perf_counter() - start
    assert rc == 0 and took < 60, took
    saved = json.loads((tmp_path / "report" / "compare.json").read_text())
    runs = [m for m in saved["models"] if m["kind"] == "recipe"]
    assert [m["train"]["steps"] for m in runs] == [4, 4] and saved["budget"] == {"steps": 4, "minutes": None}
    assert all(m["source"].startswith(str(tmp_path / "report" / "runs")) for m in runs)
    assert runs[0]["parameters"] < runs[1]["parameters"]  # width 0.125 < 0.25
    assert saved["sets"]["test"]["spec"]["size"] == [48, 64] and saved["sets"]["test"]["images"] == 3
    assert saved["models"][2]["align"] == "lstsq-disparity"
    assert (tmp_path / "report" / "index.html").is_file()
    # a second run into the same folder refuses to replace the trained runs, in one line
    assert main(["compare", "--recipe", f"quick:{TINY_DATA},model.width=0.125", "--budget-steps", "1", "--suites", "none",
                 "--out", str(tmp_path / "report"), "--no-progress"]) == 1


@pytest.mark.slow
def test_budget_minutes_stops_training_at_the_time_limit(tmp_path):
    from depthforge.cli.compare import train_all

    recipes = budget_recipes([f"quick:{TINY_DATA},model.width=0.125,train.epochs=500"], tmp_path, None, 0.05)
    start = time.perf_counter()
    assert recipes[0][1].train.max_time == 0.05
    (run,) = train_all(recipes, progress=False, overwrite=False)
    assert time.perf_counter() - start < 30
    assert 0 < run["train"]["steps"] < 500 * 2  # 2 batches an epoch: stopped by the clock, not the epochs


def test_run_checkpoints_are_labelled_by_their_run(tmp_path):
    assert model_label(tmp_path / "seed-unet" / "checkpoints" / "last.ckpt") == "seed-unet"
    assert model_label(tmp_path / "seed-unet" / "checkpoints" / "best.ckpt") == "seed-unet (best.ckpt)"
    assert model_label(tmp_path / "model.ckpt") == "model.ckpt"
