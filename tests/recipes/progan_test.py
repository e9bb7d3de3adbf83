"""ProGAN recipe: WGAN-GP + drift against direct computations, the growing schedule, and train
steps that carry one GANState across a resolution change."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from gan_zoo import losses
from gan_zoo.models import progan as models
from gan_zoo.recipes import progan

# ----- Losses -----


@pytest.mark.parametrize("target", [1.0, 750.0])
def test_gradient_penalty_linear_critic(target):
    # D(x) = <w, x> per sample: ∇_x D = w everywhere, so GP = (‖w‖ − γ)² / γ² exactly.
    w = jax.random.normal(jax.random.key(0), (4, 4, 3)) * 3.0
    critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))  # noqa: E731
    x_hat = jax.random.normal(jax.random.key(1), (5, 4, 4, 3))
    expect = (np.linalg.norm(np.asarray(w)) - target) ** 2 / target ** 2
    np.testing.assert_allclose(losses.gradient_penalty(critic, x_hat, target), expect,
                               rtol=1e-5)


def test_gradient_penalty_matches_per_sample_grad_on_interpolates():
    k = jax.random.split(jax.random.key(2), 4)
    v = jax.random.normal(k[0], (6,))
    critic = lambda x: jnp.sum(jnp.tanh(x * v) ** 2, axis=-1)  # noqa: E731, nonlinear
    real, fake = jax.random.normal(k[1], (3, 6)), jax.random.normal(k[2], (3, 6))
    x_hat = losses.interpolate(k[3], real, fake)
    # x̂ lies on the segment real -> fake with one u in [0, 1] per sample.
    u = jnp.sum((x_hat - real) * (fake - real), -1) / jnp.sum((fake - real) ** 2, -1)
    np.testing.assert_allclose(x_hat, real + u[:, None] * (fake - real), atol=1e-6)
    assert np.all((u >= 0) & (u <= 1)) and len(np.unique(np.round(u, 6))) == 3
    direct = np.mean([(np.linalg.norm(jax.grad(lambda x: critic(x[None])[0])(x_hat[i])) - 1) ** 2
                      for i in range(3)])
    np.testing.assert_allclose(losses.gradient_penalty(critic, x_hat), direct, rtol=1e-5)


def test_gradient_penalty_is_twice_differentiable():
    critic = lambda w, x: jnp.sum(jnp.tanh(x * w), axis=-1)  # noqa: E731
    x = jax.random.normal(jax.random.key(3), (4, 5))
    g = jax.grad(lambda w: losses.gradient_penalty(lambda xx: critic(w, xx), x))(jnp.ones(5))
    assert g.shape == (5,) and np.all(np.isfinite(g)) and np.any(g != 0)


def test_wgan_drift_and_label_terms():
    real, fake = jnp.array([1.0, 3.0]), jnp.array([-2.0, 0.0])
    loss, (r, f) = losses.wgan_d(real, fake)
    assert (float(loss), float(r), float(f)) == (-3.0, 2.0, -1.0)
    assert float(losses.wgan_g(fake)) == 1.0
    assert float(losses.drift_penalty(real)) == 5.0  # (1 + 9) / 2
    logits, labels = jnp.array([[0.0, np.log(3.0)], [0.0, 0.0]]), jnp.array([1, 0])
    np.testing.assert_allclose(losses.acgan_label_penalty(logits, labels),
                               (-np.log(0.75) - np.log(0.5)) / 2, rtol=1e-6)


# ----- Schedule -----


def test_schedule_phase_boundaries():
    g = progan.Growth(16, phase_images=100, batch_sizes={4: 16, 8: 12, 16: 6})
    cases = {0: (4, 1.0, 16), 99: (4, 1.0, 16), 100: (8, 0.0, 12), 150: (8, 0.5, 12),
             199: (8, 0.99, 12), 200: (8, 1.0, 12), 299: (8, 1.0, 12), 300: (16, 0.0, 6),
             375: (16, 0.75, 6), 400: (16, 1.0, 6), 500: (16, 1.0, 6), 10_000: (16, 1.0, 6)}
    for seen, (res, alpha, batch) in cases.items():
        got = progan.schedule(seen, g)
        assert got[0] == res and got[2] == batch, (seen, got)
        np.testing.assert_allclose(got[1], alpha, atol=1e-6, err_msg=str(seen))
    # The traced α agrees with the host schedule.
    seen = jnp.array(list(cases), jnp.int32)
    np.testing.assert_allclose(jax.jit(lambda s: progan.alpha_at(s, g))(seen),
                               [a for _, a, _ in cases.values()], atol=1e-6)


def test_celebahq_schedule_matches_paper():
    # PG App. A.1 / spec B2: 800k per phase; stabilised 1024^2 after 0.8M + 8 x 1.6M = 13.6M.
    g = progan.Growth(1024, 800_000)
    assert g.growth_images == 13_600_000
    assert progan.schedule(799_999, g) == (4, 1.0, 16)
    assert progan.schedule(12_000_000, g) == (1024, 0.0, 3)  # last fade-in starts
    assert progan.schedule(12_400_000, g) == (1024, 0.5, 3)
    assert progan.schedule(12_800_000, g) == (1024, 1.0, 3)
    assert progan.schedule(19_000_000, g) == (1024, 1.0, 3)
    assert progan.schedule(5_600_000, g) == (64, 0.0, 16)  # phase 7: fade-in of 64^2
    assert progan.schedule(9_600_000, g) == (256, 1.0, 14)  # phase 12: stabilise 256^2
    assert progan.schedule(10_400_000, g) == (512, 0.0, 6)
    with pytest.raises(ValueError, match="batch_sizes"):
        progan.Growth(2048)


def test_prepare_reals_blend():
    x = jax.random.normal(jax.random.key(4), (2, 32, 32, 3))
    x16 = models.avgpool2(x)
    np.testing.assert_allclose(progan.prepare_reals(x, 16, 1.0), x16, atol=1e-6)
    np.testing.assert_allclose(progan.prepare_reals(x, 16, 0.0),
                               models.upsample_nn(models.avgpool2(x16)), atol=1e-6)
    with pytest.raises(ValueError, match="ProGAN reals"):
        progan.prepare_reals(x, 64, 1.0)


# ----- Recipe -----


def _config(n_classes=0):
    train = dict(progan.TRAIN_DEFAULTS, phase_kimg=0.032,  # 32 images per phase
                 batch_sizes={4: 4, 8: 4, 16: 4})
    return ml_collections.ConfigDict(dict(
        model=dict(variant="_test", resolution=16, n_classes=n_classes), train=train))


def _step(recipe, state, batch, key):
    """Minimal stand-in for the generic trainer: each phase, then the EMA and post_step."""
    for i, phase in enumerate(recipe.phases):
        grad_fn = jax.grad(phase.loss_fn, has_aux=True)
        grads, (_, metrics) = grad_fn(state.params[phase.update], state,
                                      batch if phase.uses_real else None,
                                      jax.random.fold_in(key, i))
        tx = recipe.optimizers[phase.update]
        upd, opt = tx.update(grads, state.opt_state[phase.update])
        state = state.replace(
            params={**state.params, phase.update: optax.apply_updates(
                state.params[phase.update], upd)},
            opt_state={**state.opt_state, phase.update: opt})
    d = recipe.ema_decay(state.step)
    ema = jax.tree.map(lambda e, p: d * e + (1 - d) * p, state.ema_params, state.params["g"])
    return recipe.post_step(state.replace(ema_params=ema, step=state.step + 1)), metrics


def test_recipe_steps_across_a_resolution_change():
    # Label-conditioned (AC-GAN head); the unconditional networks are covered in tests/models.
    n_classes = 3
    config = _config(n_classes)
    recipes = progan.make_recipes(config)
    assert sorted(recipes) == [4, 8, 16]
    r4, r8 = recipes[4], recipes[8]
    assert r4.optimizers["g"] is not None and len(r4.phases) == 2  # n_critic = 1
    state = jax.jit(lambda k: r4.init_state(k, None))(jax.random.key(0))
    tree = jax.tree.structure(state)
    assert float(state.scalars["alpha"]) == 1.0 and int(state.scalars["images_seen"]) == 0
    batch = {"image": jax.random.uniform(jax.random.key(1), (4, 16, 16, 3), minval=-1, maxval=1),
             "label": jnp.array([0, 1, 2, 0])}
    step4, step8 = jax.jit(lambda s, b, k: _step(r4, s, b, k)), \
        jax.jit(lambda s, b, k: _step(r8, s, b, k))
    for i in range(8):  # 8 steps x 4 images = one 32-image phase: stabilise 4^2
        state, _ = step4(state, batch, jax.random.key(i))
    assert int(state.scalars["images_seen"]) == 32 and float(state.scalars["alpha"]) == 0.0
    assert progan.schedule(32, progan.growth_from_config(config))[:2] == (8, 0.0)
    state, metrics = step8(state, batch, jax.random.key(9))  # same pytree, new resolution
    assert jax.tree.structure(state) == tree
    np.testing.assert_allclose(state.scalars["alpha"], 4 / 32)
    assert "label" in metrics
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    images = jax.jit(lambda s, y: r8.sample_fn(s, jax.random.key(2), y, None, None))(
        state, jnp.zeros((2,), jnp.int32))
    assert images.shape == (2, 8, 8, 3) and np.all(np.isfinite(images))


def test_recipe_hyperparameters_follow_paper():
    t = progan.TRAIN_DEFAULTS
    assert (t["lr"], t["b1"], t["b2"], t["adam_eps"]) == (1e-3, 0.0, 0.99, 1e-8)
    assert (t["gp_lambda"], t["gp_target"], t["drift"], t["ema_decay"]) == (10.0, 1.0, 1e-3, 0.999)
    r = progan.make_recipe(_config(), resolution=8)
    assert float(r.ema_decay(jnp.int32(5))) == pytest.approx(0.999)
    with pytest.raises(ValueError, match="resolution must be one of"):
        progan.make_recipe(_config(), resolution=32)
    state = jax.eval_shape(lambda: r.init_state(jax.random.key(0), None))
    reset = jax.eval_shape(lambda s: progan.reset_optimizers(s, r.optimizers), state)
    assert jax.tree.structure(reset.opt_state) == jax.tree.structure(state.opt_state)
