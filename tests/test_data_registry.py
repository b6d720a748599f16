"""A new dataset is one module plus one registry line: its ``register`` call carries its facts (detector,
protocols with their depth range), and detection, evaluation's protocol choice and recipes read them from there."""
from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import Dataset

from depthforge.data import DATASETS, detect_format, register
from depthforge.errors import DepthforgeError
from depthforge.evaluation.evaluate import choose_protocol
from depthforge.evaluation.metrics import PROTOCOLS, compute_metrics, get_protocol
from depthforge.recipe import load_config, validate


@pytest.fixture
def toy():
    """A toy format, registered the way a dataset module registers itself, and removed afterwards."""

    @register("toy", detect=lambda path: path.suffix == ".toy", protocols={"toy-far": ("garg", 1e-3, 30.0)})
    class Toy(Dataset):
        def __init__(self, split: str = "test", root: str | None = None):
            self.root = root

        def __len__(self) -> int:
            return 0

    yield Toy
    DATASETS.pop("toy")
    DATASETS.info.pop("toy")


def test_a_registered_dataset_brings_its_protocol_to_evaluation_and_recipes(toy, tmp_path):
    (tmp_path / "scene.toy").write_text("")
    assert detect_format(tmp_path / "scene.toy") == "toy"
    name, proto = choose_protocol("toy", None)  # no recipe: the dataset's own default
    assert name == "toy-far" and (proto.crop, proto.max_depth) == ("garg", 30.0)
    assert "toy-far" in PROTOCOLS and get_protocol("toy-far", 20.0).max_depth == 20.0
    gt = np.full((40, 120), 25.0)  # inside the toy's range, beyond the generic 10 m cap
    assert compute_metrics(gt, gt, "toy-far")["abs_rel"] == 0.0
    base = load_config("quick")
    recipe = validate({**base, "eval": {**base.get("eval", {}), "protocol": "toy-far"}})
    # the cap rule: the recipe's cap applies to the protocol it names
    assert choose_protocol("synth", recipe) == ("toy-far", get_protocol("toy-far", recipe.eval.max_depth))


def test_a_protocol_no_dataset_registers_is_refused_in_one_line():
    base = load_config("quick")
    with pytest.raises(DepthforgeError, match=r"^recipe: eval.protocol: unknown protocol 'toy-fa'.*allowed: .*nyu"):
        validate({**base, "eval": {**base.get("eval", {}), "protocol": "toy-fa"}})
    with pytest.raises(DepthforgeError, match="did you mean median"):
        validate({**base, "eval": {**base.get("eval", {}), "align": "medain"}})
