"""The generic train step: one `jax.jit` over the recipe's phases, then the EMA update.

Input layout: batch leaves are [S, A, B, ...] — S real sub-batches (one per phase with
uses_real and no `reals_from`), A gradient-accumulation micro-batches, B samples (sharded over
`data`). A phase with `reals_from` gets the sub-batch of the phase it names.
"""

import jax
import jax.numpy as jnp
import optax

from gan_zoo.ops.conv2d_resample import cpu_compiler_options, native_weight_grad
from gan_zoo.recipes.base import GANState, Phase


def ema_update(ema, params, decay):
    """ema <- decay * ema + (1 - decay) * params, in float32 (BigGAN §3 / spec §2.4)."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p.astype(e.dtype), ema, params)


def _grads(phase: Phase, state: GANState, batch, key, accum: int):
    """Loss gradient of one phase, averaged over `accum` micro-batches (lax.scan).

    The model collections (BN running stats, SN vectors) and the recipe scalars (a loss_fn may
    return updated scalars as a third aux element, e.g. the path-length mean) thread through the
    micro-batches. Returns (grads, (collections, scalars), metrics averaged over micro-batches).
    """
    params = state.params[phase.update]
    grad_fn = jax.value_and_grad(phase.loss_fn, has_aux=True)

    def micro(carry, xs):
        grads_sum, (cols, scalars) = carry
        i, mb = xs
        (_, aux), g = grad_fn(params, state.replace(collections=cols, scalars=scalars), mb,
                              jax.random.fold_in(key, i))
        cols, metrics, scalars = aux if len(aux) == 3 else (*aux, scalars)
        return (jax.tree.map(jnp.add, grads_sum, g), (cols, scalars)), metrics

    zeros = jax.tree.map(jnp.zeros_like, params)
    idx = jnp.arange(accum)
    carry = (zeros, (state.collections, state.scalars))
    if accum == 1:  # no scan: keeps the graph (and the trace) simple
        take = jax.tree.map(lambda x: x[0], batch) if batch is not None else None
        (grads, model_state), metrics = micro(carry, (idx[0], take))
        return grads, model_state, metrics
    (grads, model_state), metrics = jax.lax.scan(micro, carry, (idx, batch))
    grads = jax.tree.map(lambda g: g / accum, grads)
    return grads, model_state, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)


def _run_phase(phase: Phase, tx, accum: int, state: GANState, batch, key):
    """One optimizer update of state.params[phase.update]. Returns (state, metrics)."""
    grads, (cols, scalars), metrics = _grads(phase, state, batch, key, accum)
    group = phase.update
    updates, opt = tx.update(grads, state.opt_state[group], state.params[group])
    params = optax.apply_updates(state.params[group], updates)
    metrics = dict(metrics, grad_norm=optax.global_norm(grads))
    return state.replace(params={**state.params, group: params},
                         opt_state={**state.opt_state, group: opt}, collections=cols,
                         scalars=scalars), metrics


RAN = "ran/"  # metrics[RAN + phase name]: whether a lazy phase ran this step (bool)


def _maybe_run(phase: Phase, tx, accum: int, state: GANState, batch, key):
    """_run_phase on steps with step % every == 0 (lazy regularisation); else a no-op."""
    run = lambda s: _run_phase(phase, tx, accum, s, batch, key)
    if phase.every == 1:
        return run(state)
    shapes = jax.eval_shape(run, state)[1]
    skip_metrics = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
    return jax.lax.cond(state.step % phase.every == 0, run, lambda s: (s, skip_metrics), state)


def real_batches(phases, batch) -> dict:
    """{phase name: its real sub-batch} for the phases with uses_real: the next sub-batch of
    `batch` in phase order, or the one of the earlier phase named by `reals_from`."""
    out, index = {}, 0
    for phase in phases:
        if not phase.uses_real:
            continue
        if phase.reals_from:
            if phase.reals_from not in out:
                raise ValueError(f"Phase {phase.name!r}: reals_from={phase.reals_from!r} must "
                                 f"name an earlier phase that uses reals, got phases "
                                 f"{[p.name for p in phases]}")
            out[phase.name] = out[phase.reals_from]
        else:
            out[phase.name] = jax.tree.map(lambda x, j=index: x[j], batch)
            index += 1
    return out


def train_step(recipe, accum: int, state: GANState, batch):
    """All phases of one step in order, then the EMA and the recipe's post-step hook.

    Keys: fold_in(fold_in(rng, step), phase index), then the micro-batch index.
    Returns (state, metrics) with metrics["finite"] = all losses and grad norms finite.
    """
    step_key = jax.random.fold_in(state.rng, state.step)
    metrics, reals = {}, real_batches(recipe.phases, batch)
    for i, phase in enumerate(recipe.phases):
        state, m = _maybe_run(phase, recipe.optimizers[phase.update], accum, state,
                              reals.get(phase.name), jax.random.fold_in(step_key, i))
        metrics.update({f"{phase.name}/{k}": v for k, v in m.items()})
        if phase.every > 1:  # its metrics are zeros on the steps it skips
            metrics[RAN + phase.name] = state.step % phase.every == 0
    for group, schedule in recipe.learning_rates.items():
        metrics[f"lr/{group}"] = jnp.asarray(schedule(state.step), jnp.float32)
    if recipe.ema_decay is not None:
        decay = recipe.ema_decay(state.step)
        metrics["ema_decay"] = jnp.asarray(decay, jnp.float32)
        state = state.replace(ema_params=ema_update(state.ema_params, state.params["g"], decay))
    if recipe.post_step is not None:
        state = recipe.post_step(state)
    checked = [v for k, v in metrics.items() if k.endswith("loss") or k.endswith("grad_norm")]
    metrics["finite"] = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in checked]))
    return state.replace(step=state.step + 1), metrics


CPU_CONVS = ("ynnpack", "eigen")


def make_train_step(recipe, accum: int, state_sharding, batch_sharding,
                    cpu_convs: str = CPU_CONVS[0]):
    """The jitted step: explicit in/out shardings, state donated. Built once per config.

    cpu_convs (config.train.xla_cpu_convs), on CPU devices only: "ynnpack" = XLA:CPU's default
    convolutions, conv2d's weight gradient as per-tap matmuls; "eigen" = this jit compiled with
    XLA's Eigen convolutions and conv2d's backward traced with XLA's own weight-gradient conv
    (`conv2d_resample.native_weight_grad`). Eigen wins at wide layers (StyleGAN2 step at 128^2,
    channel_max 256: 0.72x, with R1 0.63x; 64^2 channel_max 128: 0.81x) and loses at the tiny
    CPU presets (1.25-1.46x), so the paper presets choose it (benchmarks/RESULTS.md, #20)."""
    if cpu_convs not in CPU_CONVS:
        raise ValueError(f"config.train.xla_cpu_convs must be one of {CPU_CONVS}, got "
                         f"{cpu_convs!r}")
    options = None
    if cpu_convs == "eigen":
        options = cpu_compiler_options(jax.tree.leaves(state_sharding)[0].device_set)

    def fn(state, batch):
        with native_weight_grad(options is not None):
            return train_step(recipe, accum, state, batch)
    return jax.jit(fn, in_shardings=(state_sharding, batch_sharding),
                   out_shardings=(state_sharding, None), donate_argnums=(0,),
                   compiler_options=options)


@jax.jit
def carry_lazy(previous: dict, metrics: dict) -> dict:
    """The metrics with each lazy phase's values replaced by those of the last step it ran
    (NaN before its first run in `previous`), and the RAN flags dropped: what the logs show."""
    out = {}
    for k, v in metrics.items():
        phase = k.split("/", 1)[0]
        ran = metrics.get(RAN + phase)
        if k.startswith(RAN):
            continue
        if ran is None:
            out[k] = v
        else:
            prev = previous.get(k, jnp.full(jnp.shape(v), jnp.nan, jnp.result_type(v, jnp.float32)))
            out[k] = jnp.where(ran, v, prev)
    return out
