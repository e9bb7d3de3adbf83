"""Improved precision and recall (Kynkäänniemi et al. 2019), StyleGAN2/3 protocol (k = 3).

Each feature vector gets a hypersphere whose radius is the distance to its k-th nearest neighbour
in its own set (itself excluded). Precision = fraction of generated samples inside at least one
real hypersphere; recall = fraction of real samples inside at least one generated hypersphere.
Features are VGG16 fc2 (4096-d) in the protocol; any [N, D] features work here.
"""

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.metrics import _checks


@jax.jit
def _sq_dists(a, b):
    """Squared Euclidean distances [Na, Nb] (clamped at 0), float32, full-precision matmul."""
    ab = jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
    return jnp.maximum(jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2 * ab, 0.0)


def _kth_radii(x, k: int, block: int) -> np.ndarray:
    """Squared distance of each row of x to its k-th nearest other row."""
    radii = []
    for i in range(0, len(x), block):
        d = np.asarray(_sq_dists(x[i:i + block], x))
        radii.append(np.partition(d, k, axis=1)[:, k])  # index 0 is the point itself
    return np.concatenate(radii)


def _coverage(manifold, radii, probes, block: int) -> float:
    """Fraction of probes within radius of at least one manifold point."""
    inside = []
    for i in range(0, len(probes), block):
        d = np.asarray(_sq_dists(probes[i:i + block], manifold))
        inside.append(np.any(d <= radii[None, :], axis=1))
    return float(np.mean(np.concatenate(inside)))


def precision_recall(real_features, gen_features, k: int = 3,
                     block: int = 1024) -> tuple[float, float]:
    """(precision, recall) of generated vs real features [N, D]; each set needs > k samples."""
    k = _checks.positive_int(k, "precision_recall: k")
    real = _checks.features(real_features, "precision_recall: real", min_count=k + 1)
    gen = _checks.features(gen_features, "precision_recall: generated", min_count=k + 1,
                           dim=real.shape[1])
    real, gen = jnp.asarray(real, jnp.float32), jnp.asarray(gen, jnp.float32)
    real_r, gen_r = _kth_radii(real, k, block), _kth_radii(gen, k, block)
    return _coverage(real, real_r, gen, block), _coverage(gen, gen_r, real, block)
