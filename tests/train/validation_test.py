"""Non-positive run lengths, batch sizes and intervals are rejected naming the field, before any
work (issue #19 item 5)."""

import importlib

import pytest

from gan_zoo import checks, train
from tests.train._tiny import tiny_config, tiny_networks

FAMILIES = ("biggan", "biggan_deep", "progan", "stylegan2", "stylegan3")


@pytest.mark.parametrize("key, value", [
    ("train.num_steps", -5), ("train.batch_size", 0),
    ("train.batch_size", -4), ("checkpoint.every_steps", 0), ("log.every_steps", -1),
    ("log.image_every_steps", -10), ("eval.every", -1), ("train.grad_accum", 0),
])
def test_bad_value_is_rejected_naming_the_field(key, value):
    with pytest.raises(ValueError, match=rf"config\.{key}={value}: expected"):
        checks.check_run_config(tiny_config(**{key: value}))


def test_zero_means_off_for_optional_intervals():
    checks.check_run_config(tiny_config(**{"log.image_every_steps": 0, "eval.every": 0,
                                           "log.sv_every_steps": 0}))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_default_preset_passes(family):
    checks.check_run_config(importlib.import_module(f"configs.{family}").get_config())


@pytest.mark.parametrize("family", FAMILIES + ("stylegan_xl",))
def test_every_smoke_preset_passes(family):
    checks.check_run_config(importlib.import_module(f"configs.{family}").get_config("smoke"))


def test_zero_steps_is_rejected_when_the_recipe_sets_none(tmp_path):
    with pytest.raises(ValueError, match=r"config\.train\.num_steps=0: expected a positive"):
        config = tiny_config(**{"train.num_steps": 0})
        train.run(config, str(tmp_path / "run"), networks=tiny_networks(config))


def test_run_rejects_before_touching_the_workdir(tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=r"config\.train\.batch_size=0"):
        train.run(tiny_config(**{"train.batch_size": 0}), str(workdir))
    leftovers = [p.name for p in workdir.iterdir()] if workdir.exists() else []
    assert not [n for n in leftovers if n != "run.lock"], leftovers  # no config, no checkpoint


def test_data_classes_against_model_classes():
    from ml_collections import ConfigDict  # noqa: PLC0415
    named, pathed = ConfigDict({"name": "digits", "path": ""}), ConfigDict({"path": "/d/x.zip"})
    assert checks.check_data_classes(10, 10, named) == ""
    assert checks.check_data_classes(0, 0, pathed) == ""
    assert checks.check_data_classes(1, 0, named) == ""
    # Unconditional model, labelled data: the labels are ignored (official cond=False), logged.
    note = checks.check_data_classes(5, 0, pathed)
    assert "data.path='/d/x.zip' has 5 classes" in note and "not used" in note
    with pytest.raises(ValueError, match=r"n_classes=3 but data.name='digits' has 10 classes"):
        checks.check_data_classes(10, 3, named)
