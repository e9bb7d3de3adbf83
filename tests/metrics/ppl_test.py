"""PPL: percentile filtering (the linear toy is in image_metrics_test), and PPL in
`config.eval` (`evaluation.evaluate_state`, what --mode=eval runs) on a tiny StyleGAN2 vs a
direct `metrics.ppl` call; PPL asked of BigGAN / ProGAN is an error."""

import copy
import json
import logging

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from configs import progan as progan_config
from configs import stylegan2 as sg2_config
from gan_zoo import recipes
from gan_zoo.convert import vgg16 as convert_vgg16
from gan_zoo.feature_nets import lpips
from gan_zoo.metrics import ppl
from gan_zoo.models import stylegan2
from gan_zoo.train import evaluation, w_space
from tests.train._tiny import tiny_config, tiny_networks


def test_filtered_mean_drops_values_outside_the_1st_99th_percentiles():
    values = np.random.default_rng(0).permutation(np.arange(1.0, 1001.0))
    values[values == 1000.0] = 1e9  # an outlier
    # 1st percentile 'lower': sorted[9] = 10; 99th 'higher': sorted[990] = 991; both kept.
    assert ppl.filtered_mean(values) == pytest.approx((10 + 991) / 2)


# ----- PPL in config.eval -----

@pytest.fixture(scope="module")
def lpips_npz(tmp_path_factory):
    """A tiny random LPIPS (narrow VGG widths, positive lin weights) as an lpips-named .npz."""
    net = lpips.LPIPS((4, 4, 8, 8, 8))
    x = jnp.zeros((1, 16, 16, 3))
    variables = jax.tree.map(np.asarray, jax.jit(net.init)(jax.random.PRNGKey(0), x, x))
    rng = np.random.default_rng(0)
    for k in range(len(lpips.LAYERS)):
        p = variables["params"][f"lin{k}"]
        variables["params"][f"lin{k}"] = rng.uniform(0.1, 1.0, p.shape).astype(np.float32)
    sd = convert_vgg16.export_lpips(variables)
    sd["scaling_layer.shift"] = np.asarray(lpips.SHIFT).reshape(1, 3, 1, 1)
    sd["scaling_layer.scale"] = np.asarray(lpips.SCALE).reshape(1, 3, 1, 1)
    path = tmp_path_factory.mktemp("weights") / "lpips_tiny.npz"
    np.savez(path, **sd)
    return str(path), net, variables


@pytest.fixture(scope="module")
def stylegan2_state():
    """A tiny StyleGAN2 recipe and an initial state whose EMA G differs from its G."""
    config = sg2_config.get_config("photos,res=16")
    config.eval.num_samples, config.eval.batch_size = 6, 4
    G = stylegan2.generator("config-f_test", img_resolution=16, z_dim=8, w_dim=8,
                            mapping_layers=1, channel_base=128, channel_max=8)
    D = stylegan2.Discriminator(0, 16, channel_base=128, channel_max=8)
    recipe = recipes.make_recipe(config, (G, D))
    state = jax.jit(lambda key: recipe.init_state(key, config))(jax.random.PRNGKey(0))
    ema = jax.tree.map(lambda p: p * 1.1 + 0.01, state.ema_params)
    return config, recipe, state.replace(ema_params=ema), G


def _with_eval(config, **eval_overrides):
    config = copy.deepcopy(config)
    config.eval.update(eval_overrides)
    return config


