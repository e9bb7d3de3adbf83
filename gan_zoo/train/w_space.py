"""W-space access to a train state's EMA generator, for W-space metrics (PPL).

A recipe may declare it (`Recipe.w_space`); otherwise a generator with StyleGAN's `map` and
`synthesize` methods (StyleGAN2 / StyleGAN3, found by those methods, not by family name) gets the
default below. Other recipes (BigGAN, ProGAN) have no W space.
"""

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class WSpace:
    """The two functions `gan_zoo.metrics.ppl` needs."""

    sample_w: Callable  # (key, 2n) -> ws [2n, ...]; rows i and n + i share a label
    synthesize: Callable  # ws [n, ...] -> images [n, H, W, 3] float in [-1, 1], fixed noise


def has_w_space(recipe) -> bool:
    """True when `recipe` declares a W space or its G has StyleGAN's map + synthesize."""
    if getattr(recipe, "w_space", None) is not None:
        return True
    G = recipe.networks.get("g")
    return callable(getattr(G, "map", None)) and callable(getattr(G, "synthesize", None))


def w_space(recipe, state, collections, batch_size: int) -> Optional[WSpace]:
    """The recipe's W space for the EMA G of `state` (None when it has none).

    collections: G's collections to sample with (`state.collections["g"]`, or the recipe's
    sampling collections). batch_size: images per compiled call (smaller calls are padded).
    """
    hook = getattr(recipe, "w_space", None)
    if hook is not None:
        return hook(state, collections, batch_size)
    if not has_w_space(recipe):
        return None
    return stylegan_w_space(recipe.networks["g"], state, collections, recipe.n_classes,
                            batch_size)


def stylegan_w_space(G, state, collections, n_classes: int, batch_size: int) -> WSpace:
    """W = f(z, c) without truncation (official PPL); g(ws) with the constant noise buffers
    (the official PPL re-draws those buffers for every batch; here the stored ones serve all)."""
    params = state.ema_params if state.ema_params is not None else state.params["g"]
    variables = {"params": params, **collections}

    @jax.jit
    def map_fn(variables, z, labels):
        c = jax.nn.one_hot(labels, n_classes, dtype=jnp.float32) if n_classes else None
        return G.apply(variables, z, c, method="map")

    @jax.jit
    def synth_fn(variables, ws):
        img, _ = G.apply(variables, ws, noise_mode="const", method="synthesize")
        return img.astype(jnp.float32)

    def sample_w(key, m):
        k_z, k_c = jax.random.split(key)
        z = jax.random.normal(k_z, (m, G.z_dim), jnp.float32)
        labels = jax.random.randint(k_c, ((m + 1) // 2,), 0, max(n_classes, 1))
        labels = jnp.concatenate([labels, labels])[:m]  # end points of a pair share c
        return _padded(lambda z, y: map_fn(variables, z, y), 2 * batch_size, z, labels)

    def synthesize(ws):
        return _padded(lambda w: synth_fn(variables, w), 2 * batch_size, ws)

    return WSpace(sample_w, synthesize)


def _padded(fn, size: int, *args):
    """fn on args padded to `size` rows (one compile), the output cut back to the true rows."""
    m = args[0].shape[0]
    if m > size:
        return jnp.concatenate([_padded(fn, size, *(a[i:i + size] for a in args))
                                for i in range(0, m, size)])
    pad = lambda a: jnp.concatenate([a, jnp.zeros((size - m,) + a.shape[1:], a.dtype)])  # noqa
    return fn(*map(pad, args))[:m]
