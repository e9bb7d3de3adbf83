"""Mixed precision (official num_fp16_res / conv_clamp semantics, issue #20 item 3): the official
block rule, reduced-precision G/D against float32 on the goldens' weights (stated tolerances, the
reduced blocks really run in the reduced dtype, styles / images / logits stay float32),
num_fp16_res=0 unchanged, a few finite bfloat16 training steps with float32 params."""

import json

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import progan as pg_config
from configs import stylegan2 as sg2_config
from configs import stylegan3 as sg3_config
from gan_zoo import data as gdata
from gan_zoo import train
from gan_zoo.convert import stylegan2 as convert2
from gan_zoo.convert import stylegan3 as convert3
from gan_zoo.models import progan
from gan_zoo.nn import precision
from gan_zoo.recipes import progan as pg_recipe
from gan_zoo.recipes import stylegan
from gan_zoo.tools import golden as harness
from gan_zoo.train import sharding

G2, D2, G3 = ("net_stylegan2_G_res32_uncond", "net_stylegan2_D_res32_uncond",
              "net_stylegan3_T_G_res32_uncond")
# Bounds: about 4x the error measured against the float32 goldens (2-core CPU, XLA):
# bf16 SG2 G rel-RMS 3.8e-3 / max 0.088 (|img| <= 10.6); fp16 4.4e-4 / 0.0085; SG2 D logits
# bf16 max 0.0021 (|logit| <= 0.62); SG3-T G bf16 rel-RMS 7.4e-3.
G2_BOUND = {"bfloat16": (0.015, 0.35), "float16": (0.002, 0.035)}  # (rel-RMS, max abs)
D2_BOUND = 0.01  # max abs on the logits
G3_BOUND = 0.03  # rel-RMS


# ----- The official rule -----

@pytest.mark.parametrize("res,n,expect", [
    (1024, 4, 128), (256, 4, 32), (32, 2, 16), (32, 4, 8), (32, 9, 8), (32, 0, 64)])
def test_fp16_resolution_is_the_official_formula(res, n, expect):
    # max(2 ** (log2(R) + 1 - n), 8), by hand: 1024, 4 -> 2^7; 32, 4 -> max(4, 8); n = 0 -> 2R.
    assert precision.fp16_resolution(res, n) == expect


def test_block_dtype_and_errors():
    assert [precision.block_dtype(r, 32, 2, "bfloat16") for r in (4, 8, 16, 32)] == \
        ["float32", "float32", "bfloat16", "bfloat16"]
    assert precision.block_dtype(32, 32, 2, "float32") == "float32"
    assert precision.reduced_dtype("auto") in ("bfloat16", "float32")
    with pytest.raises(ValueError, match="fp16_dtype"):
        precision.block_dtype(32, 32, 2, "half")
    with pytest.raises(ValueError, match="num_fp16_res"):
        precision.fp16_resolution(32, -1)


# ----- Goldens' weights: reduced vs float32 -----

def _load(golden, name):
    case = harness.load_case(golden / name)
    return case, convert2.split_golden_state(case)


def _captured(model, variables, *args, **kw):
    """(output, {module path: __call__ output}) of a jitted apply."""
    def f(v, *a):
        return model.apply(v, *a, capture_intermediates=True, mutable=["intermediates"], **kw)
    out, inter = jax.jit(f)(variables, *args)
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(inter["intermediates"]), sep="/")
    return out, {k.rsplit("/", 1)[0]: v[0] for k, v in flat.items()}


