"""EQ-T / EQ-R in `config.eval` (`evaluation.evaluate_state`, what --mode=eval runs) on a tiny
StyleGAN3 vs direct `metrics.equivariance` calls; the metrics asked of a recipe whose G has no
input transform (StyleGAN2) or no W space (BigGAN, ProGAN) are errors naming metric and recipe."""

import copy
import json

import flax
import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from configs import stylegan2 as sg2_config
from configs import stylegan3 as sg3_config
from gan_zoo import recipes
from gan_zoo.metrics import equivariance
from gan_zoo.models import stylegan2
from gan_zoo.train import evaluation
from tests.train._tiny import tiny_config

EQ = ("eqt_int", "eqt_frac", "eqr")


@pytest.fixture(scope="module")
def stylegan3_state():
    """The CPU `photos` StyleGAN3 (32x32, 4 layers, 16 channels), EMA G moved off G."""
    config = sg3_config.get_config("photos")
    config.eval.num_samples, config.eval.eq_batch_size = 3, 2  # a full and a partial batch
    recipe = recipes.make_recipe(config)
    state = jax.jit(lambda key: recipe.init_state(key, config))(jax.random.PRNGKey(0))
    ema = jax.tree.map(lambda p: p * 1.1 + 0.01, state.ema_params)
    return config, recipe, state.replace(ema_params=ema)


def _direct(name, config, recipe, state):
    """metrics.equivariance.<name> of the EMA G: ws = f(z) (z from the first half of each
    batch key, unconditional, no truncation), g(ws) with the input transform buffer replaced."""
    G = recipe.networks["g"]
    flat = flax.traverse_util.flatten_dict({"params": state.ema_params, **state.collections["g"]})
    key_t = ("buffers", "synthesis", "input", "transform")
    assert np.array_equal(flat[key_t], np.eye(3))  # the buffer that EQ-T / EQ-R drive

    @jax.jit
    def synthesize(ws, transform):
        v = flax.traverse_util.unflatten_dict({**flat, key_t: transform})
        return G.apply(v, ws, method="synthesize")[0]

    @jax.jit
    def sample(key):
        z = jax.random.normal(jax.random.split(key)[0], (config.eval.eq_batch_size, G.z_dim))
        return G.apply(flax.traverse_util.unflatten_dict(flat), z, None, method="map")

    return getattr(equivariance, name)(synthesize, lambda key, n: sample(key)[:n],
                                       jax.random.PRNGKey(config.seed), config.eval.num_samples,
                                       batch_size=config.eval.eq_batch_size)


def test_eval_eqt_eqr_equal_direct_metrics_calls(tmp_path, stylegan3_state):
    config, recipe, state = stylegan3_state
    config = copy.deepcopy(config)
    config.eval.metrics = ",".join(EQ)
    one_device = Mesh(np.asarray(jax.devices()[:1]), ("data",))  # 8 devices: in ppl_test
    out = evaluation.evaluate_state(recipe, state, config, str(tmp_path), one_device)
    assert set(out) == {"step", *EQ}
    for name in EQ:
        # Same latents, transforms and references; only the batching of G's calls differs
        # (float32 rounding: near-exact integer EQ-T, ~100 dB, is rounding noise itself).
        assert out[name] == pytest.approx(_direct(name, config, recipe, state), rel=1e-3), name
    # Config T is built for translation, not rotation (StyleGAN3 §4, Table 1): even at init the
    # integer EQ-T is high and EQ-R low. (Had the transform been ignored, EQ-T would compare
    # an image with its shifted copy: low.)
    assert out["eqr"] < 30 < out["eqt_int"], out
    written = json.loads((tmp_path / "eval" / "metrics_0.json").read_text())
    assert written == pytest.approx(out)


def test_eval_eq_on_stylegan2_names_metric_and_recipe(tmp_path):
    config = sg2_config.get_config("photos,res=16")
    config.eval.metrics, config.eval.num_samples, config.eval.batch_size = "eqr,eqt_int", 2, 2
    G = stylegan2.generator("config-f_test", img_resolution=16, z_dim=8, w_dim=8,
                            mapping_layers=1, channel_base=128, channel_max=8)
    D = stylegan2.Discriminator(0, 16, channel_base=128, channel_max=8)
    recipe = recipes.make_recipe(config, (G, D))
    state = jax.jit(lambda key: recipe.init_state(key, config))(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"\['eqr', 'eqt_int'\] need G's input transform.*"
                                         r"recipe 'stylegan2'"):
        evaluation.evaluate_state(recipe, state, config, str(tmp_path))


def test_unknown_metric_lists_the_equivariance_names():
    config = tiny_config()
    config.eval.metrics = "eqt"
    with pytest.raises(ValueError, match=r"unknown \['eqt'\].*'eqt_int', 'eqt_frac', 'eqr'"):
        evaluation.resolve_metrics(config.eval)
