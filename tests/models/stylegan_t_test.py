"""StyleGAN-T generator: public golden, parameter counts (spec §2.2), truncation of only the z
part, the x_avg EMA, the StyleSplit affine and the residual layer against their formulas, init
values of the official code, converter errors."""

import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.convert import stylegan2 as sg2_convert
from gan_zoo.convert import stylegan_t as convert
from gan_zoo.models import stylegan_t
from gan_zoo.models.stylegan2_layers import StyleSplit, SynthesisLayer
from gan_zoo.tools import golden as harness

CASE = "net_stylegant_G_res32_text16"


def _count(G) -> int:
    z, c = jnp.zeros([1, G.z_dim]), jnp.zeros([1, G.c_dim])
    shapes = jax.eval_shape(lambda: G.init(jax.random.PRNGKey(0), z, c))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes["params"]))


def test_public_golden_passes(golden):
    out = io.StringIO()
    passed, failed = harness.run([golden / CASE], impl="xla", out=out)
    assert (passed, failed) == (1, 0), out.getvalue()


def test_param_counts(golden):
    meta = json.loads((golden / f"{CASE}.json").read_text())
    G = convert.generator_from_kwargs(meta["constructor_kwargs"], c_dim=meta["c_dim"])
    assert _count(G) == meta["num_params"] and G.num_ws == meta["num_ws"]
    assert _count(stylegan_t.generator("tiny")) == meta["num_params"]
    # Spec §2.2 (App. A Table 4, code num_res_blocks 2 / 3): 74.6M and 1020.5M without CLIP.
    lite, full = _count(stylegan_t.generator("lite")), _count(stylegan_t.generator("full"))
    assert (lite, full) == (74_556_835, 1_020_497_609)
    assert round(lite / 1e6, 1) == 74.6 and round(full / 1e6, 1) == 1020.5
    # Spec §2.2: 8 n_res + 3 conv layers at 64^2 (lite: 19); ws: + the Fourier input + ToRGB.
    assert stylegan_t.generator("lite").num_ws == 19 + 2


@pytest.fixture(scope="module")
def micro():
    G = stylegan_t.generator("micro")
    z = jax.random.normal(jax.random.PRNGKey(1), [4, G.z_dim])
    c = jax.random.normal(jax.random.PRNGKey(2), [4, G.c_dim])
    variables = jax.jit(G.init)(jax.random.key(0, impl="rbg"), z, c)  # rbg: a cheaper compile
    x_avg = jax.random.normal(jax.random.PRNGKey(3), [G.z_dim])
    variables = {**variables, "ema_stats": {"mapping": {"x_avg": x_avg}}}
    return G, variables, z, c


def _apply(G):
    return jax.jit(G.apply, static_argnames=("psi", "method", "mutable", "update_emas",
                                             "noise_mode"))


def test_truncation_moves_only_the_z_part(micro):
    G, variables, z, c = micro
    ws1 = np.asarray(_apply(G)(variables, z, c, method="map"))
    ws05 = np.asarray(_apply(G)(variables, z, c, psi=0.5, method="map"))
    x_avg = np.asarray(variables["ema_stats"]["mapping"]["x_avg"])
    assert ws1.shape == (4, G.num_ws, G.z_dim + G.c_dim)
    np.testing.assert_array_equal(ws05[:, :, G.z_dim:], np.broadcast_to(
        np.asarray(c)[:, None], (4, G.num_ws, G.c_dim)))
    np.testing.assert_allclose(ws05[:, :, :G.z_dim], x_avg + 0.5 * (ws1[:, :, :G.z_dim] - x_avg),
                               rtol=1e-6, atol=1e-6)
    assert np.all(ws1 == ws1[:, :1])  # the same w for every layer


def test_x_avg_update(micro):
    G, variables, z, c = micro
    ws, new = _apply(G)(variables, z, c, update_emas=True, mutable=("ema_stats",), method="map")
    old = np.asarray(variables["ema_stats"]["mapping"]["x_avg"])
    mean = np.asarray(ws)[:, 0, :G.z_dim].mean(axis=0)
    np.testing.assert_allclose(new["ema_stats"]["mapping"]["x_avg"],
                               0.995 * old + 0.005 * mean, rtol=1e-6, atol=1e-7)
    ws_eval = _apply(G)(variables, z, c, method="map")
    np.testing.assert_array_equal(ws, ws_eval)  # the EMA does not change this call's ws


