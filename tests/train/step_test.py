"""The sharded train step: device-count independence, a single trace, falling loss, EMA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import data as gdata
from gan_zoo import train
from gan_zoo.train import sharding
from tests.train._tiny import tiny_config, tiny_networks


def _steps(config, n_devices: int, n_steps: int):
    """Runs n_steps on a mesh of n_devices; returns (losses per step, jitted step fn)."""
    mesh = sharding.make_mesh({"data": n_devices})
    recipe, _, shardings, init = train.build_state(config, mesh, tiny_networks(config))
    state = init()
    t = config.train
    layout = gdata.Layout(recipe.real_batches_per_step, t.grad_accum, t.batch_size // t.grad_accum)
    source = gdata.make_source(config.data, config.model.resolution, config.seed)
    in_sharding = sharding.batch_sharding(mesh)
    step_fn = train.make_train_step(recipe, t.grad_accum, shardings, in_sharding)
    batches = source.batches(layout)
    losses = []
    for _ in range(n_steps):
        batch = jax.device_put(next(batches), in_sharding)
        state, metrics = step_fn(state, batch)
        losses.append({k: float(v) for k, v in metrics.items() if k.endswith("loss")})
    return losses, step_fn, state


def test_one_and_eight_devices_give_the_same_losses():
    config = tiny_config()
    one, fn1, _ = _steps(config, 1, 3)
    eight, fn8, _ = _steps(config, 8, 3)
    for a, b in zip(one, eight):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=2e-5, atol=1e-6)
    # The train step is traced and compiled once for the whole run.
    # (_cache_size counts JAX's C++ fast-path cache; in a long pytest worker it read 0 once:
    # entries can be dropped, so "no retrace" is at most one entry.)
    assert fn1._cache_size() <= 1 and fn8._cache_size() <= 1


def test_d_loss_falls_with_g_frozen_and_grad_accumulation():
    config = tiny_config(**{"train.lr_g": 0.0, "train.lr_d": 1e-3, "train.ortho_beta": 0.0,
                            "train.grad_accum": 2, "train.batch_size": 16})
    losses, _, state = _steps(config, 2, 20)
    assert int(state.step) == 20
    d = [m["d0/loss"] for m in losses]
    assert np.mean(d[-5:]) < 0.6 * np.mean(d[:3]), d


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_ema_update(decay):
    ema = {"w": jnp.ones(3)}
    out = train.ema_update(ema, {"w": jnp.zeros(3)}, decay)
    np.testing.assert_allclose(out["w"], decay)


def test_lazy_phase_logs_its_last_values_not_zeros():
    import dataclasses

    from gan_zoo.train import step as step_lib

    config = tiny_config()
    mesh = sharding.make_mesh({"data": 1})
    recipe, _, shardings, init = train.build_state(config, mesh, tiny_networks(config))
    d = recipe.phases[0]
    recipe = dataclasses.replace(recipe, phases=(dataclasses.replace(d, every=2),)
                                 + tuple(recipe.phases[1:]))
    t = config.train
    layout = gdata.Layout(recipe.real_batches_per_step, t.grad_accum, t.batch_size // t.grad_accum)
    batches = gdata.make_source(config.data, config.model.resolution, config.seed).batches(layout)
    step_fn = train.make_train_step(recipe, t.grad_accum, shardings, sharding.batch_sharding(mesh))
    state, shown, raw = init(), {}, []
    for _ in range(3):
        state, metrics = step_fn(state, next(batches))
        raw.append(metrics)
        shown = step_lib.carry_lazy(shown, metrics)
        if _ == 1:
            after_skip = shown
    key = f"{d.name}/loss"
    assert [bool(m[step_lib.RAN + d.name]) for m in raw] == [True, False, True]
    assert float(raw[1][key]) == 0.0  # the skipped step's own metric is a placeholder ...
    assert float(after_skip[key]) == float(raw[0][key]) != 0.0  # ... the log shows step 0's
    assert float(shown[key]) == float(raw[2][key]) and step_lib.RAN + d.name not in shown
    # Before a lazy phase first runs (a resume mid-interval), nothing is shown for it.
    fresh = step_lib.carry_lazy({}, raw[1])
    assert np.isnan(float(fresh[key]))


def test_make_train_step_rejects_an_unknown_cpu_conv_choice():
    with pytest.raises(ValueError, match=r"config.train.xla_cpu_convs .* got 'mkl'"):
        train.make_train_step(None, 1, None, None, "mkl")
