"""Fractional EQ-T and EQ-R on an exactly equivariant toy (band-limited sinusoids rendered from
transformed input coordinates), against toys with structure locked to the pixel grid; the
band-limited rotation (StyleGAN3 App. E.3) against exact rotations of band-limited images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.metrics import equivariance as eq

RES = 32


def _toy(locked: float = 0.0, pattern: str = "checker"):
    """synthesize(latents [n, 4, 3] = (fx, fy, phase) per sinusoid, transform) -> [n, R, R, 3].

    Frequencies stay below 4 cycles per image (0.125 cycles/pixel): band-limited far below
    Nyquist in every direction. `locked` adds a pattern fixed to the pixel grid (breaks
    equivariance): a Nyquist checkerboard, or a 2-cycle wave along x (inside the band that a
    rotation keeps, so EQ-R sees it)."""
    u = (np.arange(RES) + 0.5) / RES - 0.5  # pixel centres in [-0.5, 0.5]
    vv, uu = np.meshgrid(u, u, indexing="ij")  # rows = y, cols = x
    fixed = {"checker": np.where((np.arange(RES)[:, None] + np.arange(RES)) % 2, 1.0, -1.0),
             "wave": np.cos(2 * np.pi * 2 * uu)}[pattern]

    def synthesize(latents, transform):
        m = np.asarray(transform, np.float64)
        x = m[0, 0] * uu + m[0, 1] * vv + m[0, 2]  # input coordinates of each output pixel
        y = m[1, 0] * uu + m[1, 1] * vv + m[1, 2]
        lat = np.asarray(latents, np.float64)[:, :, None, None, :]  # [n, K, 1, 1, 3]
        waves = np.sin(2 * np.pi * (lat[..., 0] * x + lat[..., 1] * y) + lat[..., 2])
        img = waves.mean(1)[..., None] * np.ones(3) * 0.9  # [n, R, R, 3]
        return jnp.asarray(img + locked * fixed[None, :, :, None])
    return synthesize


def _latents(key, n):
    f = jax.random.uniform(key, (n, 4, 2), minval=-2.8, maxval=2.8)
    phase = jax.random.uniform(jax.random.fold_in(key, 1), (n, 4, 1), maxval=2 * np.pi)
    return jnp.concatenate([f, phase], -1)


@pytest.mark.parametrize("metric,pattern", [(eq.eqt_frac, "checker"), (eq.eqr, "wave")])
def test_equivariant_toy_scores_high(metric, pattern):
    key = jax.random.PRNGKey(0)
    good = metric(_toy(), _latents, key, 8, batch_size=4)
    bad = metric(_toy(0.1, pattern), _latents, key, 8, batch_size=4)
    assert good > 45.0, good  # only the interpolation error of the reference remains
    assert good > bad + 20.0, (good, bad)


def test_eqr_ignores_content_outside_the_rotation_band():
    """A Nyquist checkerboard fixed to the grid lies outside the band a rotated grid shares
    with the original (the corners of the frequency square), so R and R* remove most of it:
    EQ-R drops far less than for the in-band wave of the same amplitude."""
    key = jax.random.PRNGKey(0)
    checker = eq.eqr(_toy(0.1, "checker"), _latents, key, 8, batch_size=4)
    wave = eq.eqr(_toy(0.1, "wave"), _latents, key, 8, batch_size=4)
    assert checker > wave + 10.0, (checker, wave)


def test_integer_eqt_of_toy_is_exact():
    assert eq.eqt_int(_toy(), _latents, jax.random.PRNGKey(1), 8, batch_size=4) > 100.0


def test_fractional_translation_at_integer_shift_is_exact():
    x = np.random.default_rng(0).normal(size=(2, RES, RES, 3))
    z, m = eq.fractional_translation(x, 3 / RES, -2 / RES)
    zi, mi = eq.integer_translation(x, 3 / RES, -2 / RES)
    assert m.sum() > 0 and np.all(mi[m > 0] == 1)
    np.testing.assert_allclose(z * m, zi * m, atol=1e-12)


def _smooth(seed, n=1, cutoff=0.2):
    """White noise lowpassed to |f| < cutoff cycles/pixel (a disc: rotation-safe)."""
    x = np.random.default_rng(seed).normal(size=(n, RES, RES, 3))
    f = np.fft.fftfreq(RES)
    disc = np.hypot(f[:, None], f[None, :]) < cutoff
    return np.real(np.fft.ifft2(np.fft.fft2(x, axes=(1, 2)) * disc[None, :, :, None], axes=(1, 2)))


def test_rotation_by_zero_and_quarter_turns_of_band_limited_images():
    x = _smooth(1)
    z, m = eq.fractional_rotation(x, 0.0)
    assert m[0, :, :, 0].sum() == (RES - 12) ** 2  # 2p + 1 upsampled samples (~6 px) a side
    np.testing.assert_allclose(z[m > 0], x[m > 0], atol=1e-4)
    for k, angle in ((-1, np.pi / 2), (1, -np.pi / 2)):  # content at p moves to R p
        z, m = eq.fractional_rotation(x, angle)
        np.testing.assert_allclose(z[m > 0], np.rot90(x, k=k, axes=(1, 2))[m > 0], atol=1e-4)
    z, m = eq.pseudo_rotation(x, 0.3)  # in band: the band limit leaves it unchanged
    np.testing.assert_allclose(z[m > 0], x[m > 0], atol=1e-3)
    with pytest.raises(ValueError, match="square"):
        eq.fractional_rotation(np.zeros((1, 4, 6, 3)), 0.1)


def test_rotation_at_any_angle_matches_the_rotated_toy():
    """The toy rendered with input transform R(-a) is the exact rotation of the toy by a."""
    synth = _toy()
    lat = _latents(jax.random.PRNGKey(3), 2)
    for angle in (0.4, -2.0):
        z, m = eq.fractional_rotation(np.asarray(synth(lat, np.eye(3))), angle)
        exact = np.asarray(synth(lat, eq.rotation_matrix(-angle)))
        assert m.sum() > 0.3 * m.size
        np.testing.assert_allclose(z[m > 0], exact[m > 0], atol=2e-3)


def test_bandlimit_filter_phases_have_unit_dc_gain():
    h = eq.affine_bandlimit_filter(eq.rotation_matrix(0.7)[:2, :2], 4)
    assert h.shape == (47, 47)
    phase = np.arange(47) % 4
    sums = [[h[np.ix_(phase == a, phase == b)].sum() for b in range(4)] for a in range(4)]
    np.testing.assert_allclose(np.asarray(sums) * 16, 1.0, rtol=1e-12)
    np.testing.assert_allclose(h, h[::-1, ::-1], atol=1e-15)  # point symmetric: no shift
