"""Equalized-lr layers: run-time weight/bias scaling equals the direct formula (ProGAN §4.1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import nn as gnn
from tests.nn import _reference as ref


def _lrelu(x, alpha=0.2):
    return np.where(x > 0, x, alpha * x)


@pytest.mark.parametrize("lr_multiplier", [1.0, 0.01])
def test_dense_output_is_scaled_weight_and_bias(lr_multiplier):
    layer = gnn.EqualizedDense(5, lr_multiplier=lr_multiplier, bias_init=0.5)
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 7))
    v = layer.init(jax.random.PRNGKey(0), x)
    w, b = np.asarray(v["params"]["weight"], np.float64), np.asarray(v["params"]["bias"])
    assert w.shape == (7, 5)
    # Stored bias is bias_init / lr_mul, so the effective bias at init is bias_init.
    np.testing.assert_allclose(b * lr_multiplier, 0.5, rtol=1e-6)
    expected = np.asarray(x, np.float64) @ (w * lr_multiplier / np.sqrt(7)) + b * lr_multiplier
    np.testing.assert_allclose(layer.apply(v, x), expected, rtol=1e-5, atol=1e-6)


def test_dense_stored_weight_std_is_weight_init_over_lr_multiplier():
    layer = gnn.EqualizedDense(256, lr_multiplier=0.01, weight_init=2.0)
    v = layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 128)))
    std = float(np.std(v["params"]["weight"]))
    np.testing.assert_allclose(std, 2.0 / 0.01, rtol=0.05)


def test_dense_lrelu_uses_default_gain_and_progan_he_gain():
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    # StyleGAN2: sqrt(2) after the activation.
    sg2 = gnn.EqualizedDense(3, activation="lrelu", bias_init=0.1)
    v = sg2.init(jax.random.PRNGKey(0), x)
    w, b = np.asarray(v["params"]["weight"], np.float64), np.asarray(v["params"]["bias"])
    pre = np.asarray(x, np.float64) @ (w / np.sqrt(6)) + b
    np.testing.assert_allclose(sg2.apply(v, x), _lrelu(pre) * np.sqrt(2), rtol=1e-5, atol=1e-6)
    # ProGAN: sqrt(2) inside the weight scale (he_gain), none after the activation.
    pg = gnn.EqualizedDense(3, activation="lrelu", bias_init=0.1, he_gain=np.sqrt(2),
                            act_gain=1.0)
    pre = np.asarray(x, np.float64) @ (w * np.sqrt(2) / np.sqrt(6)) + b
    np.testing.assert_allclose(pg.apply(v, x), _lrelu(pre), rtol=1e-5, atol=1e-6)


def test_conv_matches_direct_torch_layout_conv():
    layer = gnn.EqualizedConv(4, kernel_size=3, padding=1, lr_multiplier=0.5, bias_init=0.2)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 6, 3))
    v = layer.init(jax.random.PRNGKey(0), x)
    w = v["params"]["weight"]
    assert w.shape == (3, 3, 3, 4)
    gain = 0.5 / np.sqrt(3 * 3 * 3)
    assert gnn.weight_gain(27, 0.5) == pytest.approx(gain)
    out = ref.conv2d_nchw(ref.nhwc_to_nchw(x), ref.hwio_to_oihw(w) * gain, pad=1)
    out += (np.asarray(v["params"]["bias"]) * 0.5)[None, :, None, None]
    np.testing.assert_allclose(layer.apply(v, x), ref.nchw_to_nhwc(out), rtol=1e-5, atol=1e-5)


def test_conv_call_gain_scales_activation_gain_and_clamp():
    layer = gnn.EqualizedConv(2, kernel_size=1, activation="lrelu", clamp=0.3)
    x = 3.0 * jax.random.normal(jax.random.PRNGKey(1), (1, 4, 4, 3))
    v = layer.init(jax.random.PRNGKey(0), x)
    w = np.asarray(v["params"]["weight"], np.float64)[0, 0] / np.sqrt(3)  # [I, O]
    pre = np.asarray(x, np.float64) @ w
    expected = np.clip(_lrelu(pre) * np.sqrt(2) * 0.5, -0.15, 0.15)
    out = layer.apply(v, x, gain=0.5)
    assert np.abs(out).max() == pytest.approx(0.15)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_bad_arguments_raise_value_error():
    x = jnp.zeros((1, 4, 4, 3))
    with pytest.raises(ValueError, match="EqualizedConv: x"):
        gnn.EqualizedConv(2).init(jax.random.PRNGKey(0), x[0])
    with pytest.raises(ValueError, match="padding"):
        gnn.EqualizedConv(2, padding="FULL").init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="kernel_size"):
        gnn.EqualizedConv(2, kernel_size=0).init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="fan_in"):
        gnn.weight_gain(0)
