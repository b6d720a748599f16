"""The seed's TensorFlow reference in the bench (bench/tf_seed.py): faithful to the seed where TensorFlow is
installed, and said to be missing where it is not."""
from pathlib import Path

import numpy as np
import pytest

from depthforge.bench import tf_seed
from depthforge.bench.targets import targets
from depthforge.bench.train import default_settings, train_steps

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "seed_loss_reference.npz"
needs_tf = pytest.mark.skipif(not tf_seed.available(), reason="tensorflow is not installed (optional)")


def test_the_tensorflow_comparison_is_a_target_beside_the_seed_unets():
    r = {"train": {"size": [240, 320], "batch": 16, "settings": {
        "fp32": {"step_s": 6.0, "gflops_per_s": 20.0, "peak_rss_mb": 5000.0},
        "tensorflow_fp32": {"step_s": 8.0, "peak_rss_mb": 7000.0}}}, "ceiling": {"bf16_fast": False}}
    row = next(t for t in targets(r) if "against TensorFlow" in t["target"])
    assert row["measured"] == pytest.approx(0.75) and row["met"] is True
    # TensorFlow's step is never taken for the seed U-Net's own rows, even where it is the fastest that ran
    r["train"]["settings"]["fp32"]["step_s"] = 9.0
    assert all("(fp32)" in t["target"] for t in targets(r) if t["target"].startswith("seed U-Net ("))
    r["train"]["settings"]["fp32"]["step_s"] = 6.0
    r["train"]["settings"]["tensorflow_fp32"]["step_s"] = 4.0
    row = next(t for t in targets(r) if "against TensorFlow" in t["target"])
    assert row["met"] is False and row["gap"] == pytest.approx(1.5)
    del r["train"]["settings"]["tensorflow_fp32"]
    row = next(t for t in targets(r) if "against TensorFlow" in t["target"])
    assert row["met"] is None and "pip install tensorflow-cpu" in row["note"]


def test_without_tensorflow_its_setting_says_so_in_one_line(monkeypatch):
    if tf_seed.available():
        pytest.skip("tensorflow is installed here")
    assert "tensorflow_fp32" not in default_settings()
    # run through the bench's own subprocess path: the file is loaded without its package
    t = train_steps(["tensorflow_fp32"], size=(32, 48), batch=2, steps=1, width=0.125)
    assert t["settings"]["tensorflow_fp32"] == {"error": "tensorflow is not installed (pip install tensorflow-cpu "
                                                         "to compare against it)"}


@needs_tf
def test_the_keras_network_is_the_seeds_and_the_loss_matches_tensorflows_reference():
    import tensorflow as tf

    model = tf_seed.build()
    assert sum(v.shape.num_elements() for v in model.trainable_variables) == 8_634_593  # the seed's Keras count
    if not FIXTURE.exists():
        pytest.skip("../shared/fixtures is absent")
    ref = np.load(FIXTURE)
    for case in ("smooth_close", "smooth_vs_noisy", "uniform_noise"):
        loss = float(tf_seed.seed_loss(tf.constant(ref[f"{case}_y_true"]), tf.constant(ref[f"{case}_y_pred"])))
        assert loss == pytest.approx(float(ref[f"{case}_loss"]), rel=1e-5), case


@needs_tf
def test_tensorflows_step_is_timed_beside_pytorchs():
    assert "tensorflow_fp32" in default_settings()
    t = train_steps(["fp32", "tensorflow_fp32"], size=(32, 48), batch=2, steps=1, width=0.125)
    tf_row, ours = t["settings"]["tensorflow_fp32"], t["settings"]["fp32"]
    assert tf_row["step_s"] > 0 and tf_row["peak_rss_mb"] > 100 and np.isfinite(tf_row["loss"]), tf_row
    assert tf_row["framework"].startswith("tensorflow ") and ours["framework"] == "pytorch"
    assert tf_row["ratio"] > 0  # against the first setting, PyTorch's fp32
