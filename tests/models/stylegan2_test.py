"""StyleGAN2 G/D: public goldens, parameter counts (spec A3.5), conditional shapes, EMA/truncation,
converter errors."""

import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.convert import stylegan2 as convert
from gan_zoo.models import stylegan2
from gan_zoo.tools import golden as harness

CASES = ("net_stylegan2_G_res32_uncond", "net_stylegan2_D_res32_uncond")


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _shapes_g(G, n=2, c_dim=0):
    z = jnp.zeros([n, G.z_dim])
    c = jnp.zeros([n, c_dim]) if c_dim else None
    return jax.eval_shape(lambda: G.init(jax.random.PRNGKey(0), z, c))


def _shapes_d(D, n=2, c_dim=0):
    r = D.img_resolution
    img = jnp.zeros([n, r, r, D.img_channels])
    c = jnp.zeros([n, c_dim]) if c_dim else None
    return jax.eval_shape(lambda: D.init(jax.random.PRNGKey(0), img, c))


def test_public_goldens_pass(golden):
    out = io.StringIO()
    passed, failed = harness.run([golden / name for name in CASES], impl="xla", out=out)
    assert (passed, failed) == (len(CASES), 0), out.getvalue()


# StyleGAN2 fn. 4 and spec A3.5: G 25M -> 30M, D 24M -> 29M at 1024^2 (G includes the mapping);
# the spec's recount gives G_E 24.90M, D_E 24.04M, G_F 30.37M, D_F 29.01M.
@pytest.mark.parametrize("variant,g_millions,d_millions", [
    ("config-e", 24.90, 24.04), ("config-f", 30.37, 29.01)])
def test_param_counts_at_1024(variant, g_millions, d_millions):
    g = _count(_shapes_g(stylegan2.generator(variant), n=1)["params"])
    d = _count(_shapes_d(stylegan2.discriminator(variant), n=1)["params"])
    assert round(g / 1e6, 2) == g_millions
    assert round(d / 1e6, 2) == d_millions


@pytest.mark.parametrize("name", CASES)
def test_param_count_matches_official(golden, name):
    meta = json.loads((golden / f"{name}.json").read_text())
    kwargs = meta["constructor_kwargs"]
    if "Generator" in meta["class_name"]:
        shapes = _shapes_g(convert.generator_from_kwargs(kwargs))
    else:
        shapes = _shapes_d(convert.discriminator_from_kwargs(kwargs))
    assert _count(shapes["params"]) == meta["num_params"]


@pytest.mark.parametrize("variant", sorted(stylegan2.VARIANTS))
def test_every_variant_builds(variant):
    G, D = stylegan2.generator(variant), stylegan2.discriminator(variant)
    if G.img_resolution > 64:  # Full-size rows: shapes only (no allocation).
        assert _count(_shapes_g(G, n=1)["params"]) > 0
        assert _count(_shapes_d(D, n=1)["params"]) > 0
        return
    assert _count(_shapes_g(G)["params"]) > 0 and _count(_shapes_d(D)["params"]) > 0


@pytest.mark.parametrize("g_arch,d_arch", [("orig", "orig"), ("skip", "skip"),
                                           ("resnet", "resnet")])
def test_conditional_shapes(g_arch, d_arch):
    n, c_dim = 4, 5
    G = stylegan2.generator("config-f_test", c_dim=c_dim, architecture=g_arch)
    D = stylegan2.discriminator("config-f_test", c_dim=c_dim, architecture=d_arch)
    g_vars, d_vars = _shapes_g(G, n, c_dim), _shapes_d(D, n, c_dim)
    assert "embed" in g_vars["params"]["mapping"] and "mapping" in d_vars["params"]
    z, c = jnp.zeros([n, G.z_dim]), jnp.zeros([n, c_dim])
    img, aux = jax.eval_shape(lambda v: G.apply(v, z, c, noise_mode="const"), g_vars)
    assert img.shape == (n, 32, 32, 3) and aux["ws"].shape == (n, G.num_ws, G.w_dim)
    logits, d_aux = jax.eval_shape(lambda v, x: D.apply(v, x, c), d_vars, img)
    assert logits.shape == (n,) and d_aux["cmap"].shape == (n, 64)


