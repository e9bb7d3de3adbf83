"""Phases of the generic train step: a phase that reuses another phase's reals gets exactly
those reals (and the step reads one real sub-batch less); a skipped lazy phase leaves the state
as if the phase did not exist."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_zoo.recipes.base import GANState, Phase, Recipe
from gan_zoo.train import step as step_lib


def _loss(params, state, batch, key):
    """(w - mean(reals))^2 (G: (w - 1)^2); reports the sum of the reals it was given."""
    del key
    target = 1.0 if batch is None else jnp.mean(batch["image"])
    loss = jnp.sum(jnp.square(params["w"] - target))
    seen = jnp.float32(0.0) if batch is None else jnp.sum(batch["image"])
    return loss, (state.collections, {"loss": loss, "real_sum": seen})


def _recipe(lazy: bool = True, reuse: bool = True) -> Recipe:
    phases = [Phase("g", _loss, update="g", uses_real=False), Phase("d", _loss)]
    if lazy:
        phases.append(Phase("d_r1", _loss, every=2, reals_from="d" if reuse else ""))
    tx = optax.sgd(0.1)
    return Recipe(init_state=None, phases=tuple(phases), optimizers={"g": tx, "d": tx},
                  sample_fn=None, networks={})


def _state(recipe, step: int = 0) -> GANState:
    params = {"g": {"w": jnp.arange(3.0)}, "d": {"w": jnp.ones(3)}}
    return GANState(step=jnp.int32(step), rng=jax.random.PRNGKey(0), params=params,
                    opt_state={k: recipe.optimizers[k].init(v) for k, v in params.items()},
                    ema_params=None, collections={}, scalars={})


def _batch(s: int):
    x = jax.random.normal(jax.random.PRNGKey(1), (s, 1, 4, 2, 2, 3))  # [S, A, B, H, W, C]
    return {"image": x, "label": jnp.zeros((s, 1, 4), jnp.int32)}


def test_r1_phase_sees_exactly_the_d_main_reals():
    recipe = _recipe()
    assert recipe.real_batches_per_step == 1  # was 2 before reals_from
    batch = _batch(1)
    _, m = jax.jit(lambda s, b: step_lib.train_step(recipe, 1, s, b))(_state(recipe), batch)
    want = float(jnp.sum(batch["image"]))
    assert float(m["d/real_sum"]) == float(m["d_r1/real_sum"]) == pytest.approx(want, rel=1e-6)
    assert bool(m[step_lib.RAN + "d_r1"])
    # Without reuse the lazy phase reads the second sub-batch.
    recipe2 = _recipe(reuse=False)
    assert recipe2.real_batches_per_step == 2
    _, m2 = step_lib.train_step(recipe2, 1, _state(recipe2), _batch(2))
    assert float(m2["d_r1/real_sum"]) == pytest.approx(float(jnp.sum(_batch(2)["image"][1])),
                                                       rel=1e-6)


@pytest.mark.parametrize("phases", [
    [Phase("d", _loss, reals_from="r1"), Phase("r1", _loss)],  # names a later phase
    [Phase("d", _loss), Phase("r1", _loss, reals_from="nope")],
    [Phase("g", _loss, uses_real=False), Phase("r1", _loss, reals_from="g")]])  # no reals
def test_reals_from_must_name_an_earlier_phase_with_reals(phases):
    with pytest.raises(ValueError, match="reals_from"):
        step_lib.real_batches(phases, _batch(2))


def test_skipped_lazy_phase_leaves_the_state_of_a_recipe_without_it():
    lazy, plain = _recipe(lazy=True), _recipe(lazy=False)
    fns = [jax.jit(lambda s, b, r=r: step_lib.train_step(r, 1, s, b)) for r in (lazy, plain)]
    step = lambda r, s, b: fns[r is plain](s, b)  # noqa: E731
    for n in (1, 3):  # steps with step % 2 != 0: the lazy phase is skipped
        a, ma = step(lazy, _state(lazy, n), _batch(1))
        b, _ = step(plain, _state(plain, n), _batch(1))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
        assert not bool(ma[step_lib.RAN + "d_r1"]) and float(ma["d_r1/loss"]) == 0.0
    ran, _ = step(lazy, _state(lazy, 2), _batch(1))
    skipped, _ = step(plain, _state(plain, 2), _batch(1))
    assert not np.array_equal(ran.params["d"]["w"], skipped.params["d"]["w"])


def test_stylegan_r1_reuses_the_d_main_reals():
    from configs import stylegan2 as sg2_config
    from gan_zoo.recipes import stylegan

    recipe = stylegan.make_recipe(sg2_config.get_config("ffhq1024"))
    by_name = {p.name: p for p in recipe.phases}
    assert by_name["d_r1"].reals_from == "d" and by_name["d_r1"].every == 16
    assert recipe.real_batches_per_step == 1
    assert dataclasses.replace(by_name["d_r1"], reals_from="").uses_real
