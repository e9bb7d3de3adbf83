"""EfficientNet-lite0: timm `tf_efficientnet_lite0`, the Projected-GAN / StyleGAN-XL feature net F1.

Tan & Le 2019 (EfficientNet, Table 1: the B0 stage table) in the "lite" form of the TF release (no
squeeze-excitation, ReLU6 instead of swish, fixed 32-channel stem and 1280-channel head); spec
stylegan_xl_and_t.md §1.4 and §4, golden/README.md "Feature networks":

1. Input: the [-1, 1] image, NHWC (timm's mean = std = 0.5 normalisation of a [0, 1] image).
2. conv_stem 3x3/2 (32 ch) + BN + ReLU6.
3. Stage 0: depthwise-separable block (dw 3x3 + BN + ReLU6, pw 1x1 + BN); stages 1-6: inverted
   residuals (expand 1x1 x6 + BN + ReLU6, dw kxk + BN + ReLU6, project 1x1 + BN), the residual
   add only when stride 1 and the channel count is unchanged.
4. Taps (Projected GAN, = timm features_only out_indices 1-4): outputs of blocks 1, 2, 4, 6 with
   24/40/112/320 channels at strides 4/8/16/32.
5. With a classifier: conv_head 1x1 (1280) + BN + ReLU6, global average pool, Linear(1000).

Convolutions have no bias; BatchNorm eps 1e-3 with running statistics (inference only); every
conv pads as TensorFlow "SAME" (extra row/column bottom/right; for stride 1 and odd k this is
the symmetric (k-1)/2). Parameter names follow the timm state dict (`blocks_1_0/conv_pw` =
`blocks.1.0.conv_pw`), so `gan_zoo.convert.efficientnet` is a transpose per tensor.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

BN_EPS = 1e-3  # TF default
STEM_CHANNELS = 32  # fixed in the lite models
HEAD_CHANNELS = 1280  # fixed in the lite models
EXPAND_RATIO = 6  # stages 1-6 (stage 0: 1)
NUM_CLASSES = 1000
# Stages as (kernel, stride, out channels, repeats): EfficientNet-B0, Tan & Le 2019 Table 1 (the
# lite0 multipliers are 1.0/1.0, so the table is used as is).
STAGES = ((3, 1, 16, 1), (3, 2, 24, 2), (5, 2, 40, 2), (3, 2, 80, 3), (5, 1, 112, 3),
          (5, 2, 192, 4), (3, 1, 320, 1))
TAP_STAGES = (1, 2, 4, 6)  # Projected GAN layer0..3 end after these stages
TAP_CHANNELS = (24, 40, 112, 320)
TAP_STRIDES = (4, 8, 16, 32)
RESOLUTION = 224  # timm default_cfg input size (the GANs resize to it)


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one axis: total = max((ceil(size/stride) - 1) * stride + kernel - size,
    0), total // 2 before and the rest after (timm Conv2dSame / pad_same)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def relu6(x):
    return jnp.clip(x, 0.0, 6.0)


def conv_bn(x, features: int, kernel: int = 1, stride: int = 1, depthwise: bool = False,
            act: bool = True, conv_name: str = "conv", bn_name: str = "bn1"):
    """Conv (no bias, TF "SAME") + BatchNorm (eps 1e-3, running stats) [+ ReLU6], created in the
    calling compact module under timm's names (conv_stem/conv_dw/conv_pw/conv_pwl/conv_head,
    bn1/bn2/bn3).

    x: [N, H, W, I] -> [N, ceil(H/stride), ceil(W/stride), features]. depthwise: one kxk filter
    per channel (features = I, kernel [k, k, 1, I]).
    """
    pad = [tf_same_padding(x.shape[a], kernel, stride) for a in (1, 2)]
    groups = x.shape[-1] if depthwise else 1
    x = nn.Conv(features, (kernel, kernel), stride, padding=pad, feature_group_count=groups,
                use_bias=False, kernel_init=nn.initializers.variance_scaling(2.0, "fan_out",
                                                                             "normal"),
                name=conv_name)(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name=bn_name)(x)
    return relu6(x) if act else x


class DepthwiseSeparable(nn.Module):
    """Stage-0 block: dw kxk + BN + ReLU6, pw 1x1 + BN (no activation); skip if shapes allow.

    x: [N, H, W, I] -> [N, H/stride, W/stride, O].
    """
    features: int  # O
    kernel: int = 3
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        y = conv_bn(x, x.shape[-1], self.kernel, self.stride, depthwise=True, conv_name="conv_dw",
                    bn_name="bn1")
        y = conv_bn(y, self.features, act=False, conv_name="conv_pw", bn_name="bn2")
        return x + y if self.stride == 1 and x.shape[-1] == self.features else y


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual without SE: expand 1x1 + BN + ReLU6, dw kxk + BN + ReLU6,
    project 1x1 + BN; residual add iff stride 1 and I == O.

    x: [N, H, W, I] -> [N, H/stride, W/stride, O].
    """
    features: int  # O
    kernel: int = 3
    stride: int = 1
    expand: int = EXPAND_RATIO

    @nn.compact
    def __call__(self, x):
        mid = x.shape[-1] * self.expand
        y = conv_bn(x, mid, conv_name="conv_pw", bn_name="bn1")  # Expand.
        y = conv_bn(y, mid, self.kernel, self.stride, depthwise=True, conv_name="conv_dw",
                    bn_name="bn2")  # Depthwise.
        y = conv_bn(y, self.features, act=False, conv_name="conv_pwl", bn_name="bn3")  # Project.
        return x + y if self.stride == 1 and x.shape[-1] == self.features else y


