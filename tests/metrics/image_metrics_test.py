"""SWD, MS-SSIM, PPL and EQ-T: properties with known answers, and bad inputs."""
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from gan_zoo import metrics
from gan_zoo.metrics import equivariance, ppl

swd_lib = importlib.import_module("gan_zoo.metrics.swd")  # the module (the package exports swd())


def _smooth_images(seed, n=8, size=32, sigma=2.0):
    x = np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3))
    x = scipy.ndimage.gaussian_filter(x, (0, sigma, sigma, 0))
    x = (x - x.min()) / (x.max() - x.min()) * 255
    return x.astype(np.uint8)


def test_swd_levels_and_properties():
    a, b = _smooth_images(0), _smooth_images(1)
    noise = np.random.default_rng(2).integers(0, 256, a.shape, dtype=np.uint8)
    same = metrics.swd(a, a.copy(), seed=0)
    assert set(same) == {"32", "16", "avg"}
    assert same == metrics.swd(a, a.copy(), seed=0)  # deterministic given the seed
    similar, different = metrics.swd(a, b)["avg"], metrics.swd(a, noise)["avg"]
    assert same["avg"] < different and similar < different
    assert np.isfinite(metrics.swd(a, np.zeros_like(a))["avg"])  # constant set: no NaN


def test_laplacian_pyramid_reconstructs():
    x = _smooth_images(3, n=2).transpose(0, 3, 1, 2).astype(np.float32)
    pyr = swd_lib.laplacian_pyramid(x, 2)
    np.testing.assert_allclose(pyr[0] + swd_lib.pyr_up(pyr[1]), x, atol=1e-3)


def test_ms_ssim_identical_and_shifted():
    a = _smooth_images(4, n=4, size=64)
    np.testing.assert_allclose(metrics.ms_ssim(a, a), 1.0, atol=1e-5)
    shifted = np.roll(a, 3, axis=2)
    noisy = np.clip(a + np.random.default_rng(5).normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    s_shift, s_noise = metrics.ms_ssim(a, shifted), metrics.ms_ssim(a, noisy)
    assert np.all(s_shift < 0.99) and np.all(s_noise < 0.99) and np.all(s_noise > 0)
    np.testing.assert_allclose(metrics.ms_ssim(shifted, a), s_shift, rtol=1e-5)  # symmetric
    same = np.repeat(a[:1], 5, axis=0)
    assert metrics.ms_ssim_diversity(same, num_pairs=6) == pytest.approx(1.0, abs=1e-5)
    assert metrics.ms_ssim_diversity(a, num_pairs=6) < 0.99


def test_ppl_of_a_linear_generator_is_analytic():
    # g(w) = A w reshaped to an 8x8x3 image in [-1, 1]; squared L2 on [0, 255]-scaled images:
    # d / eps^2 = 127.5^2 |A (w1 - w0)|^2 exactly (for any t).
    a = jax.random.normal(jax.random.PRNGKey(0), (8 * 8 * 3, 6)) * 0.05
    synthesize = lambda w: (w @ a.T).reshape(-1, 8, 8, 3)
    sample_w = lambda k, n: jax.random.normal(k, (n, 6))
    key = jax.random.PRNGKey(1)
    got = ppl.path_lengths(synthesize, sample_w, ppl.squared_l2, key, 40, batch_size=16,
                           epsilon=1e-2)
    want = []
    for i, start in enumerate(range(0, 40, 16)):
        n = min(16, 40 - start)
        k_w, _ = jax.random.split(jax.random.fold_in(key, i))
        w = sample_w(k_w, 2 * n)  # rows i and n + i: the end points of pair i
        dw = np.asarray(w[n:] - w[:n], np.float64)
        want.append(127.5 ** 2 * np.sum((dw @ np.asarray(a, np.float64).T) ** 2, axis=1))
    want = np.concatenate(want)
    np.testing.assert_allclose(got, want, rtol=2e-3)
    value = ppl.ppl(synthesize, sample_w, ppl.squared_l2, key, 40, batch_size=16, epsilon=1e-2)
    assert value == pytest.approx(ppl.filtered_mean(want), rel=2e-3)
    with pytest.raises(ValueError, match="distance"):
        ppl.ppl(synthesize, sample_w, None, key, 4)


def _toy_translating_generator(res=16, pad=4):
    """Renders a window of a latent canvas at an offset set by the input transform: an exactly
    integer-translation-equivariant generator (StyleGAN3 convention M[:2, 2] = -t)."""
    def synthesize(canvas, transform):
        dx = int(np.round(float(transform[0, 2]) * res))
        dy = int(np.round(float(transform[1, 2]) * res))
        return canvas[:, pad + dy:pad + dy + res, pad + dx:pad + dx + res]
    sample = lambda k, n: np.asarray(jax.random.uniform(k, (n, res + 2 * pad, res + 2 * pad, 3),
                                                        minval=-1, maxval=1))
    return synthesize, sample


def test_eqt_of_an_equivariant_generator_is_maximal():
    synthesize, sample = _toy_translating_generator()
    key = jax.random.PRNGKey(0)
    assert equivariance.eqt_int(synthesize, sample, key, 12, batch_size=4) == float("inf")
    # Breaking equivariance (a fixed pattern added in screen space) gives a finite PSNR.
    bias = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 16, 16, 3))
    broken = lambda c, t: synthesize(c, t) + bias * (abs(float(t[0, 2])) + abs(float(t[1, 2])))
    value = equivariance.eqt_int(broken, sample, key, 12, batch_size=4)
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.swd(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 3), np.uint8)),
     "at least 16"),
    (lambda: metrics.swd(np.zeros((2, 32, 32, 3), np.uint8), np.zeros((3, 32, 32, 3), np.uint8)),
     "same shape"),
    (lambda: metrics.swd(np.zeros((2, 32, 32, 3)), np.zeros((2, 32, 32, 3))), "uint8"),
    (lambda: metrics.ms_ssim(np.zeros((2, 40, 40, 3), np.uint8), np.zeros((2, 40, 40, 3),
                                                                          np.uint8)), "16"),
    (lambda: metrics.ms_ssim(np.zeros((2, 32, 32, 4), np.uint8), np.zeros((2, 32, 32, 4),
                                                                          np.uint8)), "C in"),
    (lambda: metrics.ms_ssim_diversity(np.zeros((1, 32, 32, 3), np.uint8)), "at least 2"),
    (lambda: ppl.ppl(lambda w: w, lambda k, n: jnp.zeros((n, 2)), ppl.squared_l2,
                     jax.random.PRNGKey(0), 4, sampling="mid"), "sampling"),
    (lambda: ppl.ppl(lambda w: w, lambda k, n: jnp.zeros((n // 2, 2)), ppl.squared_l2,
                     jax.random.PRNGKey(0), 4), r"sample_w\(key, 8\) returned shape \(4, 2\)"),
])
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
