"""config.model.fused_modconv reaches the modulated convs: G's default (sampling, eval, tools)
and the training choice (unfused for "auto" and under a sharded batch), for StyleGAN2 and 3."""

import importlib
import logging

import jax
import jax.numpy as jnp
import pytest

from configs import stylegan2 as sg2_config
from configs import stylegan3 as sg3_config
from gan_zoo.recipes import stylegan

mc = importlib.import_module("gan_zoo.ops.modulated_conv2d")


def _config(family: str, fused, data: int = 1):
    c = (sg2_config if family == "stylegan2" else sg3_config).get_config("photos")
    c.model.fused_modconv = fused
    c.mesh.data = data
    return c


@pytest.mark.parametrize("value,want", [("auto", "auto"), ("AUTO", "auto"), ("true", True),
                                        ("fused", True), ("false", False), ("unfused", False)])
def test_setting_parses_command_line_strings(value, want):
    assert stylegan.fused_modconv_setting(_config("stylegan2", value)) == want


def test_bad_setting_names_the_field():
    with pytest.raises(ValueError, match="config.model.fused_modconv"):
        stylegan.fused_modconv_setting(_config("stylegan2", "sometimes"))


@pytest.mark.parametrize("family", ["stylegan2", "stylegan3"])
@pytest.mark.parametrize("value,data,g_default,train", [
    ("auto", 1, "auto", False),  # training: official 'inference_only'
    ("true", 1, True, True), ("false", 1, False, False),
    ("true", 8, True, False),  # a sharded batch trains unfused (with a warning)
    ("true", -1, True, False)])  # -1: all 8 test devices on 'data'
def test_setting_reaches_g_and_training(family, value, data, g_default, train, caplog):
    config = _config(family, value, data)
    G, _ = stylegan.make_networks(config, family)
    assert G.fused_modconv_default == g_default
    with caplog.at_level(logging.WARNING):
        assert stylegan.train_fused_modconv(config) is train
    assert ("unfused" in caplog.text) == (g_default is True and not train)


@pytest.mark.parametrize("family", ["stylegan2", "stylegan3"])
@pytest.mark.parametrize("value", ["true", "false"])
def test_sample_and_train_forward_pass_it_to_the_op(family, value, monkeypatch):
    """The fused_modconv values the op sees while tracing the recipe's sample_fn and D step."""
    seen = []
    real = mc.use_fused
    monkeypatch.setattr(mc, "use_fused", lambda f, *a, **k: seen.append(f) or real(f, *a, **k))
    config = _config(family, value)
    recipe = stylegan.make_recipe(config)
    state = jax.eval_shape(lambda: recipe.init_state(jax.random.PRNGKey(0), config))
    seen.clear()
    jax.eval_shape(lambda s: recipe.sample_fn(s, jax.random.PRNGKey(1), jnp.zeros(2, jnp.int32),
                                              1.0, s.collections["g"]), state)
    assert seen and set(seen) == {value == "true"}
    seen.clear()
    d = next(p for p in recipe.phases if p.name == "d")
    batch = {"image": jnp.zeros((2, 32, 32, 3)), "label": jnp.zeros((2,), jnp.int32)}
    jax.eval_shape(lambda s: d.loss_fn(s.params["d"], s, batch, jax.random.PRNGKey(2)), state)
    assert seen and set(seen) == {value == "true"}  # one 'data' device: as configured