class EfficientNetLite0(nn.Module):
    """tf_efficientnet_lite0. x: float32 [N, H, W, 3] in [-1, 1] (NHWC).

    features_only (num_classes None) -> (taps, aux): taps = the 4 Projected-GAN maps
    [N, H/4, W/4, 24], [N, H/8, W/8, 40], [N, H/16, W/16, 112], [N, H/32, W/32, 320];
    with num_classes -> (logits [N, num_classes], aux). aux["blocks.i"] is the output of stage i,
    aux["taps"] the four taps.
    """
    num_classes: int | None = None  # None = timm features_only (no conv_head/bn2/classifier)

    @nn.compact
    def __call__(self, x):
        _check_input(x)
        x = conv_bn(x, STEM_CHANNELS, 3, 2, conv_name="conv_stem", bn_name="bn1")
        aux = {}
        for i, (k, s, c, n) in enumerate(STAGES):
            for j in range(n):
                block = DepthwiseSeparable if i == 0 else InvertedResidual
                x = block(c, k, s if j == 0 else 1, name=f"blocks_{i}_{j}")(x)
            aux[f"blocks.{i}"] = x
        aux["taps"] = tuple(aux[f"blocks.{i}"] for i in TAP_STAGES)
        if self.num_classes is None:
            return aux["taps"], aux
        x = conv_bn(x, HEAD_CHANNELS, conv_name="conv_head", bn_name="bn2")
        x = jnp.mean(x, axis=(1, 2))  # global average pool
        return nn.Dense(self.num_classes, name="classifier")(x), aux


def _check_input(x) -> None:
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"EfficientNetLite0: expected images [N, H, W, 3] (NHWC, in [-1, 1]), "
                         f"got shape {tuple(x.shape)}")


def init_variables(seed: int = 0, resolution: int = RESOLUTION, num_classes: int | None = None):
    """Random variables {'params', 'batch_stats'} (use `jax.eval_shape` for shapes only)."""
    x = jnp.zeros((1, resolution, resolution, 3), jnp.float32)
    return EfficientNetLite0(num_classes).init(jax.random.PRNGKey(seed), x)
