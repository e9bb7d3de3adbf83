"""Kernel Inception Distance (Bińkowski et al. 2018), StyleGAN3 / torch-fidelity protocol.

Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 on Inception pool3,
averaged over `num_subsets` random subsets of m = min(N_real, N_gen, max_subset_size) samples of
each set (drawn without replacement).
"""

import numpy as np

from gan_zoo.metrics import _checks


def polynomial_kernel(x, y):
    """k(x, y) = (x y^T / d + 1)^3. x: [m, d], y: [n, d] -> [m, n]."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y) -> float:
    """Unbiased MMD^2: off-diagonal means of K_xx, K_yy minus twice the mean of K_xy."""
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off - 2 * kxy.sum() / (m * m))


def kid(real_features, gen_features, num_subsets: int = 100, max_subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over subsets; needs at least 2 samples per set."""
    real = _checks.features(real_features, "kid: real features")
    gen = _checks.features(gen_features, "kid: generated features", dim=real.shape[1])
    _checks.positive_int(num_subsets, "kid: num_subsets")
    m = min(real.shape[0], gen.shape[0], _checks.positive_int(max_subset_size, "max_subset_size"))
    if m < 2:
        raise ValueError(f"kid: subsets need at least 2 samples, got subset size {m}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        values.append(mmd2_unbiased(x, y))
    return float(np.mean(values)), float(np.std(values))
