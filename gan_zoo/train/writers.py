"""Metric writers (clu: TensorBoard + console), sample grids and spectral monitoring.

clu and TensorFlow are imported inside the functions that need them.
"""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util


def make_writer(workdir: str, is_main: bool = True):
    """clu's default writer: TensorBoard summaries in workdir plus absl logging (host 0 only)."""
    from clu import metric_writers  # noqa: PLC0415

    return metric_writers.create_default_writer(workdir, just_logging=not is_main)


def image_grid(images, cols: int = 0) -> np.ndarray:
    """float [N, H, W, 3] in [-1, 1] -> uint8 [rows*H, cols*W, 3] grid (row-major)."""
    x = to_uint8(images)
    n, h, w, c = x.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = x[i]
    return grid


def to_uint8(images) -> np.ndarray:
    """float in [-1, 1] -> uint8 in [0, 255] (rounded, clipped)."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def save_png(path: str, grid: np.ndarray) -> None:
    from PIL import Image  # noqa: PLC0415

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid).save(path)


def monitored_kernels(params: dict, pattern: str) -> list:
    """'/'-joined paths of every >= 2-D parameter whose path matches the regex `pattern`
    (config.log.sv_layers), sorted. No cap: the pattern alone chooses (BigGAN §4.1's collapse
    analysis reads G's first linear layer and every conv of G and D)."""
    flat = traverse_util.flatten_dict(params, sep="/")
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"config.log.sv_layers: {pattern!r} is not a regex ({e})") from None
    return [k for k, v in sorted(flat.items()) if v.ndim >= 2 and regex.search(k)]


def top_singular_values(params: dict, paths: list, k: int = 3) -> dict:
    """Top-k singular values of each raw (pre-SN) kernel W [K, O] (BigGAN §4.1, spec §2.11).

    Returns {"sv/<path>/s0": σ0, ..., "sv/<path>/s0_s1": σ0/σ1, "sv/<path>/fro": ||W||_F}.
    Run it outside the train step (it is a separate jit).
    """
    flat = traverse_util.flatten_dict(params, sep="/")
    out = {}
    for p in paths:
        w = flat[p].reshape(-1, flat[p].shape[-1]).astype(jnp.float32)
        s = jnp.linalg.svd(w, compute_uv=False)
        for i in range(min(k, s.shape[0])):
            out[f"sv/{p}/s{i}"] = s[i]
        if s.shape[0] > 1:
            out[f"sv/{p}/s0_s1"] = s[0] / s[1]
        out[f"sv/{p}/fro"] = jnp.sqrt(jnp.sum(jnp.square(w)))
    return out


top_singular_values_jit = jax.jit(top_singular_values, static_argnums=(1, 2))
