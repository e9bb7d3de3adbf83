"""Primitive ops: pure-jnp reference implementations with the official semantics, NHWC.

These are the ground truth; `kernels_pallas` provides fast paths selected with `impl=`.
"""

from gan_zoo.ops.bias_act import ACTIVATIONS, bias_act
from gan_zoo.ops.conv2d_resample import conv2d_resample
from gan_zoo.ops.filtered_lrelu import filtered_lrelu
from gan_zoo.ops.fourier_features import fourier_features
from gan_zoo.ops.lowpass import design_lowpass_filter
from gan_zoo.ops.minibatch_std import minibatch_std
from gan_zoo.ops.modulated_conv2d import modulated_conv2d, modulated_conv2d_sg3
from gan_zoo.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = [
    "ACTIVATIONS", "bias_act", "conv2d_resample", "design_lowpass_filter", "downsample2d",
    "filter2d", "filtered_lrelu", "fourier_features", "minibatch_std", "modulated_conv2d",
    "modulated_conv2d_sg3", "setup_filter", "upfirdn2d", "upsample2d",
]
