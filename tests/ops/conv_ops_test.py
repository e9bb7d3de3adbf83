"""conv2d_resample, modulated convolution (StyleGAN2 and 3), bias_act: references and invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gan_zoo import ops
from gan_zoo.ops.conv2d_resample import conv2d, native_weight_grad
from gan_zoo.ops.modulated_conv2d import demod_coefficients
from tests.ops.reference_np import correlate_np, upfirdn2d_np

F4 = np.array([1, 3, 3, 1], np.float32)


def _conv_resample_np(x, w, up, down, pad, groups, flip_weight):
    """The official generic path, built from the independent NumPy pieces."""
    fw = 4
    x0, x1, y0, y1 = pad
    if up > 1:
        x0, x1, y0, y1 = x0 + (fw + up - 1) // 2, x1 + (fw - up) // 2, y0 + (fw + up - 1) // 2, \
            y1 + (fw - up) // 2
    if down > 1:
        x0, x1, y0, y1 = x0 + (fw - down + 1) // 2, x1 + (fw - down) // 2, \
            y0 + (fw - down + 1) // 2, y1 + (fw - down) // 2
    f = F4 / F4.sum() if up > 1 else np.ones([1, 1])
    x = upfirdn2d_np(x, f, (up, up), (1, 1), (x0, x1, y0, y1), gain=up**2)
    x = correlate_np(x, w if flip_weight else w[::-1, ::-1], groups)
    if down > 1:
        x = upfirdn2d_np(x, F4 / F4.sum(), (1, 1), (down, down), (0, 0, 0, 0))
    return x


@pytest.mark.parametrize("k,up,down,pad,groups,flip", [
    (3, 2, 1, (1, 1, 1, 1), 1, False), (3, 1, 2, (1, 1, 1, 1), 1, True),
    (1, 1, 2, (0, 0, 0, 0), 1, True), (1, 2, 1, (0, 0, 0, 0), 2, True),
    (3, 2, 2, (1, 0, 2, 1), 2, False), (3, 1, 1, (1, -1, 0, 2), 1, False),
    (3, 1, 1, (1, 1, 1, 1), 2, True), (3, 2, 1, (-1, 0, 0, -1), 1, True),
    # Polyphase transposed conv (issue #20): even/odd kernels, up 3/4, crops, phases with 1 tap.
    (4, 2, 1, (0, 1, -1, 2), 1, False), (2, 3, 1, (1, 1, 1, 1), 1, True),
    (5, 4, 1, (-2, 1, 1, -1), 2, False), (2, 2, 2, (0, -1, 1, 0), 1, True),
])
def test_conv2d_resample_matches_generic_path(k, up, down, pad, groups, flip):
    rng = np.random.default_rng(k + up + 3 * down)
    x = rng.standard_normal([2, 7, 6, 4]).astype(np.float32)
    w = rng.standard_normal([k, k, 4 // groups, 6]).astype(np.float32)
    f = ops.setup_filter(F4) if (up > 1 or down > 1) else None
    got = ops.conv2d_resample(x, w, f, up=up, down=down, padding=list(pad), groups=groups,
                              flip_weight=flip)
    want = _conv_resample_np(x, w, up, down, pad, groups, flip)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _conv_resample_lax(x, w, f, up, down, pad):
    """The official generic path in lax ops (zero insertion, depthwise FIR, conv, FIR, stride):
    an independent formulation for the gradient checks."""
    c = x.shape[-1]
    x0, x1, y0, y1 = pad
    k = jnp.broadcast_to(jnp.flip(jnp.asarray(f), (0, 1))[:, :, None, None], f.shape + (1, c))
    dn = ("NHWC", "HWIO", "NHWC")
    if up > 1:
        x = jax.lax.pad(x, 0.0, [(0, 0, 0), (y0, y1 + up - 1, up - 1), (x0, x1 + up - 1, up - 1),
                                 (0, 0, 0)])
        x = jax.lax.conv_general_dilated(x, k * up**2, (1, 1), "VALID", dimension_numbers=dn,
                                         feature_group_count=c)
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dn)
    x = jnp.pad(x, [(0, 0), (y0, y1), (x0, x1), (0, 0)])
    x = jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=dn,
                                     feature_group_count=c)
    return jax.lax.conv_general_dilated(x, w, (down, down), "VALID", dimension_numbers=dn)


@pytest.mark.parametrize("up,down", [(2, 1), (1, 2)])
def test_conv2d_resample_first_and_second_order_gradients(up, down):
    """Gradients w.r.t. x and w, and R1's gradient of a gradient norm, vs the lax generic path."""
    kx, kw, kr = jax.random.split(jax.random.key(5), 3)
    x, w = jax.random.normal(kx, [1, 6, 5, 3]), jax.random.normal(kw, [3, 3, 3, 2])
    f = ops.setup_filter(F4)
    p = (3, 2, 3, 2) if up > 1 else (2, 2, 2, 2)  # 1 + the 4-tap filter's implicit padding
    new = lambda x, w: ops.conv2d_resample(x, w, f, up=up, down=down, padding=1)
    old = lambda x, w: _conv_resample_lax(x, w, f, up, down, p)
    r = jax.random.normal(kr, old(x, w).shape)
    np.testing.assert_allclose(new(x, w), old(x, w), rtol=1e-4, atol=1e-4)

    def penalty(op, x, w):
        g = jax.grad(lambda x: jnp.sum(jnp.tanh(op(x, w)) * r))(x)
        return jnp.sum(jnp.square(g))
    got = jax.jit(jax.grad(lambda x, w: penalty(new, x, w), (0, 1)))(x, w)
    want = jax.jit(jax.grad(lambda x, w: penalty(old, x, w), (0, 1)))(x, w)
    for g, v in zip(got, want):  # d/dx, d/dw
        np.testing.assert_allclose(g, v, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k,stride,pad", [
    (3, 1, ((1, 1), (1, 1))), (3, 2, ((1, 1), (1, 1))), (3, 2, ((0, 0), (0, 0))),
    (1, 2, ((0, 0), (0, 0))), (4, 2, ((2, 1), (0, 3))), (2, 3, ((1, 0), (2, 2))),
])
@pytest.mark.parametrize("native", [False, True])
def test_conv2d_custom_vjp_first_and_second_order(k, stride, pad, native):
    """conv2d's own VJP (issue #20: stride-1 convs + per-tap matmuls, or XLA's weight-gradient
    conv under native_weight_grad) vs jax's autodiff of the plain lax conv, in float64: forward
    identical, grads and R1-style grads of grads to rounding."""
    dn = ("NHWC", "HWIO", "NHWC")
    plain = lambda x, w: jax.lax.conv_general_dilated(x, w, (stride, stride), pad,
                                                      dimension_numbers=dn)
    new = lambda x, w: conv2d(x, w, stride, pad)
    rng = np.random.default_rng(k + 7 * stride)
    with jax.enable_x64(True):
        x, w = jnp.asarray(rng.standard_normal([2, 9, 8, 3])), jnp.asarray(
            rng.standard_normal([k, k, 3, 4]))
        np.testing.assert_array_equal(new(x, w), plain(x, w))

        def grads(op):
            loss = lambda x, w: jnp.sum(jnp.sin(op(x, w)))
            r1 = lambda x, w: jnp.sum(jnp.square(jax.grad(loss)(x, w)))  # d/dx, as R1
            return jax.grad(loss, (0, 1))(x, w) + jax.grad(r1, (0, 1))(x, w)
        with native_weight_grad(native):
            got = grads(new)
        for g, want in zip(got, grads(plain)):
            np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12)


