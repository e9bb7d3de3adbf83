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
from gan_zoo.models import progan
from gan_zoo.models.stylegan2_layers import DEFAULT_FILTER, Conv2dLayer, MappingNetwork
from gan_zoo.nn import EqualizedDense, precision

ARCHITECTURES = ("orig", "skip", "resnet")


class DiscriminatorBlock(nn.Module):
    """One resolution of D. StyleGAN2 Fig. 7c (resnet: (main + skip) / sqrt(2)).

    x: [N, R, R, tmp_channels] or None (first block), img: [N, R, R, C] or None ->
    (x [N, R/2, R/2, out_channels], img [N, R/2, R/2, C] for 'skip', else None).
    Growing D (alpha given): x = fromRGB(img) if x is None, else the fade-in
    lerp(fromRGB(img), x, alpha) of the downsampled image with the new block's output (PG §2).
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
    dtype: str = "float32"  # compute dtype (reduced in the num_fp16_res blocks)
    impl: str = "auto"  # op implementation

    @nn.compact
    def __call__(self, x, img, alpha=None):
        conv = dict(activation=self.activation, conv_clamp=self.conv_clamp, impl=self.impl)
        dtype = precision.as_dtype(self.dtype)  # float32 params, cast at use (official use_fp16)
        x = None if x is None else x.astype(dtype)
        # FromRGB (first block, every block with input skips, the fading block of a growing D).
        if self.in_channels == 0 or self.architecture == "skip" or alpha is not None:
            checks.check_shape(f"DiscriminatorBlock b{self.resolution}: img", img,
                               [None, self.resolution, self.resolution, self.img_channels])
            img = img.astype(dtype)
            y = Conv2dLayer(self.tmp_channels, 1, name="fromrgb", **conv)(img)
            x = _join(x, y, alpha)
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
        assert x.dtype == dtype, (self.name, x.dtype, dtype)
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """4x4 epilogue: [fromRGB,] mbstd, conv 3x3, FC, FC out [, projection]. StyleGAN2 App. B.

    x: [N, 4, 4, I] (None: a growing D at 4^2), img (skip / growing), cmap: [N, cmap_dim] or
    None -> logits [N, 1]. Conditional output (cmap_dim > 0): sum(out * cmap) / sqrt(cmap_dim)
    (projection D). Growing D (alpha given): fromRGB joined as in DiscriminatorBlock.
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
    def __call__(self, x, img, cmap=None, alpha=None):
        r, i = self.resolution, self.in_channels
        if x is not None:
            checks.check_shape("DiscriminatorEpilogue: x", x, [None, r, r, i])
            x = x.astype(jnp.float32)
        if self.architecture == "skip" or alpha is not None or x is None:
            checks.check_shape("DiscriminatorEpilogue: img", img, [None, r, r, None])
            x = _join(x, Conv2dLayer(i, 1, activation=self.activation, impl=self.impl,
                                     name="fromrgb")(img.astype(jnp.float32)), alpha)
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


def _join(x, y, alpha):
    """fromRGB output y joined to x: y if x is None; input skips x + y (alpha None); fade-in
    lerp(y, x, alpha) of a growing D (ProGAN §2; official D_stylegan linear structure)."""
    if x is None:
        return y
    return x + y if alpha is None else progan.lerp(y, x, jnp.asarray(alpha, x.dtype))


class Discriminator(nn.Module):
    """StyleGAN2 discriminator. StyleGAN2 §4.1 (Table 2 architectures), App. B.

    img: [N, R, R, C], c: [N, c_dim] or None -> (logits [N], aux {"cmap": [N, cmap_dim] or None}).
    progressive (configs A-D, 'orig' only): a fromRGB per resolution; the static stage `res`
    takes img [N, res, res, C] into b<res>, and the fade-in weight `alpha` blends in
    fromRGB_{res/2}(avgpool2(img)) after it (ProGAN §2).
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
    progressive: bool = False  # fromRGB per resolution, `res` / `alpha` select the stage (A-D)
    num_fp16_res: int = 0  # the N highest resolutions compute in fp16_dtype (official: 4)
    fp16_dtype: str = "bfloat16"  # reduced dtype: 'bfloat16' | 'float16' | 'float32' | 'auto'
    impl: str = "auto"  # op implementation

    @property
    def block_resolutions(self):
        return [2**i for i in range(int(np.log2(self.img_resolution)), 2, -1)]

    def _channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    def _check(self, res):
        r = self.img_resolution
        if r < 4 or r & (r - 1) or self.architecture not in ARCHITECTURES:
            raise ValueError(f"Discriminator: need a power-of-two img_resolution >= 4 and an "
                             f"architecture in {ARCHITECTURES}, got {r}, {self.architecture!r}")
        if self.progressive and self.architecture != "orig":
            raise ValueError(f"Discriminator: progressive growing needs architecture='orig', "
                             f"got {self.architecture!r}")
        if res != r and (not self.progressive or res < 4 or res > r or res & (res - 1)):
            raise ValueError(f"Discriminator: res={res} needs progressive=True and a power of "
                             f"two in [4, {r}]")

    def _inputs(self, img, res, alpha):
        """{block resolution: (img, alpha)} of the blocks that take the image: the stage's
        first block, the fading one below it, and at init every block (so all fromRGB exist)."""
        if not self.progressive:
            return {self.img_resolution: (img, None)}
        feeds = {res: (img, None)}
        for b in [2 ** k for k in range(2, int(np.log2(res)))]:
            if b == res // 2 or self.is_initializing():
                feeds[b] = (progan.downscale_to(img, b), alpha if b == res // 2 else 1.0)
        return feeds

    @nn.compact
    def __call__(self, img, c=None, update_emas=False, res=None, alpha=1.0):
        del update_emas  # D has no EMA state; accepted for a uniform signature.
        r = self.img_resolution if res is None else int(res)
        self._check(r)
        checks.check_shape("Discriminator: img", img, [None, r, r, self.img_channels])
        common = dict(img_channels=self.img_channels, architecture=self.architecture,
                      conv_clamp=self.conv_clamp, impl=self.impl)
        feeds = self._inputs(img.astype(jnp.float32), r, alpha)
        x = None
        for res_b in self.block_resolutions:
            if res_b > r:
                continue
            block_img, block_alpha = feeds.get(res_b, (None, None))
            if self.architecture == "skip":
                block_img = img
            x, img = DiscriminatorBlock(
                self._channels(res_b) if res_b < r else 0, self._channels(res_b),
                self._channels(res_b // 2), res_b, resample_filter=self.resample_filter,
                dtype=precision.block_dtype(res_b, self.img_resolution, self.num_fp16_res,
                                            self.fp16_dtype),
                name=f"b{res_b}", **common)(x, block_img, block_alpha)
        # Label mapping for the projection output.
        cmap_dim = 0 if self.c_dim == 0 else (self.cmap_dim or self._channels(4))
        cmap = None
        if self.c_dim > 0:
            cmap = MappingNetwork(0, self.c_dim, cmap_dim, None, num_layers=self.mapping_layers,
                                  lr_multiplier=self.mapping_lr_multiplier, w_avg_beta=None,
                                  name="mapping")(None, c)
        img4, alpha4 = feeds.get(4, (img, None))
        x = DiscriminatorEpilogue(self._channels(4), cmap_dim, resolution=4,
                                  mbstd_group_size=self.mbstd_group_size,
                                  mbstd_num_channels=self.mbstd_num_channels, name="b4",
                                  **common)(x, img4, cmap, alpha4)
        return x[:, 0], {"cmap": cmap}