def test_conditional_forward_runs():
    n, c_dim = 4, 3
    G = stylegan2.generator("config-e_test", c_dim=c_dim, img_resolution=8)
    D = stylegan2.discriminator("config-e_test", c_dim=c_dim, img_resolution=8)
    z = jax.random.normal(jax.random.PRNGKey(1), [n, G.z_dim])
    c = jax.nn.one_hot(jnp.arange(n) % c_dim, c_dim)
    g_vars = jax.jit(G.init)(jax.random.PRNGKey(0), z, c)
    img, aux = jax.jit(lambda v, z, c: G.apply(v, z, c, rngs={"noise": jax.random.PRNGKey(2)}))(
        g_vars, z, c)
    d_vars = jax.jit(D.init)(jax.random.PRNGKey(3), img, c)
    logits, _ = jax.jit(D.apply)(d_vars, img, c)
    assert img.shape == (n, 8, 8, 3) and logits.shape == (n,)
    assert bool(jnp.all(jnp.isfinite(img))) and bool(jnp.all(jnp.isfinite(logits)))


def test_w_avg_update_and_truncation():
    G = stylegan2.generator("config-f_test")
    z = jax.random.normal(jax.random.PRNGKey(0), [8, G.z_dim])
    variables = G.init(jax.random.PRNGKey(1), z, None, method=G.map)  # mapping only
    w_avg = jnp.full([G.w_dim], 0.5)
    variables = {**variables, "ema_stats": {"mapping": {"w_avg": w_avg}}}
    ws, new = G.apply(variables, z, update_emas=True, mutable=["ema_stats"], method=G.map)
    beta = G.w_avg_beta
    want = ws[:, 0].mean(0) + beta * (w_avg - ws[:, 0].mean(0))  # lerp(mean, w_avg, beta)
    np.testing.assert_allclose(new["ema_stats"]["mapping"]["w_avg"], want, rtol=1e-6, atol=1e-6)
    # psi = 0 gives w_avg on the truncated slots only.
    ws0 = G.apply(variables, z, psi=0.0, cutoff=3, method=G.map)
    np.testing.assert_allclose(ws0[:, :3], jnp.broadcast_to(w_avg, ws0[:, :3].shape), atol=1e-6)
    np.testing.assert_allclose(ws0[:, 3:], ws[:, 3:], atol=1e-6)


def test_converter_reports_mismatched_names(golden):
    case = harness.load_case(golden / CASES[0])
    G = convert.generator_from_kwargs(case.meta["constructor_kwargs"])
    state = convert.split_golden_state(case)
    state["synthesis.b4.conv1.bogus"] = np.zeros([3], np.float32)
    del state["mapping.fc1.bias"]
    with pytest.raises(ValueError, match=r"synthesis\.b4\.conv1\.bogus.*mapping/fc1/bias"):
        convert.convert_state_dict(state, G)


def test_unknown_official_kwarg_is_rejected():
    with pytest.raises(ValueError, match="not_a_kwarg"):
        convert.generator_from_kwargs(dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8,
                                           img_channels=3, not_a_kwarg=1))


@pytest.mark.parametrize("kind,arch", [("G", "resnet"), ("G", "orig"), ("D", "skip"),
                                       ("D", "orig")])
def test_state_dict_round_trip_conditional(kind, arch):
    """export_state_dict -> convert_state_dict is the identity (names and layouts), c_dim > 0."""
    rng = np.random.default_rng(0)
    if kind == "G":
        model = stylegan2.generator("config-f_test", c_dim=3, architecture=arch)
        shapes = _shapes_g(model, c_dim=3)
    else:
        model = stylegan2.discriminator("config-f_test", c_dim=3, architecture=arch)
        shapes = _shapes_d(model, c_dim=3)
    variables = jax.tree_util.tree_map(
        lambda s: rng.standard_normal(s.shape).astype(np.float32), shapes)
    state = convert.export_state_dict(variables)
    assert "mapping.embed.weight" in state
    back = convert.export_state_dict(convert.convert_state_dict(state, model))
    assert set(back) == set(state)
    for name, value in state.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)


