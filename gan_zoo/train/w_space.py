"""W-space access to a train state's EMA generator, for W-space metrics (PPL, EQ-T, EQ-R).

A recipe may declare it (`Recipe.w_space`); otherwise a generator with StyleGAN's `map` and
`synthesize` methods (StyleGAN2 / StyleGAN3, found by those methods, not by family name) gets the
default below. Other recipes (BigGAN, ProGAN) have no W space. The equivariance metrics also need
G's input transform (StyleGAN3's Fourier-feature input buffer `synthesis/input/transform`, found
in G's `buffers` collection): the default W space exposes it when G has one.
"""

import dataclasses
import functools
from typing import Callable, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.models.stylegan2_layers import merge_noise, split_noise

# StyleGAN3 §3.1 / App. E: the user transform of the Fourier-feature input (identity: none).
INPUT_TRANSFORM = ("buffers", "synthesis", "input", "transform")
NOISE_SEED = 0x9E1  # purpose tag of the PPL noise maps


@dataclasses.dataclass(frozen=True)
class WSpace:
    """The functions `gan_zoo.metrics.ppl` and `gan_zoo.metrics.equivariance` need."""

    sample_w: Callable  # (key, 2n) -> ws [2n, ...]; rows i and n + i share a label
    synthesize: Callable  # ws [n, ...] -> images [n, H, W, 3] float in [-1, 1], fixed noise
    # (ws, transform [3, 3]) -> images with G's input transform set (EQ-T / EQ-R); None: G has
    # no input transform.
    synthesize_transformed: Optional[Callable] = None


def has_w_space(recipe) -> bool:
    """True when `recipe` declares a W space or its G has StyleGAN's map + synthesize."""
    if getattr(recipe, "w_space", None) is not None:
        return True
    G = recipe.networks.get("g")
    return callable(getattr(G, "map", None)) and callable(getattr(G, "synthesize", None))


def w_space(recipe, state, collections, batch_size: int, mesh=None) -> Optional[WSpace]:
    """The recipe's W space for the EMA G of `state` (None when it has none).

    collections: G's collections to sample with (`state.collections["g"]`, or the recipe's
    sampling collections). batch_size: images per call, for a recipe's own hook (called
    without the mesh). mesh: the default W space shards its batches over the mesh's 'data' axis
    (None: all devices).
    """
    hook = getattr(recipe, "w_space", None)
    if hook is not None:
        return hook(state, collections, batch_size)
    if not has_w_space(recipe):
        return None
    return stylegan_w_space(recipe.networks["g"], state, collections, recipe.n_classes, mesh)


def stylegan_w_space(G, state, collections, n_classes: int, mesh=None) -> WSpace:
    """W = f(z, c) without truncation (official PPL / equivariance); g(ws) with constant noise
    buffers, re-drawn for every `synthesize` call (one PPL batch: both ends of every pair see
    the same maps), as the official PPL sampler does; the k-th call draws them from
    fold_in(PRNGKey(NOISE_SEED), k), so a run is deterministic. Mapping and synthesis run per
    device on the batch sharded over 'data' (power-of-two padded batches:
    `metrics.features.sharded_batch_fn`)."""
    from gan_zoo.metrics.features import sharded_batch_fn  # noqa: PLC0415

    params = state.ema_params if state.ema_params is not None else state.params["g"]
    variables = {"params": params, **collections}
    map_fn = sharded_batch_fn(_map_fn(G, n_classes), mesh, variables, per_shard=True)

    def sample_w(key, m):
        k_z, k_c = jax.random.split(key)
        z = jax.random.normal(k_z, (m, G.z_dim), jnp.float32)
        labels = jax.random.randint(k_c, ((m + 1) // 2,), 0, max(n_classes, 1))
        labels = jnp.concatenate([labels, labels])[:m]  # end points of a pair share c
        c = jax.nn.one_hot(labels, n_classes, dtype=jnp.float32)  # [m, n_classes] ([m, 0])
        return jnp.asarray(map_fn(np.asarray(jnp.concatenate([z, c], axis=1))))

    noise, rest = split_noise(variables)
    calls = [0]

    def synthesize(ws):
        key = jax.random.fold_in(jax.random.PRNGKey(NOISE_SEED), calls[0])
        calls[0] += 1
        fresh = {p: jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype)
                 for i, (p, x) in enumerate(noise.items())}
        run = sharded_batch_fn(_synth_fn(G), mesh, merge_noise(rest, fresh),
                               per_shard=True)  # one compile: the weights are arguments
        return jnp.asarray(run(np.asarray(ws)))

    transformed = None
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
    if INPUT_TRANSFORM in flat:
        def transformed(ws, transform):
            flat_t = {**flat, INPUT_TRANSFORM: jnp.asarray(transform, jnp.float32)}
            v = flax.traverse_util.unflatten_dict(flat_t)
            run = sharded_batch_fn(_synth_fn(G), mesh, v, per_shard=True)
            return jnp.asarray(run(np.asarray(ws)))
    return WSpace(sample_w, synthesize, transformed)


@functools.lru_cache(maxsize=None)
def _map_fn(G, n_classes: int):
    """(variables, [n, z_dim + n_classes] = z | one-hot c) -> ws; one function per G."""
    def fn(variables, zc):
        c = zc[:, G.z_dim:] if n_classes else None
        return G.apply(variables, zc[:, :G.z_dim], c, method="map")
    return fn


@functools.lru_cache(maxsize=None)
def _synth_fn(G):
    """(variables, ws) -> float32 images with constant noise; one function per G."""
    def fn(variables, ws):
        img, _ = G.apply(variables, ws, noise_mode="const", method="synthesize")
        return img.astype(jnp.float32)
    return fn
