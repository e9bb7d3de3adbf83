"""Fitting a random feature net on the run's own data: the CPU presets' stand-in for pretrained
weights (StyleGAN-XL's feature ViTs on the labels, stylegan_xl_fit; StyleGAN-T's tiny CLIP on
the captions, stylegan_t_clipfit). One Adam loop for both; each caller owns its loss."""

import itertools
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import optax


def adam_fit(loss_fn: Callable, params, batches: Iterable, steps: int, lr: float, key):
    """(params, losses) after `steps` Adam steps (default betas) of loss_fn(params, *batch, key_i)
    on the first `steps` batches (tuples of arrays), key_i = fold_in(key, i). One jit per call."""
    tx = optax.adam(lr)

    @jax.jit
    def step(params, opt_state, key, *batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = tx.init(params), []
    for i, batch in enumerate(itertools.islice(batches, steps)):
        params, opt_state, loss = step(params, opt_state, jax.random.fold_in(key, i),
                                       *(jnp.asarray(b) for b in batch))
        losses.append(loss)
    return params, [float(v) for v in losses]