# ----- Progressive growing (configs A-D) and StyleGAN1 AdaIN (config A) -----

_GROW = dict(w_dim=8, img_resolution=16, channel_base=64, channel_max=8, architecture="orig")


def _grow_synthesis(style_mode="modulate"):
    """A growing 'orig' synthesis (4 -> 16) and its parameters, random ws [2, 6, 8]."""
    syn = stylegan2.SynthesisNetwork(**_GROW, style_mode=style_mode,
                                     demodulate=style_mode == "modulate", progressive=True)
    ws = jax.random.normal(jax.random.PRNGKey(0), (2, syn.num_ws, _GROW["w_dim"]))
    params = jax.jit(lambda w: syn.init(jax.random.PRNGKey(1), w, noise_mode="none"))(ws)
    return syn, params, ws


def _synth(syn, params, ws, res, alpha):
    return syn.apply(params, ws, noise_mode="none", fused_modconv=False, res=res, alpha=alpha)


def _without(variables, drop):
    """variables without the subtrees named by the (block, layer) pairs of `drop` (layer None:
    the whole block), in every collection."""
    out = {}
    for col, tree in variables.items():
        tree = dict(tree)
        for block, layer in drop:
            if block in tree and layer is None:
                del tree[block]
            elif block in tree:
                tree[block] = {k: v for k, v in tree[block].items() if k != layer}
        out[col] = tree
    return out


def test_growing_g_at_alpha_1_is_the_stage_network_alone():
    """alpha = 1 at stage 8: exactly the non-growing 'orig' g of resolution 8 (whose ToRGB is
    the only one) on the same weights, with its own (fewer) w slots."""
    syn, params, ws = _grow_synthesis()
    got = _synth(syn, params, ws, 8, 1.0)
    plain = stylegan2.SynthesisNetwork(**{**_GROW, "img_resolution": 8})
    sub = _without(params, [("b16", None), ("b4", "torgb")])
    want = plain.apply(sub, ws[:, :plain.num_ws], noise_mode="none", fused_modconv=False)
    assert got.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("style_mode", ["modulate", "adain"])
def test_growing_g_fades_from_the_upsampled_previous_stage(style_mode):
    syn, params, ws = _grow_synthesis(style_mode)
    old = _synth(syn, params, ws, 8, 1.0)
    new = _synth(syn, params, ws, 16, 1.0)
    up = jnp.repeat(jnp.repeat(old, 2, axis=1), 2, axis=2)  # nearest 2x
    np.testing.assert_allclose(_synth(syn, params, ws, 16, 0.0), up, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_synth(syn, params, ws, 16, 0.25), 0.75 * up + 0.25 * new,
                               rtol=1e-5, atol=1e-5)
    assert float(jnp.max(jnp.abs(new - up))) > 1e-3  # the stages differ: the fade is visible


def _grow_discriminator():
    D = stylegan2.Discriminator(0, 16, architecture="orig", channel_base=64, channel_max=8,
                                progressive=True)
    x = jax.random.normal(jax.random.PRNGKey(2), (4, 16, 16, 3))
    params = jax.jit(lambda x: D.init(jax.random.PRNGKey(3), x))(x)
    return D, params, x


def test_growing_d_fade_in():
    D, params, x = _grow_discriminator()
    pooled = x.reshape(4, 8, 2, 8, 2, 3).mean(axis=(2, 4))  # 2x2 average pool
    d = jax.jit(lambda x, a, res: D.apply(params, x, res=res, alpha=a)[0], static_argnums=2)
    # alpha = 0: the previous stage (D at 8 on the average-pooled image).
    np.testing.assert_allclose(d(x, 0.0, 16), d(pooled, 1.0, 8), rtol=1e-5, atol=1e-5)
    # alpha = 1: the non-growing 'orig' D of resolution 16 (fromRGB at its input only).
    plain = stylegan2.Discriminator(0, 16, architecture="orig", channel_base=64, channel_max=8)
    sub = _without(params, [("b8", "fromrgb"), ("b4", "fromrgb")])
    np.testing.assert_allclose(d(x, 1.0, 16), plain.apply(sub, x)[0], rtol=1e-5, atol=1e-5)
    # In between, fromRGB features (not logits) are blended: alpha = 0.5 is neither end.
    mid, ends = d(x, 0.5, 16), (d(x, 0.0, 16), d(x, 1.0, 16))
    assert min(float(jnp.max(jnp.abs(mid - e))) for e in ends) > 1e-4