def test_style_split_formula():
    w = jax.random.normal(jax.random.PRNGKey(0), [3, 5])
    mod = StyleSplit(4)
    params = mod.init(jax.random.PRNGKey(1), w)
    p = params["params"]["proj"]
    m = np.asarray(w) @ (np.asarray(p["weight"]) / np.sqrt(5)) + np.asarray(p["bias"])
    want = m[:, :4] * m[:, 4:8] + m[:, 8:]
    np.testing.assert_allclose(mod.apply(params, w), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(p["bias"], np.ones(12))  # all three chunks: bias init 1


def test_image_shape_and_converter_errors(golden, micro):
    G, variables, z, c = micro
    img, _ = _apply(G)(variables, z, c, noise_mode="const")
    assert img.shape == (4, 16, 16, 3) and np.all(np.isfinite(img))
    case = harness.load_case(golden / CASE)
    G32 = convert.generator_from_kwargs(case.meta["constructor_kwargs"], c_dim=16)
    state = sg2_convert.split_golden_state(case)
    with pytest.raises(ValueError, match="missing from the state dict.*b8/convs1_1/gamma"):
        convert.convert_state_dict({k: v for k, v in state.items()
                                    if k != "synthesis.b8.convs1.1.gamma"}, G32)
    with pytest.raises(ValueError, match="c_dim=16 needs a text embedding"):
        G32.apply(convert.convert_state_dict(state, G32), z[:, :1].repeat(32, 1), method="map")


def test_residual_layer_formula():
    """out = sqrt(2) (GN(x) + gamma * layer(GN(x))), GN over 32 groups with eps 1e-5 (spec §2.2)."""
    x = jax.random.normal(jax.random.PRNGKey(0), [2, 8, 8, 64]) * 3 + 1
    w = jax.random.normal(jax.random.PRNGKey(1), [2, 6])
    res = stylegan_t.ResidualLayer(8, impl="xla")
    v = jax.jit(lambda key: res.init(key, x, w, "none"))(jax.random.key(2, impl="rbg"))
    p = jax.tree_util.tree_map(np.asarray, v["params"])
    rng = np.random.default_rng(0)
    p["gamma"] = rng.normal(size=64).astype(np.float32)
    p["norm"] = {"scale": rng.normal(size=64).astype(np.float32),
                 "bias": rng.normal(size=64).astype(np.float32)}
    g = np.asarray(x, np.float64).reshape(2, 8, 8, 32, 2)
    mu, var = g.mean(axis=(1, 2, 4), keepdims=True), g.var(axis=(1, 2, 4), keepdims=True)
    xn = ((g - mu) / np.sqrt(var + 1e-5)).reshape(2, 8, 8, 64) * p["norm"]["scale"] + \
        p["norm"]["bias"]
    layer = SynthesisLayer(64, 8, conv_clamp=256, style_split=True, impl="xla")
    y = layer.apply({"params": p["conv"], "buffers": v["buffers"]["conv"]},
                    jnp.asarray(xn, jnp.float32), w, "none", gain=np.sqrt(0.5))
    want = np.sqrt(2) * (xn + p["gamma"] * np.asarray(y))
    got = res.apply({"params": p, "buffers": v["buffers"]}, x, w, "none", gain=np.sqrt(0.5))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_init_values_of_the_official_code(micro):
    G, variables, _, _ = micro
    b8 = variables["params"]["synthesis"]["b8"]
    np.testing.assert_array_equal(b8["convs1_1"]["gamma"], np.full(32, 1e-5, np.float32))
    np.testing.assert_array_equal(b8["input"]["affine"]["weight"], 0.0)
    np.testing.assert_array_equal(b8["input"]["affine"]["bias"], [1, 0, 0, 0])
    for name in ("conv0", "convs1_0"):
        np.testing.assert_array_equal(
            variables["params"]["synthesis"]["b16"][name]["noise_strength"], 0.0)
    std = [float(np.std(variables["params"]["synthesis"][b]["torgb"]["weight"]))
           for b in ("b8", "b16")]
    assert all(0.05 < s < 0.2 for s in std), std  # 0.1 * randn (official ToRGBLayer)
