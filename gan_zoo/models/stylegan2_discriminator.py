"""StyleGAN2 discriminator: orig / skip (input skips) / resnet blocks, minibatch stddev epilogue and
the conditional projection output. StyleGAN2 §4.1, Fig. 7c, App. B (spec A4); code:
NVlabs/stylegan3 `training/networks_stylegan2.py` (Discriminator*). Import it from
`gan_zoo.models.stylegan2`.
"""

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks, ops
from gan_zoo.models.stylegan2_layers import DEFAULT_FILTER, Conv2dLayer, MappingNetwork
from gan_zoo.nn import EqualizedDense

ARCHITECTURES = ("orig", "skip", "resnet")


class DiscriminatorBlock(nn.Module):
    """One resolution of D. StyleGAN2 Fig. 7c (resnet: (main + skip) / sqrt(2)).

    x: [N, R, R, tmp_channels] or None (first block), img: [N, R, R, C] or None ->
    (x [N, R/2, R/2, out_channels], img [N, R/2, R/2, C] for 'skip', else None).
    """

    in_channels: int  # 0 = first block (fromRGB of the input image)
    tmp_channels: int  # channels at resolution R
    out_channels: int  # channels at R/2
    resolution: int  # R
    img_channels: int = 3  # C
    architecture: str = "resnet"  # 'orig' | 'skip' | 'resnet'
    activation: str = "lrelu"  # bias_act activation
    resample_filter: Sequence[float] = DEFAULT_FILTER  # FIR taps
    conv_clamp: Optional[float] = None  # clamp conv outputs; None = off
    impl: str = "auto"  # op implementation

    @nn.compact
    def __call__(self, x, img):
        conv = dict(activation=self.activation, conv_clamp=self.conv_clamp, impl=self.impl)
        # FromRGB (first block, or every block with input skips).
        if self.in_channels == 0 or self.architecture == "skip":
            checks.check_shape(f"DiscriminatorBlock b{self.resolution}: img", img,
                               [None, self.resolution, self.resolution, self.img_channels])
            y = Conv2dLayer(self.tmp_channels, 1, name="fromrgb", **conv)(img.astype(jnp.float32))
            x = y if x is None else x + y
            img = (ops.downsample2d(img, ops.setup_filter(self.resample_filter), impl=self.impl)
                   if self.architecture == "skip" else None)
        # Main layers: conv 3x3, conv 3x3 down 2 [+ 1x1 down-skip without bias].
        conv0 = Conv2dLayer(self.tmp_channels, 3, name="conv0", **conv)
        conv1 = Conv2dLayer(self.out_channels, 3, down=2, resample_filter=self.resample_filter,
                            name="conv1", **conv)
        if self.architecture == "resnet":
            y = Conv2dLayer(self.out_channels, 1, use_bias=False, down=2,
                            resample_filter=self.resample_filter, impl=self.impl,
                            name="skip")(x, gain=np.sqrt(0.5))
            x = y + conv1(conv0(x), gain=np.sqrt(0.5))
        else:
            x = conv1(conv0(x))
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """4x4 epilogue: [fromRGB,] mbstd, conv 3x3, FC, FC out [, projection]. StyleGAN2 App. B.

    x: [N, 4, 4, I], img (skip only), cmap: [N, cmap_dim] or None -> logits [N, 1].
    Conditional output (cmap_dim > 0): sum(out * cmap) / sqrt(cmap_dim) (projection D).
    """

    in_channels: int  # I
    cmap_dim: int  # mapped label size, 0 = unconditional
    resolution: int = 4  # spatial size
    img_channels: int = 3  # C
    architecture: str = "resnet"  # 'orig' | 'skip' | 'resnet'
    mbstd_group_size: Optional[int] = 4  # minibatch-stddev group (None = whole batch)
    mbstd_num_channels: int = 1  # stddev features; 0 = no mbstd layer
    activation: str = "lrelu"  # bias_act activation
    conv_clamp: Optional[float] = None  # clamp of the 3x3 conv
    impl: str = "auto"  # op implementation

    @nn.compact
    def __call__(self, x, img, cmap=None):
        r, i = self.resolution, self.in_channels
        checks.check_shape("DiscriminatorEpilogue: x", x, [None, r, r, i])
        x = x.astype(jnp.float32)
        if self.architecture == "skip":
            x = x + Conv2dLayer(i, 1, activation=self.activation, impl=self.impl,
                                name="fromrgb")(img.astype(jnp.float32))
        # Minibatch stddev (ProGAN §3; strided groups), conv, FC on the NCHW flatten.
        if self.mbstd_num_channels > 0:
            x = ops.minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels)
        x = Conv2dLayer(i, 3, activation=self.activation, conv_clamp=self.conv_clamp,
                        impl=self.impl, name="conv")(x)
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # [N, I*r*r], C-major like torch
        x = EqualizedDense(i, activation=self.activation, name="fc")(x)
        x = EqualizedDense(self.cmap_dim or 1, name="out")(x)
        # Projection conditioning.
        if self.cmap_dim > 0:
            checks.check_shape("DiscriminatorEpilogue: cmap", cmap, [None, self.cmap_dim])
            x = jnp.sum(x * cmap, axis=1, keepdims=True) * (1 / np.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """StyleGAN2 discriminator. StyleGAN2 §4.1 (Table 2 architectures), App. B.

    img: [N, R, R, C], c: [N, c_dim] or None -> (logits [N], aux {"cmap": [N, cmap_dim] or None}).
    """

    c_dim: int  # label dimensionality, 0 = unconditional
    img_resolution: int  # R
    img_channels: int = 3  # C
    architecture: str = "resnet"  # 'orig' | 'skip' | 'resnet' (configs E-F: resnet)
    channel_base: int = 32768  # channels = min(channel_base // res, channel_max)
    channel_max: int = 512  # cap on channels
    conv_clamp: Optional[float] = 256  # clamp conv outputs; None = off
    cmap_dim: Optional[int] = None  # projection size; None = channels at 4x4
    mapping_layers: int = 8  # FC layers of the label mapping (conditional only)
    mapping_lr_multiplier: float = 0.01  # lr_mul of the label mapping
    mbstd_group_size: Optional[int] = 4  # minibatch-stddev group size
    mbstd_num_channels: int = 1  # minibatch-stddev features
    resample_filter: Sequence[float] = DEFAULT_FILTER  # FIR taps
    impl: str = "auto"  # op implementation

    @property
    def block_resolutions(self):
        return [2**i for i in range(int(np.log2(self.img_resolution)), 2, -1)]

    def _channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @nn.compact
    def __call__(self, img, c=None, update_emas=False):
        del update_emas  # D has no EMA state; accepted for a uniform signature.
        r = self.img_resolution
        if r < 4 or r & (r - 1) or self.architecture not in ARCHITECTURES:
            raise ValueError(f"Discriminator: need a power-of-two img_resolution >= 4 and an "
                             f"architecture in {ARCHITECTURES}, got {r}, {self.architecture!r}")
        checks.check_shape("Discriminator: img", img, [None, r, r, self.img_channels])
        common = dict(img_channels=self.img_channels, architecture=self.architecture,
                      conv_clamp=self.conv_clamp, impl=self.impl)
        x = None
        for res in self.block_resolutions:
            x, img = DiscriminatorBlock(
                self._channels(res) if res < r else 0, self._channels(res),
                self._channels(res // 2), res, resample_filter=self.resample_filter,
                name=f"b{res}", **common)(x, img)
        # Label mapping for the projection output.
        cmap_dim = 0 if self.c_dim == 0 else (self.cmap_dim or self._channels(4))
        cmap = None
        if self.c_dim > 0:
            cmap = MappingNetwork(0, self.c_dim, cmap_dim, None, num_layers=self.mapping_layers,
                                  lr_multiplier=self.mapping_lr_multiplier, w_avg_beta=None,
                                  name="mapping")(None, c)
        x = DiscriminatorEpilogue(self._channels(4), cmap_dim, resolution=4,
                                  mbstd_group_size=self.mbstd_group_size,
                                  mbstd_num_channels=self.mbstd_num_channels, name="b4",
                                  **common)(x, img, cmap)
        return x[:, 0], {"cmap": cmap}
