"""Configs: presets, typed args, unknown keys listed, and the CLI's override check."""

import pytest

from configs import biggan, biggan_deep, common


@pytest.mark.parametrize("module", [biggan, biggan_deep])
@pytest.mark.parametrize("preset", ["imagenet128", "imagenet256", "imagenet512", "digits"])
def test_presets_build(module, preset):
    c = module.get_config(preset)
    assert c.model.resolution in (32, 128, 256, 512)
    assert c.train.b1 == 0.0 and c.train.b2 == 0.999
    # Paper: 2 D steps per G step; the digits presets too (1 lost modes: RESULTS.md, issue #16).
    assert c.train.d_steps == 2
    assert c.train.ortho_beta == 1e-4


def test_paper_learning_rates():
    assert (biggan.get_config("imagenet128").train.lr_g, biggan.get_config().train.lr_d) == \
        (5e-5, 2e-4)
    deep256 = biggan_deep.get_config("imagenet256").train
    assert (deep256.lr_g, deep256.lr_d) == (2.5e-5, 2.5e-5)


def test_parse_arg_types_and_unknown_keys():
    a = common.parse_arg("digits,steps=20,smoke", preset="x", steps=0, smoke=False)
    assert (a.preset, a.steps, a.smoke) == ("digits", 20, True)
    with pytest.raises(ValueError, match=r"unknown config arg 'bogus'; valid keys: \['preset'"):
        common.parse_arg("bogus=1", preset="x", steps=0)
    with pytest.raises(ValueError, match="valid presets"):
        biggan.get_config("imagenet1024")


def test_unknown_override_key_lists_valid_keys():
    c = biggan.get_config("digits")
    common.check_override_keys(c, ["--config.train.batch_size=4", "--workdir=x"])
    with pytest.raises(ValueError, match=r"unknown config key 'bacth_size'.*'batch_size'"):
        common.check_override_keys(c, ["--config.train.bacth_size=4"])