def _rel_rms(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2) / np.mean(b ** 2)))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_stylegan2_generator_reduced_vs_float32(golden, dtype):
    case, state = _load(golden, G2)
    G = convert2.generator_from_kwargs(case.meta["constructor_kwargs"], impl="xla")
    G = G.clone(num_fp16_res=2, fp16_dtype=dtype)  # blocks 16, 32 (16 = max(2^(5+1-2), 8))
    variables = convert2.convert_state_dict(state, G)
    ws = jnp.asarray(case.arrays["output/ws_psi1"])
    (img, _), inter = _captured(G, variables, ws, noise_mode="const", method="synthesize")
    # Block outputs (x, img): x in the block's dtype, the image skips in float32; styles fp32.
    for r in (4, 8, 16, 32):
        x, rgb = inter[f"synthesis/b{r}"]
        assert x.dtype == (dtype if r >= 16 else "float32"), (r, x.dtype)
        assert rgb.dtype == jnp.float32
    assert inter["synthesis/b32/conv0/affine"].dtype == jnp.float32
    assert img.dtype == jnp.float32
    ref = case.arrays["output/img_psi1"].transpose(0, 2, 3, 1)
    rel, peak = G2_BOUND[dtype]
    assert _rel_rms(np.asarray(img), ref) < rel
    assert 0 < np.abs(np.asarray(img) - ref).max() < peak


def test_stylegan2_discriminator_reduced_vs_float32(golden):
    case, state = _load(golden, D2)
    D = convert2.discriminator_from_kwargs(case.meta["constructor_kwargs"], impl="xla")
    D = D.clone(num_fp16_res=2, fp16_dtype="bfloat16")  # blocks b32, b16
    variables = convert2.convert_state_dict(state, D)
    img = jnp.asarray(case.arrays["input/img"].transpose(0, 2, 3, 1))
    (logits, _), inter = _captured(D, variables, img, None)
    assert [inter[f"b{r}"][0].dtype for r in (32, 16, 8)] == [jnp.bfloat16, jnp.bfloat16,
                                                               jnp.float32]
    assert logits.dtype == jnp.float32
    err = np.abs(np.asarray(logits) - case.arrays["output/logits"][:, 0]).max()
    assert 0 < err < D2_BOUND


def test_stylegan3_generator_reduced_vs_float32(golden):
    case, state = _load(golden, G3)
    G = convert3.generator_from_kwargs(case.meta["constructor_kwargs"], impl="xla")
    G = G.clone(num_fp16_res=1, fp16_dtype="bfloat16")  # rate 32 layers (32 * 2 > 32), not 16
    variables = convert3.convert_state_dict(state, G)
    ws = jnp.asarray(case.arrays["output/ws_psi1"])
    (img, _), inter = _captured(G, variables, ws, method="synthesize")
    # Official: use_fp16 = out_sampling_rate * 2^n > R, rates from the golden's JSON.
    layers = json.loads((golden / f"{G3}.json").read_text())["layers"]
    reduced = {k for k, v in layers.items() if v["out_sampling_rate"] * 2 > 32}
    assert reduced and len(reduced) < len(layers)
    for name in layers:
        assert inter[f"synthesis/{name}"].dtype == (
            jnp.bfloat16 if name in reduced else jnp.float32), name
    assert img.dtype == jnp.float32
    ref = case.arrays["output/img_psi1"].transpose(0, 2, 3, 1)
    assert 0 < _rel_rms(np.asarray(img), ref) < G3_BOUND


@pytest.mark.parametrize("dtype,bound", [("bfloat16", 0.08), ("float16", 0.025)])
def test_stylegan2_discriminator_gradients_reduced_vs_float32(golden, dtype, bound):
    """Parameter gradients of softplus(D(img)) through the reduced blocks, every leaf within
    `bound` (relative L2) of float32. Measured worst leaves: bf16 0.024, fp16 0.0077; before
    the bias was broadcast in float32 (ops.bias_act) the bf16 biases were off by 0.63."""
    case, state = _load(golden, D2)
    D = convert2.discriminator_from_kwargs(case.meta["constructor_kwargs"], impl="xla")
    variables = convert2.convert_state_dict(state, D)
    img = jnp.asarray(case.arrays["input/img"].transpose(0, 2, 3, 1))

    def grads(net, scale=1.0):
        def loss(p):
            logits, _ = net.apply({**variables, "params": p}, img, None)
            return jnp.mean(jax.nn.softplus(logits)), None
        g = jax.jit(jax.grad(lambda p: precision.loss_scaled(loss, scale)(p)[0]))
        return flax.traverse_util.flatten_dict(g(variables["params"]), sep="/")

    ref, low = grads(D), grads(D.clone(num_fp16_res=2, fp16_dtype=dtype), 1024.0)
    errors = {k: float(np.linalg.norm(low[k] - ref[k]) / np.linalg.norm(ref[k])) for k in ref}
    assert max(errors.values()) < bound, sorted(errors.items(), key=lambda kv: -kv[1])[:3]
    assert errors["b32/conv0/weight"] > 0  # really computed in the reduced dtype