def test_adain_layer_sets_per_channel_mean_and_std_from_the_style():
    """StyleGAN1 AdaIN: after instance norm, channel i has mean y_b,i and std y_s,i + 1."""
    layer = stylegan2.SynthesisLayer(4, resolution=8, style_mode="adain", demodulate=False)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3)) * 3.0 + 1.0
    w = jax.random.normal(jax.random.PRNGKey(1), (2, 8))
    params = layer.init(jax.random.PRNGKey(2), x, w, noise_mode="none")
    assert params["params"]["affine"]["weight"].shape == (8, 8)  # 2 O outputs: y_s, y_b
    y_s, y_b = jnp.array([0.5, -0.2, 1.0, 2.0]), jnp.array([0.1, -1.0, 0.0, 3.0])
    p = jax.tree_util.tree_map(lambda v: v, params)["params"]
    p["affine"] = {"weight": jnp.zeros((8, 8)), "bias": jnp.concatenate([y_s, y_b])}
    out = layer.apply({**params, "params": p}, x, w, noise_mode="none")
    np.testing.assert_allclose(out.mean(axis=(1, 2)), jnp.broadcast_to(y_b, (2, 4)), atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), jnp.broadcast_to(jnp.abs(y_s + 1), (2, 4)),
                               rtol=1e-4)


def test_adain_generator_layout():
    """Config A (StyleGAN1): const init 1 with its own style layer, per-channel noise strength,
    unmodulated ToRGB, and all num_ws = 2 log2 R - 2 w slots read by the style layers."""
    G = stylegan2.generator("config-a_test")
    p = _shapes_g(G)["params"]["synthesis"]
    assert set(p["b4"]) == {"const", "conv0", "conv1", "torgb"}
    assert p["b4"]["conv0"]["noise_strength"].shape == (64,)
    assert set(p["b32"]["torgb"]) == {"weight", "bias"}  # a 1x1 conv, no affine
    z = jax.random.normal(jax.random.PRNGKey(0), (2, G.z_dim))
    v = jax.jit(G.init)(jax.random.PRNGKey(1), z)
    assert float(jnp.min(v["params"]["synthesis"]["b4"]["const"])) == 1.0
    # Each style slot changes the image: perturb one slot at a time at stage 32.
    ws = G.apply(v, z, method="map")
    img = G.apply(v, ws, noise_mode="none", method="synthesize")[0]
    for i in range(G.num_ws):
        img_i = G.apply(v, ws.at[:, i].add(1.0), noise_mode="none", method="synthesize")[0]
        assert float(jnp.max(jnp.abs(img_i - img))) > 1e-4, i


@pytest.mark.parametrize("variant", ["config-a", "config-b"])
def test_growing_adds_exactly_the_lower_torgb_and_fromrgb_layers_at_1024(variant):
    """Growing nets = the non-growing 'orig' nets + one ToRGB / fromRGB per lower resolution
    (channels of spec A3.5: 512 up to 32^2, then 256 ... 32 at 4 ... 512^2)."""
    ch = {r: min(16384 // r, 512) for r in (4, 8, 16, 32, 64, 128, 256, 512)}
    modulated = variant != "config-a"
    # ToRGB: [affine 512 -> C (+ C bias) if modulated] + weight C x 3 + bias 3.
    torgb = sum((512 * c + c if modulated else 0) + 3 * c + 3 for c in ch.values())
    fromrgb = sum(3 * ch[r] + ch[r] for r in ch)  # 1x1 conv 3 -> nf(res) + bias
    g = [_count(_shapes_g(stylegan2.generator(variant, progressive=p), n=1)["params"])
         for p in (False, True)]
    d = [_count(_shapes_d(stylegan2.discriminator(variant, progressive=p), n=1)["params"])
         for p in (False, True)]
    assert g[1] - g[0] == torgb and d[1] - d[0] == fromrgb
