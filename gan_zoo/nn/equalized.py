"""Equalized-learning-rate layers. ProGAN §4.1; StyleGAN2 App. B (code: FullyConnectedLayer,
Conv2dLayer of NVlabs/stylegan3 `networks_stylegan2.py` / `networks_stylegan3.py`).

Weights are stored as N(0, (weight_init / lr_multiplier)^2) and multiplied at run time by
`weight_gain = he_gain * lr_multiplier / sqrt(fan_in)`; biases are stored divided by lr_multiplier
and multiplied by `bias_gain = lr_multiplier`. Adam then moves every layer at the same speed.
"""

from typing import Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks
from gan_zoo.nn._conv import Padding, conv_nhwc, conv_padding, kernel_hw
from gan_zoo.ops.bias_act import activation_defaults, bias_act

Dtype = jnp.dtype


def weight_gain(fan_in: int, lr_multiplier: float = 1.0, he_gain: float = 1.0) -> float:
    """Run-time weight scale c = he_gain * lr_multiplier / sqrt(fan_in). ProGAN §4.1.

    fan_in = I for a dense layer and I * kh * kw for a conv. StyleGAN2 uses he_gain = 1 (the sqrt(2)
    lives in the activation gain); ProGAN uses he_gain = sqrt(2) (1 for toRGB and D's last layer).
    """
    if fan_in < 1:
        raise ValueError(f"weight_gain: fan_in must be >= 1, got {fan_in}")
    return float(he_gain * lr_multiplier / np.sqrt(fan_in))


def equalized_init(weight_init: float = 1.0, lr_multiplier: float = 1.0):
    """Initializer for stored weights: N(0, 1) * weight_init / lr_multiplier (StyleGAN3 code)."""
    if lr_multiplier <= 0:
        raise ValueError(f"equalized_init: lr_multiplier must be > 0, got {lr_multiplier}")
    std = float(weight_init) / float(lr_multiplier)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.normal(key, shape, dtype) * jnp.asarray(std, dtype)

    return init


def _bias_param(mdl, features: int):
    """Stored bias `bias` [features] = bias_init / lr_multiplier, or None if use_bias is False."""
    if not mdl.use_bias:
        return None
    init = np.broadcast_to(np.asarray(mdl.bias_init, np.float32), (features,))
    stored = init / np.float32(mdl.lr_multiplier)
    return mdl.param("bias", lambda key: jnp.asarray(stored, jnp.float32))


def _act_gain_clamp(mdl, gain: float):
    """(act_gain, clamp) after the StyleGAN2 Conv2dLayer rule: both scaled by the call-time gain."""
    _, def_gain = activation_defaults(mdl.activation, None, mdl.act_gain)
    clamp = None if mdl.clamp is None else mdl.clamp * gain
    return def_gain * gain, clamp