def test_native_weight_grad_switches_the_traced_weight_gradient():
    """Under native_weight_grad the weight gradient is one conv (no per-tap matmuls); outside it
    the 9 taps of a 3x3 kernel are matmuls; the setting ends with the block."""
    x, w = jnp.ones([2, 6, 6, 3]), jnp.ones([3, 3, 3, 4])
    dw = lambda: str(jax.make_jaxpr(jax.grad(lambda w: jnp.sum(conv2d(x, w, 1, ((1, 1),) * 2))))(w))
    with native_weight_grad():
        native = dw()
    taps = dw()
    assert native.count("dot_general") == 0 and native.count("conv_general_dilated") >= 2
    assert taps.count("dot_general") == 9


def test_conv2d_resample_bad_input():
    x, w = jnp.zeros([1, 4, 4, 4]), jnp.zeros([3, 3, 4, 6])
    with pytest.raises(ValueError, match="channels"):
        ops.conv2d_resample(x, w, groups=2)
    with pytest.raises(ValueError, match="filter"):
        ops.conv2d_resample(x, w, up=2)
    with pytest.raises(ValueError, match="rank-4"):
        ops.conv2d_resample(x[0], w)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modconv_fused_equals_nonfused(up, down, demodulate):
    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], [3, 8, 8, 4])
    w = jax.random.normal(k[1], [3, 3, 4, 5])
    s = jax.random.normal(k[2], [3, 4]) + 1
    h = 8 * up // down
    noise = jax.random.normal(k[3], [3, h, h, 1])
    kw = dict(up=up, down=down, padding=1, resample_filter=ops.setup_filter(F4),
              demodulate=demodulate, flip_weight=(up == 1), noise=noise)
    a = ops.modulated_conv2d(x, w, s, fused_modconv=True, **kw)
    b = ops.modulated_conv2d(x, w, s, fused_modconv=False, **kw)
    assert a.shape == (3, h, h, 5)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_demodulation_makes_output_scale_invariant():
    """StyleGAN2 eq. 3: scaling the styles or the weight does not change a demodulated conv."""
    k = jax.random.split(jax.random.key(1), 3)
    x, w = jax.random.normal(k[0], [2, 6, 6, 4]), jax.random.normal(k[1], [3, 3, 4, 5])
    s = jax.random.normal(k[2], [2, 4])
    a = ops.modulated_conv2d(x, w, s, padding=1)
    b = ops.modulated_conv2d(x, 7.0 * w, 0.3 * s, padding=1)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # Eq. 3 gives each output channel unit expected 2nd moment for unit-variance i.i.d. inputs:
    # sum over (i, k) of the demodulated weights squared is 1.
    wm = w[None] * s[:, None, None, :, None]
    wd = wm * demod_coefficients(wm)[:, None, None, None]
    np.testing.assert_allclose(jnp.sum(wd**2, axis=(1, 2, 3)), 1.0, rtol=1e-5)