def test_eval_ppl_equals_a_direct_metrics_call(tmp_path, lpips_npz, stylegan2_state):
    path, net, variables = lpips_npz
    config, recipe, state, G = stylegan2_state
    config = _with_eval(config, metrics="ppl", lpips=path)
    out = evaluation.evaluate_state(recipe, state, config, str(tmp_path))
    g_vars = {"params": state.ema_params, **state.collections["g"]}

    @jax.jit
    def sample_w(key, m=8):  # z from the first half of the key; unconditional
        z = jax.random.normal(jax.random.split(key)[0], (m, G.z_dim))
        return G.apply(g_vars, z, None, method="map")

    # Noise maps re-drawn per PPL batch (official PPLSampler): batch k's from
    # fold_in(PRNGKey(NOISE_SEED), k), map i (flattened variable order) from fold_in(., i).
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(g_vars))
    paths = [k for k in flat if k[0] == "buffers" and k[-1] == "noise_const"]
    assert paths  # StyleGAN2 has noise maps: the redraw matters
    apply = jax.jit(lambda v, ws: G.apply(v, ws, noise_mode="const", method="synthesize")[0])
    calls = []

    def synth(ws):
        key = jax.random.fold_in(jax.random.PRNGKey(w_space.NOISE_SEED), len(calls))
        calls.append(1)
        fresh = {k: jax.random.normal(jax.random.fold_in(key, i), flat[k].shape)
                 for i, k in enumerate(paths)}
        return apply(flax.traverse_util.unflatten_dict({**flat, **fresh}), ws)

    direct = ppl.ppl(synth, lambda key, m: sample_w(key)[:m],
                     jax.jit(lpips.ppl_distance(variables, net)),
                     jax.random.PRNGKey(config.seed), 6, batch_size=4)
    assert np.isfinite(out["ppl"]) and out["ppl"] > 0
    # PPL divides image differences by eps^2 = 1e-8: float32 rounding of differently batched
    # (padded) calls moves it by ~1e-4.
    assert out["ppl"] == pytest.approx(direct, rel=2e-3)
    written = json.loads((tmp_path / "eval" / "metrics_0.json").read_text())
    assert written == pytest.approx({"step": 0, "ppl": out["ppl"]})


def test_eval_ppl_is_sharded_and_agrees_on_1_and_8_devices(tmp_path, lpips_npz,
                                                          stylegan2_state):
    """Mapping, synthesis and LPIPS run with the pairs split over the mesh's 'data' axis; the
    value does not depend on the device count (beyond float32 rounding, amplified by 1/eps^2)."""
    config, recipe, state, _ = stylegan2_state
    config = _with_eval(config, metrics="ppl", lpips=lpips_npz[0])
    values = {}
    for n in (1, 8):
        mesh = Mesh(np.asarray(jax.devices()[:n]), ("data",))
        values[n] = evaluation.evaluate_state(recipe, state, config, str(tmp_path), mesh)["ppl"]
    assert len(jax.devices()) == 8  # tests/conftest.py: 8 simulated CPU devices
    assert np.isfinite(values[1]) and values[1] > 0
    assert values[1] == pytest.approx(values[8], rel=2e-3)


def test_eval_ppl_without_lpips_is_skipped_with_a_message(tmp_path, caplog, stylegan2_state):
    config, recipe, state, _ = stylegan2_state
    config = _with_eval(config, metrics="ppl")
    with caplog.at_level(logging.WARNING, logger="gan_zoo.eval"):
        out = evaluation.evaluate_state(recipe, state, config, str(tmp_path))
    assert "skipping ppl: set config.eval.lpips" in caplog.text and out == {"step": 0}


@pytest.mark.parametrize("family", ["biggan", "progan"])
@pytest.mark.parametrize("metrics, needs", [("swd,ppl", "ppl"), ("swd,eqt_frac", "eqt_frac")])
def test_eval_w_metrics_on_a_recipe_without_w_space_raise(tmp_path, family, metrics, needs):
    """PPL and EQ-T/EQ-R need a W space: BigGAN / ProGAN requests name the metric and recipe."""
    if family == "biggan":
        config = tiny_config()
        recipe = recipes.make_recipe(config, tiny_networks(config))
    else:
        config = progan_config.get_config("smoke")
        recipe = recipes.make_recipe(config)
    config.eval.metrics, config.eval.lpips = metrics, "unused.npz"
    with pytest.raises(ValueError, match=rf"\['{needs}'\] need a W space.*recipe '{family}'"):
        evaluation.evaluate_state(recipe, None, config, str(tmp_path))