class EqualizedDense(nn.Module):
    """Equalized-lr fully connected layer. ProGAN §4.1; StyleGAN2 FullyConnectedLayer.

    y = act((x @ (weight * weight_gain)) + bias * lr_multiplier) * act_gain.
    x: [..., I] -> [..., features]. Params: `weight` [I, features], `bias` [features].
    """

    features: int  # O, number of output features
    use_bias: bool = True  # add a bias before the activation
    lr_multiplier: float = 1.0  # lr_mul: 0.01 in the StyleGAN mapping network
    weight_init: float = 1.0  # std of the effective weight at init, in units of 1/sqrt(fan_in)
    bias_init: Union[float, Sequence[float]] = 0.0  # effective bias at init (stored / lr_mul)
    he_gain: float = 1.0  # extra factor in weight_gain (ProGAN: sqrt(2))
    activation: str = "linear"  # a gan_zoo.ops.bias_act activation name
    act_gain: Optional[float] = None  # gain after the activation; None: its default (sqrt(2) lrelu)
    clamp: Optional[float] = None  # clamp the output to [-clamp, clamp] (None: no clamp)
    dtype: Optional[Dtype] = None  # compute dtype; None: promote input and params

    @nn.compact
    def __call__(self, x, gain: float = 1.0):
        if x.ndim < 1:
            raise ValueError(f"EqualizedDense: x must have a feature axis [..., I], got {x.shape}")
        fan_in = x.shape[-1]
        w = self.param("weight", equalized_init(self.weight_init, self.lr_multiplier),
                       (fan_in, self.features), jnp.float32)  # [I, O]
        b = _bias_param(self, self.features)
        # Equalized lr: scale the stored weights and bias at run time (ProGAN §4.1).
        w = w * weight_gain(fan_in, self.lr_multiplier, self.he_gain)
        b = None if b is None else b * self.lr_multiplier
        x, w = nn.dtypes.promote_dtype(x, w, dtype=self.dtype)
        y = x @ w
        # Bias + activation + gain + clamp.
        act_gain, clamp = _act_gain_clamp(self, gain)
        return bias_act(y, b, dim=-1, act=self.activation, gain=act_gain, clamp=clamp)


class EqualizedConv(nn.Module):
    """Equalized-lr 2-D convolution (no resampling). ProGAN §4.1; StyleGAN2 Conv2dLayer (up=down=1).

    x: [N, H, W, I] -> [N, H', W', features]. Params: `weight` [kh, kw, I, O], `bias` [O].
    For up/down-sampling convs use gan_zoo.ops.conv2d_resample with `weight_gain`.
    """

    features: int  # O, number of output channels
    kernel_size: Union[int, Sequence[int]] = 3  # k or (kh, kw)
    strides: int = 1  # spatial stride
    padding: Padding = "SAME"  # 'SAME', 'VALID', int p (torch style) or ((t, b), (l, r))
    use_bias: bool = True  # add a bias before the activation
    lr_multiplier: float = 1.0  # lr_mul; weights stored * 1/lr_mul, scaled back at run time
    weight_init: float = 1.0  # std of the effective weight at init, in units of 1/sqrt(fan_in)
    bias_init: Union[float, Sequence[float]] = 0.0  # effective bias at init (stored / lr_mul)
    he_gain: float = 1.0  # extra factor in weight_gain (ProGAN: sqrt(2))
    activation: str = "linear"  # a gan_zoo.ops.bias_act activation name
    act_gain: Optional[float] = None  # gain after the activation; None: its default (sqrt(2) lrelu)
    clamp: Optional[float] = None  # conv_clamp: clamp the output to [-clamp, clamp]
    dtype: Optional[Dtype] = None  # compute dtype; None: promote input and params

    @nn.compact
    def __call__(self, x, gain: float = 1.0):
        checks.check_rank("EqualizedConv: x", x, 4, "[N, H, W, C]")
        kh, kw = kernel_hw("EqualizedConv", self.kernel_size)
        padding = conv_padding("EqualizedConv", self.padding)
        fan_in = x.shape[-1] * kh * kw
        w = self.param("weight", equalized_init(self.weight_init, self.lr_multiplier),
                       (kh, kw, x.shape[-1], self.features), jnp.float32)  # [kh, kw, I, O]
        b = _bias_param(self, self.features)
        # Equalized lr: scale the stored weights and bias at run time (ProGAN §4.1).
        w = w * weight_gain(fan_in, self.lr_multiplier, self.he_gain)
        b = None if b is None else b * self.lr_multiplier
        x, w = nn.dtypes.promote_dtype(x, w, dtype=self.dtype)
        y = conv_nhwc(x, w, self.strides, padding)
        # Bias + activation + gain + clamp (StyleGAN2: act_gain and clamp both scale with gain).
        act_gain, clamp = _act_gain_clamp(self, gain)
        return bias_act(y, b, dim=-1, act=self.activation, gain=act_gain, clamp=clamp)
