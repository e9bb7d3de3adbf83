"""filtered_lrelu, low-pass design, minibatch stddev and the Fourier input: references, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from gan_zoo import ops
from tests.ops.reference_np import upfirdn2d_np


def test_filtered_lrelu_matches_composition():
    rng = np.random.default_rng(0)
    x = rng.standard_normal([1, 10, 10, 3]).astype(np.float32)
    b = rng.standard_normal([3]).astype(np.float32)
    fu = ops.design_lowpass_filter(12, 3.0, 8.0, 32)
    fd = ops.design_lowpass_filter(12, 3.5, 7.0, 32)
    got = ops.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=[9, 8, 9, 8], gain=1.3,
                             slope=0.1, clamp=0.5)
    y = upfirdn2d_np(x + b, fu, (2, 2), (1, 1), (9, 8, 9, 8), gain=4)
    y = np.clip(np.where(y > 0, y, 0.1 * y) * 1.3, -0.5, 0.5)
    want = upfirdn2d_np(y, fd, (1, 1), (2, 2), (0, 0, 0, 0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # out = (in*up + p0 + p1 - (fu-1) - (fd-1) + (down-1)) // down
    assert got.shape == (1, (20 + 17 - 11 - 11 + 1) // 2, (20 + 17 - 11 - 11 + 1) // 2, 3)


def _filtered_lrelu_np(x, fu, fd, b, up, down, pad, gain, slope, clamp):
    y = upfirdn2d_np(x + b, np.ones([1, 1]) if fu is None else fu, (up, up), (1, 1), pad,
                     gain=up**2)
    y = np.clip(np.where(y > 0, y, slope * y) * gain, -clamp, clamp)
    return upfirdn2d_np(y, np.ones([1, 1]) if fd is None else fd, (1, 1), (down, down),
                        (0, 0, 0, 0))


@pytest.mark.parametrize("up,down,pad,radial", [
    (4, 2, (-6, -9, -6, -9), False),  # the up=4 layers of StyleGAN3-T (critical-path geometry)
    (2, 2, (-11, -12, -11, -12), False),  # the last layer's crop
    (1, 2, (5, 4, 3, 6), True),  # StyleGAN3-R: a 2-D radial (jinc) down filter
])
def test_filtered_lrelu_stylegan3_geometries(up, down, pad, radial):
    rng = np.random.default_rng(up + down)
    x = rng.standard_normal([1, 30, 29, 2]).astype(np.float32)
    b = rng.standard_normal([2]).astype(np.float32)
    fu = ops.design_lowpass_filter(6 * up, 4.0, 8.0, 16 * up) if up > 1 else None
    fd = ops.design_lowpass_filter(12 if not radial else 7, 4.0, 8.0, 16 * up, radial=radial)
    got = ops.filtered_lrelu(x, fu, fd, b, up=up, down=down, padding=list(pad), clamp=2.0)
    want = _filtered_lrelu_np(x, fu, fd, b, up, down, pad, np.sqrt(2), 0.2, 2.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_filtered_lrelu_second_order_gradient_matches_depthwise_chain():
    """R1-style gradient of a gradient norm through filtered_lrelu (custom FIR backward,
    differentiated again) vs the same chain on a depthwise-conv upfirdn2d."""
    x = jax.random.normal(jax.random.key(0), [1, 8, 8, 2])
    b = jnp.array([0.1, -0.2])
    fu = ops.design_lowpass_filter(12, 3.0, 8.0, 32)
    fd = ops.design_lowpass_filter(12, 3.5, 7.0, 32)

    def depthwise_fir(x, f, up, down, pad, gain):  # zero insertion + depthwise conv (pre-#20)
        x0, x1, y0, y1 = pad
        x = jax.lax.pad(x, 0.0, [(0, 0, 0), (y0, y1 + up - 1, up - 1),
                                 (x0, x1 + up - 1, up - 1), (0, 0, 0)])
        k = jnp.flip(jnp.outer(f, f) * gain, (0, 1))[:, :, None, None]
        k = jnp.broadcast_to(k, k.shape[:2] + (1, x.shape[-1]))
        return jax.lax.conv_general_dilated(x, k, (down, down), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=x.shape[-1])

    def old(x):
        y = depthwise_fir(x + b, fu, 2, 1, (9, 8, 9, 8), 4)
        y = jnp.clip(jnp.where(y >= 0, y, 0.2 * y) * np.sqrt(2), -1.0, 1.0)
        return depthwise_fir(y, fd, 1, 2, (0, 0, 0, 0), 1)
    new = lambda x: ops.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=[9, 8, 9, 8],
                                       clamp=1.0)
    r = jax.random.normal(jax.random.key(1), old(x).shape)

    def penalty(op, x):
        return jnp.sum(jnp.square(jax.grad(lambda x: jnp.sum(op(x) * r))(x)))
    np.testing.assert_allclose(new(x), old(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.grad(lambda x: jnp.sum(new(x) * r)))(x),
                               jax.jit(jax.grad(lambda x: jnp.sum(old(x) * r)))(x),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.grad(lambda x: penalty(new, x)))(x),
                               jax.jit(jax.grad(lambda x: penalty(old, x)))(x),
                               rtol=1e-4, atol=1e-5)


def test_filtered_lrelu_radial_down_filter_and_errors():
    x = jnp.ones([1, 8, 8, 2])
    fd = ops.design_lowpass_filter(6, 3.0, 4.0, 16, radial=True)
    y = ops.filtered_lrelu(x, None, fd, up=1, down=2, padding=[3, 2, 3, 2], gain=1, slope=1)
    assert y.shape == (1, 4, 4, 2)
    np.testing.assert_allclose(y[0, 2, 2], 1.0, rtol=1e-5)  # A normalised filter keeps DC.
    with pytest.raises(ValueError, match="no output"):
        ops.filtered_lrelu(x, np.ones(12, np.float32), None, up=1, padding=-8)
    with pytest.raises(ValueError, match="up must be"):
        ops.filtered_lrelu(x, up=0)


def test_design_lowpass_filter():
    f = ops.design_lowpass_filter(12, 3.0, 8.0, 32)
    np.testing.assert_allclose(f, scipy.signal.firwin(12, 3.0, width=8.0, fs=32), rtol=1e-6)
    assert ops.design_lowpass_filter(1, 3.0, 8.0, 32) is None
    r = ops.design_lowpass_filter(7, 3.0, 6.0, 32, radial=True)  # Odd: r = 0 at the centre.
    assert r.shape == (7, 7) and np.all(np.isfinite(r))
    np.testing.assert_allclose(r.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(r, r.T, atol=1e-7)
    with pytest.raises(ValueError, match="numtaps"):
        ops.design_lowpass_filter(0, 3.0, 8.0, 32)


def test_minibatch_std_strided_groups():
    x = np.random.default_rng(0).standard_normal([8, 2, 2, 6]).astype(np.float32)
    y = np.asarray(ops.minibatch_std(x, group_size=4, num_channels=2))
    assert y.shape == (8, 2, 2, 8)
    for i in range(8):  # Sample i's group is {j : j % 2 == i % 2}.
        grp = x[i % 2::2]
        for f in range(2):
            chunk = grp[..., f * 3:(f + 1) * 3]
            want = np.sqrt(chunk.var(axis=0) + 1e-8).mean()
            np.testing.assert_allclose(y[i, :, :, 6 + f], want, rtol=1e-5)
    np.testing.assert_array_equal(y[..., :6], x)
    with pytest.raises(ValueError, match="group_size"):
        ops.minibatch_std(x[:6], group_size=4)
    with pytest.raises(ValueError, match="num_channels"):
        ops.minibatch_std(x, num_channels=4)


def test_fourier_features_identity_transform():
    """With t = (1, 0, 0, 0) and an identity transform the features are plain sinusoids."""
    rng = np.random.default_rng(0)
    c, size, fs = 4, 6, 8
    freqs = rng.uniform(-1, 1, [c, 2]).astype(np.float32)
    phases = rng.uniform(-0.5, 0.5, [c]).astype(np.float32)
    t = jnp.array([[2.0, 0.0, 0.0, 0.0]])  # Normalised by |t[:2]| to (1, 0, 0, 0).
    x = ops.fourier_features(t, freqs, phases, jnp.eye(3), np.eye(c, dtype=np.float32) * 2.0,
                             size=size, sampling_rate=fs, bandwidth=2)
    g = ((2 * np.arange(size) + 1) / size - 1) * 0.5 * size / fs
    gx, gy = np.meshgrid(g, g, indexing="xy")
    want = np.sin(2 * np.pi * (gx[..., None] * freqs[:, 0] + gy[..., None] * freqs[:, 1] + phases))
    np.testing.assert_allclose(x[0], want, rtol=1e-5, atol=1e-5)  # weight/sqrt(c) = identity.


def test_fourier_features_translation_shifts_phase():
    rng = np.random.default_rng(1)
    freqs = rng.uniform(-1, 1, [3, 2]).astype(np.float32)
    phases = np.zeros([3], np.float32)
    args = dict(transform=jnp.eye(3), weight=np.eye(3, dtype=np.float32) * np.sqrt(3),
                size=4, sampling_rate=4, bandwidth=1)
    a = ops.fourier_features(jnp.array([[1.0, 0, 0, 0]]), freqs, phases, **args)
    b = ops.fourier_features(jnp.array([[1.0, 0, 0.25, 0]]), freqs, phases, **args)
    # Translating by t_x shifts every phase by -f_x * t_x.
    c = ops.fourier_features(jnp.array([[1.0, 0, 0, 0]]), freqs, -freqs[:, 0] * 0.25, **args)
    np.testing.assert_allclose(b, c, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a, b)
