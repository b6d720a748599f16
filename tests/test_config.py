import pytest

from depthforge.recipe import apply_overrides, config_names, load_config, resolve
from depthforge.errors import DepthforgeError


def test_shipped_configs_load():
    assert {"quick", "seed-nyu"} <= set(config_names())
    cfg = load_config("seed-nyu")
    assert cfg["data"]["size"] == [240, 320] and cfg["train"]["batch_size"] == 16
    assert cfg["train"]["epochs"] == 15 and cfg["train"]["lr"] == 1e-4 and cfg["train"]["amsgrad"] is True


def test_overrides_parse_yaml_values():
    cfg = apply_overrides(load_config("quick"), ["train.epochs=3", "data.size=[32, 48]", "model.width=0.25",
                                                 "loss.w_l1=0.5"])
    assert cfg["train"]["epochs"] == 3 and cfg["data"]["size"] == [32, 48]
    assert cfg["model"]["width"] == 0.25 and cfg["loss"]["w_l1"] == 0.5


@pytest.mark.parametrize("bad", ["train.epocs=3", "nokey=1", "train", "seed.x=1"])
def test_bad_overrides_are_one_line_errors(bad):
    with pytest.raises(DepthforgeError) as e:
        resolve("quick", [bad])
    assert "\n" not in str(e.value)


def test_missing_config(tmp_path):
    with pytest.raises(DepthforgeError, match="recipe not found"):
        load_config(tmp_path / "nope.yaml")


def test_a_number_where_a_model_takes_text_is_taken_as_text():
    """``model.size=34`` is read by YAML as a number, and the shell strips quotes that would make it text: the
    ResNet size "34" is meant (scripts/zoo_table.sh's ResNet-34 row failed on it). A number where a number is
    taken stays one, and text where a number is taken is still refused."""
    recipe = resolve("unet-synth", ["model.size=34"])
    assert recipe.model.kwargs["size"] == "34"
    assert resolve("quick", ["model.width=0.5"]).model.kwargs["width"] == 0.5
    with pytest.raises(DepthforgeError, match="model.width"):
        resolve("quick", ["model.width=abc"])