def test_loss_scaled_keeps_values_and_gradients():
    """Static loss scaling: same loss and (power-of-two scale) bit-identical float32 gradients;
    the cotangent inside is S times larger."""
    p = {"w": jax.random.normal(jax.random.PRNGKey(0), (4, 3))}
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 4))

    def loss(params):
        return jnp.mean(jnp.tanh(x @ params["w"]) ** 2), {"aux": 1}

    (v1, a1), g1 = jax.value_and_grad(loss, has_aux=True)(p)
    (v2, a2), g2 = jax.value_and_grad(precision.loss_scaled(loss, 1024.0), has_aux=True)(p)
    assert v1 == v2 and a1 == a2
    np.testing.assert_array_equal(g1["w"], g2["w"])
    # Inside, the output's cotangent is scaled: d/dy of scale_grad(y, 8) * 1 = 8.
    assert float(jax.grad(lambda y: precision.scale_grad(y, 8.0))(1.0)) == 8.0
    assert precision.loss_scaled(loss, 1.0) is loss
    assert precision.resolve_loss_scale(0.0, progan.make_generator(
        "_test", num_fp16_res=1, fp16_dtype="float16")) == precision.FP16_LOSS_SCALE
    assert precision.resolve_loss_scale(0.0, progan.make_generator(
        "_test", num_fp16_res=1, fp16_dtype="bfloat16")) == 1.0
    assert precision.resolve_loss_scale(8.0) == 8.0


def test_num_fp16_res_0_is_the_float32_computation(golden):
    """num_fp16_res=0 traces the same program as before (no reduced dtype anywhere)."""
    case, state = _load(golden, G2)
    G = convert2.generator_from_kwargs(case.meta["constructor_kwargs"], impl="xla")
    variables = convert2.convert_state_dict(state, G)
    ws = jnp.asarray(case.arrays["output/ws_psi1"])
    img = jnp.zeros([2, 32, 32, 3])
    D = convert2.discriminator_from_kwargs(_load(golden, D2)[0].meta["constructor_kwargs"])

    def jaxprs(**kw):
        g = jax.make_jaxpr(lambda w: G.clone(**kw).apply(variables, w, noise_mode="const",
                                                         method="synthesize"))(ws)
        d = jax.eval_shape(lambda: D.init(jax.random.PRNGKey(0), img))
        d = jax.make_jaxpr(lambda x, v: D.clone(**kw).apply(v, x))(img, d)
        return str(g), str(d)

    base, zero = jaxprs(), jaxprs(num_fp16_res=0, fp16_dtype="bfloat16")
    assert base == zero
    assert "bf16" not in base[0] + base[1] and "bf16" in jaxprs(num_fp16_res=1)[0]


def test_progan_reduced_blocks():
    G, D = progan.make_generator("_test"), progan.make_discriminator("_test")
    z = jax.random.normal(jax.random.PRNGKey(1), (4, 8))
    x = jax.random.normal(jax.random.PRNGKey(2), (4, 16, 16, 3))
    vg = jax.jit(G.init)(jax.random.PRNGKey(0), z)
    vd = jax.jit(D.init)(jax.random.PRNGKey(0), x)
    img, _ = jax.jit(G.apply)(vg, z, alpha=0.5)
    score, _ = jax.jit(D.apply)(vd, x, alpha=0.5)
    kw = dict(num_fp16_res=1, fp16_dtype="bfloat16", conv_clamp=256.0)  # only 16^2
    (img_b, aux), inter = _captured(G.clone(**kw), vg, z, alpha=0.5)
    (score_b, _), inter_d = _captured(D.clone(**kw), vd, x, alpha=0.5)
    assert aux["features"].dtype == jnp.bfloat16 and inter["b8"].dtype == jnp.float32
    assert inter_d["b16"].dtype == jnp.bfloat16 and inter_d["b8"].dtype == jnp.float32
    assert img_b.dtype == score_b.dtype == jnp.float32
    # Random init, |img| <= 1.9, |score| <= 0.7: measured max errors 0.013 (G), 0.0010 (D).
    assert 0 < np.abs(img_b - img).max() < 0.05 and 0 < np.abs(score_b - score).max() < 0.005