def test_sg3_modconv_prenormalisation_and_gain():
    k = jax.random.split(jax.random.key(2), 3)
    x, w = jax.random.normal(k[0], [2, 6, 6, 4]), jax.random.normal(k[1], [3, 3, 4, 5])
    s = jax.random.normal(k[2], [2, 4])
    a = ops.modulated_conv2d_sg3(x, w, s, padding=2)
    assert a.shape == (2, 8, 8, 5)  # padding = k - 1 grows the map by k - 1.
    b = ops.modulated_conv2d_sg3(x, w * jnp.arange(1.0, 6.0), 2.0 * s, padding=2)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    c = ops.modulated_conv2d_sg3(x, w, s, padding=2, input_gain=jnp.float32(0.5))
    np.testing.assert_allclose(c, 0.5 * a, rtol=1e-5, atol=1e-6)


def test_modconv_finite_difference_gradient():
    k = jax.random.split(jax.random.key(3), 3)
    x, w = jax.random.normal(k[0], [2, 5, 5, 3]), jax.random.normal(k[1], [3, 3, 3, 2])
    s = jax.random.normal(k[2], [2, 3]) + 1
    with jax.enable_x64(True):
        fn = lambda x, w, s: ops.modulated_conv2d(x, w, s, padding=1)
        check_grads(fn, tuple(a.astype(jnp.float64) for a in (x, w, s)), order=1, modes=["rev"])


@pytest.mark.parametrize("act", sorted(ops.ACTIVATIONS))
def test_bias_act_every_activation(act):
    x = np.linspace(-30, 30, 61, dtype=np.float32).reshape(1, 61)
    b = np.array([0.5] * 61, np.float32)
    y = ops.bias_act(x, b, dim=1, act=act, clamp=10.0)
    z = (x + 0.5).astype(np.float64)
    ref = {"linear": z, "relu": np.maximum(z, 0), "lrelu": np.where(z > 0, z, 0.2 * z),
           "tanh": np.tanh(z), "sigmoid": 1 / (1 + np.exp(-z)),
           "elu": np.where(z > 0, z, np.expm1(z)),
           "selu": 1.0507009873554805 * np.where(z > 0, z, 1.6732632423543772 * np.expm1(z)),
           "softplus": np.where(z > 20, z, np.log1p(np.exp(np.minimum(z, 20)))),
           "swish": z / (1 + np.exp(-z))}[act]
    gain = {"relu": 2**0.5, "lrelu": 2**0.5, "swish": 2**0.5}.get(act, 1.0)
    np.testing.assert_allclose(y, np.clip(ref * gain, -10, 10), rtol=1e-5, atol=1e-5)


def test_bias_act_gradients_match_torch_conventions():
    g = jax.grad(lambda x: ops.bias_act(x, act="relu", gain=1).sum())(jnp.zeros([3]))
    np.testing.assert_array_equal(g, 0.0)  # torch.relu has slope 0 at 0.
    g = jax.grad(lambda x: ops.bias_act(x, act="lrelu", gain=1).sum())(jnp.zeros([3]))
    np.testing.assert_allclose(g, 0.2)
    x = jnp.array([-2.0, -1.0, 0.5, 1.0, 2.0])
    g = jax.grad(lambda x: ops.bias_act(x, clamp=1.0).sum())(x)
    np.testing.assert_array_equal(g, [0, 1, 1, 1, 0])  # clamp passes gradient at the ends.


def test_bias_act_bad_input():
    with pytest.raises(ValueError, match="unknown act"):
        ops.bias_act(jnp.zeros([2]), act="gelu2")
    with pytest.raises(ValueError, match=r"b must have shape \[4\]"):
        ops.bias_act(jnp.zeros([2, 4]), jnp.zeros([3]), dim=1)
