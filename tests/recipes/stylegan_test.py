"""StyleGAN2/3 recipe: regularisers vs direct computations, lazy Adam rescaling, style mixing,
EMA/blur schedules, 1 vs 8 devices (16^2 digits), bit-identical resume."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import stylegan2 as sg2_config
from configs import stylegan3 as sg3_config
from gan_zoo import data as gdata
from gan_zoo import losses, train
from gan_zoo.models import stylegan2, stylegan3
from gan_zoo.recipes import stylegan
from gan_zoo.train import sharding

_TINY_G = dict(z_dim=8, w_dim=8, mapping_layers=1, channel_base=128, channel_max=8)


def _networks(family: str, res: int = 32):
    """Tiny G/D (_test rows shrunk further) so a step compiles in seconds on CPU."""
    d = stylegan2.Discriminator(0, res, channel_base=128, channel_max=8, mapping_layers=1)
    if family == "stylegan2":
        return stylegan2.generator("config-f_test", img_resolution=res, **_TINY_G), d
    g = stylegan3.generator("config-t_test", img_resolution=res, num_layers=4, num_critical=1,
                            magnitude_ema_beta=0.9, **_TINY_G)
    return g, d


def _config(family: str, **overrides):
    """The photos preset at batch 8 with short lazy intervals, synchronous checkpoints."""
    module = sg2_config if family == "stylegan2" else sg3_config
    c = module.get_config("photos")
    c.train.batch_size, c.train.num_steps = 8, 4
    c.train.d_reg_interval, c.train.g_reg_interval = 2, 2
    if family == "stylegan3":  # exercise the config-R blur and the EMA ramp-up
        c.train.blur_sigma, c.train.blur_fade_kimg = 2.0, 0.016
    c.checkpoint.every_steps, c.checkpoint.use_async = 2, False
    c.log.every_steps, c.log.image_every_steps, c.log.grid_size = 1, 0, 4
    c.matmul_precision = "highest"
    for key, value in overrides.items():
        section, leaf = key.split(".")
        c[section][leaf] = value
    return c


# ----- Regularisers vs direct computations -----

def _tiny_synthesis():
    syn = stylegan2.SynthesisNetwork(w_dim=4, img_resolution=8, channel_base=32, channel_max=4,
                                     use_noise=False)
    ws = jax.random.normal(jax.random.PRNGKey(0), (2, syn.num_ws, 4))
    params = syn.init(jax.random.PRNGKey(1), ws, fused_modconv=False)
    return (lambda w: syn.apply(params, w, fused_modconv=False)), ws


def test_path_length_matches_explicit_jacobian():
    synth, ws = _tiny_synthesis()
    n, num_ws, w_dim = ws.shape
    y = jax.random.normal(jax.random.PRNGKey(2), (n, 8, 8, 3)) / 8.0
    # Direct: the full Jacobian of each sample's image w.r.t. its ws, then J^T y.
    jac = jax.jit(jax.jacrev(synth))(ws)  # [N, H, W, C, N, L, D]
    lengths = []
    for i in range(n):
        j_i = jac[i, :, :, :, i].reshape(-1, num_ws * w_dim)  # [H W C, L D]
        jty = (j_i.T @ y[i].reshape(-1)).reshape(num_ws, w_dim)
        lengths.append(np.sqrt(np.mean(np.sum(np.square(jty), axis=1))))
    got = jax.jit(lambda w, v: losses.path_lengths(synth, w, v))(ws, y)
    np.testing.assert_allclose(got, lengths, rtol=1e-5)
    a0 = 0.3
    penalty, a = losses.path_length_penalty(got, a0, 0.01)
    a_direct = a0 + 0.01 * (np.mean(lengths) - a0)
    np.testing.assert_allclose(a, a_direct, rtol=1e-6)
    np.testing.assert_allclose(penalty, np.mean((np.asarray(lengths) - a_direct) ** 2), rtol=1e-5)


def test_r1_matches_per_sample_gradient_norm():
    d = stylegan2.Discriminator(0, 8, channel_base=32, channel_max=4, mbstd_num_channels=0)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 3))
    params = d.init(jax.random.PRNGKey(1), x)
    d_fn = lambda v: d.apply(params, v)[0]  # noqa: E731
    per_sample = jax.jit(jax.vmap(jax.grad(lambda xi: d_fn(xi[None])[0])))(x)  # [N, H, W, C]
    direct = 0.5 * np.mean(np.sum(np.square(per_sample).reshape(3, -1), axis=1))
    got = jax.jit(lambda v: losses.r1_from_fn(d_fn, v))(x)
    np.testing.assert_allclose(got, direct, rtol=1e-5)

    # Dboth's one shared forward: logits and R1 as two separate forwards give them, and the
    # parameter gradient of softplus(-D(x)) + R1 through the shared forward equals theirs.
    def separate(p):
        logits = d.apply(p, x)[0]
        r1 = losses.r1_penalty(jax.grad(lambda v: jnp.sum(d.apply(p, v)[0]))(x))
        return jnp.mean(jax.nn.softplus(-logits)) + 10.0 * r1, logits

    def shared(p):
        logits, r1 = losses.r1_with_logits(lambda v: d.apply(p, v)[0], x)
        return jnp.mean(jax.nn.softplus(-logits)) + 10.0 * r1, logits

    (want, want_logits), want_grad = jax.jit(jax.value_and_grad(separate, has_aux=True))(params)
    (val, logits), grad = jax.jit(jax.value_and_grad(shared, has_aux=True))(params)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-6)
    np.testing.assert_allclose(val, want, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), grad,
                 want_grad)


# ----- Lazy regularisation, EMA, blur -----

@pytest.mark.parametrize("interval, lr, b2", [(16, 0.0018824, 0.990585), (4, 0.0016, 0.991992),
                                              (8, 0.0017778, 0.991106), (0, 0.002, 0.99)])
def test_lazy_adam_rescaling(interval, lr, b2):
    tx, lr_eff = stylegan.lazy_adam(0.002, 0.0, 0.99, 1e-8, interval)
    np.testing.assert_allclose(lr_eff, lr, rtol=5e-5)  # spec A8.3 table (rounded)
    ref = optax.adam(lr_eff, b1=0.0, b2=0.99 ** stylegan.lazy_ratio(interval), eps=1e-8)
    np.testing.assert_allclose(0.99 ** stylegan.lazy_ratio(interval), b2, rtol=2e-6)
    params = {"w": jnp.ones(5)}
    s, s_ref = tx.init(params), ref.init(params)
    for k in range(3):
        g = {"w": jax.random.normal(jax.random.PRNGKey(k), (5,))}
        u, s = tx.update(g, s)
        u_ref, s_ref = ref.update(g, s_ref)
        np.testing.assert_allclose(u["w"], u_ref["w"], rtol=1e-6)


def test_recipe_learning_rates_and_phases():
    recipe = stylegan.make_recipe(_config("stylegan2", **{"train.g_reg_interval": 4,
                                                          "train.d_reg_interval": 16}),
                                  _networks("stylegan2"))
    assert [(p.name, p.update, p.every) for p in recipe.phases] == [
        ("g", "g", 1), ("g_pl", "g", 4), ("d", "d", 1), ("d_r1", "d", 16)]
    np.testing.assert_allclose(recipe.learning_rates["g"](0), 0.002 * 4 / 5, rtol=1e-6)
    np.testing.assert_allclose(recipe.learning_rates["d"](0), 0.002 * 16 / 17, rtol=1e-6)
    sg3 = stylegan.make_recipe(_config("stylegan3"), _networks("stylegan3"))
    assert [p.name for p in sg3.phases] == ["g", "d", "d_r1"]  # no path length, no mixing


def test_ema_beta_half_life_and_rampup():
    np.testing.assert_allclose(stylegan.ema_beta(100, 32, 10.0, 0.0), 0.997784, rtol=1e-6)
    assert float(stylegan.ema_beta(0, 32, 10.0, 0.05)) == 0.0  # ramp-up: tracks G at first
    # Ramp-up: ema_nimg = min(10k, cur_nimg * 0.05) -> 1600 images at step 1000, batch 32.
    np.testing.assert_allclose(stylegan.ema_beta(1000, 32, 10.0, 0.05), 0.5 ** (32 / 1600),
                               rtol=1e-6)


def test_blur_matches_official_filter_and_fades():
    img = jax.random.normal(jax.random.PRNGKey(0), (1, 12, 12, 2))
    sigma = 1.5
    x = np.arange(-4, 5)  # floor(3 sigma) = 4
    f = np.exp2(-np.square(x / sigma))
    f = f / f.sum()
    pad = np.pad(np.asarray(img), ((0, 0), (4, 4), (4, 4), (0, 0)))
    direct = sum(f[i] * f[j] * pad[:, i:i + 12, j:j + 12] for i in range(9) for j in range(9))
    np.testing.assert_allclose(stylegan.blur_images(img, sigma, 10.0), direct, atol=1e-6)
    np.testing.assert_allclose(stylegan.blur_images(img, 0.0, 10.0), img, atol=1e-7)
    assert float(stylegan.blur_sigma_at(0, 32, 10.0, 200.0)) == 10.0
    np.testing.assert_allclose(stylegan.blur_sigma_at(3125, 32, 10.0, 200.0), 5.0, rtol=1e-6)
    assert float(stylegan.blur_sigma_at(10_000, 32, 10.0, 200.0)) == 0.0


# ----- Style mixing -----

def test_style_mixing_puts_second_ws_after_cutoff():
    ws1, ws2 = jnp.zeros((2, 6, 3)), jnp.ones((2, 6, 3))
    out = stylegan.mix_styles(ws1, ws2, jnp.int32(4))
    np.testing.assert_array_equal(out[:, :4], 0.0)
    np.testing.assert_array_equal(out[:, 4:], 1.0)
    # Through the recipe (p = 1): first slot from z1, last from z2, one crossover in [1, num_ws).
    config = _config("stylegan2", **{"train.style_mixing_prob": 1.0})
    G, D = _networks("stylegan2")
    nets = stylegan._Nets(G, D, config)
    params = G.init(jax.random.PRNGKey(0), jnp.zeros((1, 8)), noise_mode="const")
    key = jax.random.PRNGKey(5)
    cols = {k: v for k, v in params.items() if k != "params"}
    ws, _, _ = jax.jit(nets.run_ws, static_argnums=3)(params["params"], cols, key, 4)
    kz, kz2 = jax.random.split(key, 5)[:2]
    w1 = G.apply(params, jax.random.normal(kz, (4, 8)), method="map")
    w2 = G.apply(params, jax.random.normal(kz2, (4, 8)), method="map")
    from_2 = np.all(np.isclose(ws, w2), axis=(0, 2))  # [num_ws]
    assert np.all(np.isclose(ws, w1) | np.isclose(ws, w2))
    cut = int(np.argmax(from_2))
    assert 1 <= cut < G.num_ws and from_2[cut:].all() and not from_2[:cut].any(), from_2


# ----- Training steps: 1 vs 8 devices, resume -----

def _steps(config, family: str, n_devices: int, n_steps: int, cpu_convs: str = "ynnpack"):
    mesh = sharding.make_mesh({"data": n_devices})
    networks = _networks(family, config.model.resolution)
    recipe, _, shardings, init = train.build_state(config, mesh, networks)
    state, t = init(), config.train
    layout = gdata.Layout(recipe.real_batches_per_step, t.grad_accum, t.batch_size)
    batches = gdata.make_source(config.data, config.model.resolution, config.seed).batches(layout)
    in_sharding = sharding.batch_sharding(mesh)
    step_fn = train.make_train_step(recipe, t.grad_accum, shardings, in_sharding, cpu_convs)
    out = []
    for _ in range(n_steps):
        state, metrics = step_fn(state, jax.device_put(next(batches), in_sharding))
        out.append({k: float(v) for k, v in metrics.items() if "loss" in k or "pl_" in k})
    return out, state


@pytest.mark.parametrize("family", ["stylegan2", "stylegan3"])
def test_one_and_eight_devices_give_the_same_losses(family):
    # At 16^2 (one G and one D block fewer than 32^2: the same layers, a cheaper compile), on
    # digits (photos crops start at 32^2; the unconditional model ignores the labels).
    # The 8-device StyleGAN2 run also compiles as the paper presets do on CPU (Eigen convs and
    # XLA's weight-gradient conv, config.train.xla_cpu_convs="eigen", R1 and PL included).
    config = _config(family, **{"model.resolution": 16, "data.name": "digits"})
    one, s1 = _steps(config, family, 1, 2)
    eight, s8 = _steps(config, family, 8, 2, "eigen" if family == "stylegan2" else "ynnpack")
    for a, b in zip(one, eight):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-4, atol=1e-5)
    assert all(np.isfinite(v) for m in one for v in m.values())
    assert one[0]["d_r1/loss"] > 0 and one[1]["d_r1/loss"] == 0  # lazy: every 2nd step
    if family == "stylegan2":
        assert one[0]["g_pl/loss"] > 0 and float(s1.scalars["pl_mean"]) > 0
        np.testing.assert_allclose(s1.scalars["pl_mean"], s8.scalars["pl_mean"], rtol=1e-4)
    # w_avg moved (update_emas in the D step).
    assert np.abs(np.asarray(s1.collections["g"]["ema_stats"]["mapping"]["w_avg"])).sum() > 0


def _run(config, family, workdir, stop_after=0):
    return train.run(config, str(workdir), networks=_networks(family), stop_after=stop_after)


@pytest.mark.slow
def test_resumed_run_is_bit_identical(tmp_path):
    family, config = "stylegan2", _config("stylegan2")
    state, _ = _run(config, family, tmp_path / "resumed", stop_after=2)
    assert int(state.step) == 2
    full, _ = _run(config, family, tmp_path / "full")
    resumed, _ = _run(config, family, tmp_path / "resumed")
    assert int(full.step) == int(resumed.step) == 4
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    shutil.rmtree(tmp_path)