# ----- Config wiring -----

def test_configs_reach_the_networks_and_the_loss_scale():
    """Official presets ask for 4 reduced resolutions, CPU presets for none; config.model
    fields reach G and D (StyleGAN2/3 and ProGAN); float16 turns on the static loss scale."""
    assert sg2_config.get_config("ffhq1024").model.num_fp16_res == 4
    assert sg3_config.get_config("ffhq1024_t").model.num_fp16_res == 4
    assert sg2_config.get_config("photos").model.num_fp16_res == 0
    assert sg3_config.get_config("ffhq1024_t,smoke").model.num_fp16_res == 0
    for family, module in (("stylegan2", sg2_config), ("stylegan3", sg3_config)):
        c = module.get_config("photos")
        c.model.update(num_fp16_res=3, fp16_dtype="float16")
        for net in stylegan.make_networks(c, family):
            assert (net.num_fp16_res, net.fp16_dtype) == (3, "float16"), (family, net)
        assert precision.resolve_loss_scale(c.train.loss_scale, *stylegan.make_networks(
            c, family)) == precision.FP16_LOSS_SCALE
    c = pg_config.get_config("photos")
    c.model.update(num_fp16_res=2, fp16_dtype="bfloat16", conv_clamp=256.0)
    for net in pg_recipe._networks(c):
        assert (net.num_fp16_res, net.fp16_dtype, net.conv_clamp) == (2, "bfloat16", 256.0)


# ----- Training in bfloat16 -----

def _config(family):
    c = (sg2_config if family == "stylegan2" else sg3_config).get_config("photos")
    c.model.update(num_fp16_res=2, fp16_dtype="bfloat16", z_dim=8, w_dim=8, mapping_layers=1,
                   channel_base=128, channel_max=8)
    if family == "stylegan3":
        c.model.num_layers = 4
    c.train.batch_size, c.train.num_steps = 4, 3
    c.train.d_reg_interval, c.train.g_reg_interval = 2, 2
    return c


@pytest.mark.slow
@pytest.mark.parametrize("family", ["stylegan2", "stylegan3"])
def test_bfloat16_training_steps_are_finite_with_float32_params(family):
    config = _config(family)
    networks = stylegan.make_networks(config, family)
    assert all((n.num_fp16_res, n.fp16_dtype) == (2, "bfloat16") for n in networks)
    mesh = sharding.make_mesh({"data": 1})
    recipe, _, shardings, init = train.build_state(config, mesh, networks)
    state, t = init(), config.train
    layout = gdata.Layout(recipe.real_batches_per_step, t.grad_accum, t.batch_size)
    batches = gdata.make_source(config.data, config.model.resolution, config.seed).batches(layout)
    in_sharding = sharding.batch_sharding(mesh)
    step = train.make_train_step(recipe, t.grad_accum, shardings, in_sharding)
    before = jax.tree.map(np.asarray, state.params)
    for _ in range(3):
        state, metrics = step(state, jax.device_put(next(batches), in_sharding))
        assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    leaves = jax.tree.leaves(state.params) + jax.tree.leaves(state.ema_params)
    assert leaves and all(leaf.dtype == jnp.float32 for leaf in leaves)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in leaves)
    moved = [np.abs(np.asarray(a) - b).max() for a, b in
             zip(jax.tree.leaves(state.params), jax.tree.leaves(before))]
    assert max(moved) > 0
