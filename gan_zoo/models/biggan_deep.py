"""BigGAN-deep generator and discriminator (Brock et al. 2019, App. B, Fig. 16, Tab. 7-9; spec
biggan.md §1.5, §1.8.3-4): bottleneck residual blocks with identity-preserving skips (G drops
channels, D concatenates), G_depth / D_depth blocks per resolution, skip-z with the whole
[y, z] conditioning every layer. Same interface and collections as `gan_zoo.models.biggan`;
build them with `biggan.make_generator` / `biggan.make_discriminator` (name='biggan_deep').
"""

from typing import Any, Optional, Union

import flax.linen as nn
import jax.numpy as jnp

from gan_zoo import checks
from gan_zoo.models.biggan_common import (
    G_ARCH,
    BNSettings,
    SNSettings,
    arch_row,
    avg_pool2x,
    check_labels,
    class_embedding,
    minibatch_std_input,
    output_layer,
    parse_attn,
    projection_head,
    resolve_dtype,
    sigmas,
    upsample2x,
)

CHANNEL_RATIO = 4  # bottleneck factor: hidden = in // 4 in G, out // 4 in D (spec §1.5)

# D channel multipliers per resolution stage (x ch; G uses biggan_common.G_ARCH); flags = the
# stage's first D block downsamples; labels = stage resolution (attention placement). BigGAN
# Tab. 7-9 (spec §1.8.4) and the BigGAN-PyTorch tables (incl. the res-32 labels quirk in D).
D_ARCH = {
    32: ([4, 4, 4], [4, 4, 4], [True, True, False], [16, 16, 16]),
    64: ([1, 2, 4, 8], [2, 4, 8, 16], [True] * 4, [32, 16, 8, 4]),
    128: ([1, 2, 4, 8, 16], [2, 4, 8, 16, 16], [True] * 5, [64, 32, 16, 8, 4]),
    256: ([1, 2, 4, 8, 8, 16], [2, 4, 8, 8, 16, 16], [True] * 6, [128, 64, 32, 16, 8, 4]),
    512: ([1, 1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [True] * 7,
          [256, 128, 64, 32, 16, 8, 4]),
}


class GBlock(nn.Module):
    """BigGAN-deep G bottleneck block. App. B, Fig. 16 (spec §1.5); BigGAN-PyTorch deep GBlock.

    h = conv1x1(relu(ccbn4(conv3(relu(ccbn3(conv3(up(relu(ccbn2(conv1x1(relu(ccbn1(x)))))))))))))
    with hidden width in // 4; skip = up(x[..., :out_ch]) (channel drop, no conv).
    x: [N, H, W, I], c: [N, D] -> [N, H', W', out_ch], H' = 2H if upsample else H.
    """

    out_ch: int  # O, output channels (<= I)
    upsample: bool  # nearest x2 after the second CBN (and on the skip)
    sn: SNSettings  # spectral norm of the convs and BN projections
    bn: BNSettings  # conditional BN settings
    dtype: Optional[Any] = None  # compute dtype

    @nn.compact
    def __call__(self, x, c, *, train: bool):
        in_ch = x.shape[-1]
        if self.out_ch > in_ch:
            raise ValueError(f"deep GBlock: out_ch {self.out_ch} > input channels {in_ch} "
                             "(the skip drops channels)")
        hid = in_ch // CHANNEL_RATIO
        ccbn = lambda name: self.bn.ccbn(name, self.sn, True, 0, self.dtype)
        conv = lambda o, k, name: self.sn.conv(o, k, name, self.dtype)
        # Bottleneck in: 1x1 to in // 4.
        h = conv(hid, 1, "conv1")(nn.relu(ccbn("bn1")(x, c, train=train)), train=train)
        h = nn.relu(ccbn("bn2")(h, c, train=train))
        # Skip: drop channels; upsample both paths.
        x = x[..., :self.out_ch]
        if self.upsample:
            h, x = upsample2x(h), upsample2x(x)
        # Two 3x3 convs, then bottleneck out: 1x1 to out_ch.
        h = conv(hid, 3, "conv2")(h, train=train)
        h = conv(hid, 3, "conv3")(nn.relu(ccbn("bn3")(h, c, train=train)), train=train)
        h = conv(self.out_ch, 1, "conv4")(nn.relu(ccbn("bn4")(h, c, train=train)), train=train)
        return h + x


class DBlock(nn.Module):
    """BigGAN-deep D bottleneck block. App. B, Fig. 16 (spec §1.5); BigGAN-PyTorch deep DBlock.

    h = conv1x1(pool(relu(conv3(relu(conv3(relu(conv1x1(relu(x)))))))) with hidden out // 4;
    skip = pool(x), with conv1x1(pool(x)) (out - in channels) concatenated after it if out > in;
    the skip first drops x's last `skip_drop` channels (as G's skip drops channels).
    x: [N, H, W, I] -> [N, H', W', out_ch], H' = H/2 if downsample else H.
    """

    out_ch: int  # O, output channels (>= I - skip_drop)
    downsample: bool  # 2x2 average pool
    sn: SNSettings  # spectral norm of the convs
    dtype: Optional[Any] = None  # compute dtype
    # trailing input channels only the residual branch sees (D's minibatch-stddev map); 0: none
    skip_drop: int = 0

    @nn.compact
    def __call__(self, x, *, train: bool):
        in_ch = x.shape[-1] - self.skip_drop  # the skip's channels
        if self.out_ch < in_ch:
            raise ValueError(f"deep DBlock: out_ch {self.out_ch} < input channels {in_ch} "
                             f"(+ skip_drop {self.skip_drop}; the skip concatenates channels)")
        hid = self.out_ch // CHANNEL_RATIO
        conv = lambda o, k, name: self.sn.conv(o, k, name, self.dtype)
        h = conv(hid, 1, "conv1")(nn.relu(x), train=train)
        h = conv(hid, 3, "conv2")(nn.relu(h), train=train)
        h = nn.relu(conv(hid, 3, "conv3")(nn.relu(h), train=train))
        if self.downsample:
            h = avg_pool2x(h)
        h = conv(self.out_ch, 1, "conv4")(h, train=train)
        # Skip: drop the skip_drop channels, pool, then concatenate the extra channels.
        s = x[..., :in_ch]
        s = avg_pool2x(s) if self.downsample else s
        if self.out_ch > in_ch:
            s = jnp.concatenate([s, conv(self.out_ch - in_ch, 1, "conv_sc")(s, train=train)], -1)
        return h + s


class Generator(nn.Module):
    """BigGAN-deep generator. BigGAN App. B, Tab. 7-9 (spec §1.2, §1.5, §1.8.3).

    z: [N, dim_z], labels: int [N] (or y: [N, shared_dim]) -> (images [N, R, R, 3] in [-1, 1],
    aux) with aux = {"y": shared embedding, "sv": {layer: sigma}}. Skip-z: c = [y, z] feeds
    `linear` and every conditional BN (BigGAN-PyTorch order, y first).
    Blocks: per stage G_depth blocks, all but the last keep the width, the last goes in -> out and
    upsamples; named blocks_{j}_0 (j counts blocks), the stage's attention blocks_{j}_1.
    """

    resolution: int = 128  # R, output size (32, 64, 128, 256, 512)
    n_classes: int = 1000  # number of classes
    dim_z: int = 128  # latent size
    shared_dim: int = 128  # size of the shared class embedding
    hier: bool = True  # skip-z; BigGAN-deep requires it
    G_ch: int = 128  # ch, channel multiplier
    G_depth: int = 2  # blocks per resolution stage
    G_attn: str = "64"  # resolutions with a non-local block, '_'-joined; '0' = none
    bottom_width: int = 4  # spatial size of the first feature map
    BN_eps: float = 1e-4  # conditional-BN epsilon (App. C)
    out_bn_eps: Optional[float] = None  # final-BN epsilon; None: BN_eps (BigGAN-PyTorch: 1e-5)
    SN_eps: float = 1e-4  # spectral-norm epsilon (App. C)
    num_G_SVs: int = 1  # singular values tracked per SN layer
    num_G_SV_itrs: int = 1  # power iterations per forward
    bn_reduction_group: Union[str, int] = "global"  # BN statistics group (spec §4)
    bn_num_devices: Optional[int] = None  # devices for reduction_group="device"
    rgb_conv_channels: int = 3  # output-conv width (128 in the released weights); first 3 kept
    dtype: Optional[Any] = None  # compute dtype (params, BN statistics and SN stay float32)

    def arch(self) -> dict:
        return arch_row(G_ARCH, self.resolution, self.G_ch, "Generator.resolution")

    def z_chunks(self) -> tuple[int, int]:
        """(1, dim_z): BigGAN-deep does not split z; validates the config."""
        self.arch()
        if not self.hier:
            raise ValueError("biggan_deep.Generator: hier=False is not supported (the reference "
                             "feeds [y, z] to the linear layer and every block)")
        if self.G_depth < 1:
            raise ValueError(f"biggan_deep.Generator: G_depth must be >= 1, got {self.G_depth}")
        return 1, self.dim_z

    @nn.compact
    def __call__(self, z, labels=None, *, y=None, train: bool):
        dtype = resolve_dtype(self.dtype)
        sn = SNSettings(self.num_G_SVs, self.num_G_SV_itrs, self.SN_eps)
        bn = BNSettings(self.BN_eps, self.BN_eps if self.out_bn_eps is None else self.out_bn_eps,
                        self.bn_reduction_group, self.bn_num_devices)
        self.z_chunks()
        arch, attn = self.arch(), parse_attn(self.G_attn, "G_attn")
        checks.check_shape("Generator: z", z, (None, self.dim_z))
        n = z.shape[0]
        y = class_embedding(self, labels, y, n)
        c = jnp.concatenate([y, z.astype(y.dtype)], axis=-1)  # [N, shared_dim + dim_z]
        # Linear to [N, C, bw, bw] (torch C-major view), then NHWC.
        bw, c0 = self.bottom_width, arch["in"][0]
        h = sn.dense(c0 * bw * bw, "linear", dtype)(c, train=train)
        h = h.reshape(n, c0, bw, bw).transpose(0, 2, 3, 1)  # [N, bw, bw, C]
        j = 0
        for i, o, up, r in zip(arch["in"], arch["out"], arch["flags"], arch["res"]):
            for d in range(self.G_depth):
                last = d == self.G_depth - 1
                h = GBlock(o if last else i, up and last, sn, bn, dtype,
                           name=f"blocks_{j}_0")(h, c, train=train)
                j += 1
            if r in attn:
                h = sn.attention(f"blocks_{j - 1}_1", dtype)(h, train=train)
        img = output_layer(h, sn, bn, self.rgb_conv_channels, train, dtype)
        names = ["linear"] + [f"blocks_{k}_0/conv2" for k in range(j)] + ["output_layer_2"]
        return img, {"y": y, "sv": sigmas(self, names)}


class Discriminator(nn.Module):
    """BigGAN-deep projection discriminator. BigGAN App. B, Tab. 7-9 (spec §1.5, §1.7, §1.8.4).

    x: [N, R, R, 3], labels: int [N] -> (logits [N] float32, aux) with aux = {"features":
    [N, 16ch] sum-pooled relu features, "sv": {layer: sigma}}. Stem conv3x3 3 -> ch
    (`input_conv`), then per stage D_depth blocks (the first goes in -> out and downsamples), named
    blocks_{i}_{d}, the stage's attention blocks_{i}_{D_depth}.
    """

    resolution: int = 128  # R, input size (32, 64, 128, 256, 512)
    n_classes: int = 1000  # number of classes
    D_ch: int = 128  # ch, channel multiplier
    D_depth: int = 2  # blocks per resolution stage
    D_attn: str = "64"  # resolutions with a non-local block, '_'-joined; '0' = none
    SN_eps: float = 1e-4  # spectral-norm epsilon (App. C)
    num_D_SVs: int = 1  # singular values tracked per SN layer
    num_D_SV_itrs: int = 1  # power iterations per forward
    # Minibatch stddev before the last block (as BigGAN's D): group of consecutive samples;
    # 0 = off = the paper's D; the block's skip drops the std channels (not in BigGAN)
    mbstd_group: int = 0
    mbstd_channels: int = 1  # std maps appended when mbstd_group > 0 (StyleGAN2: num_channels)
    dtype: Optional[Any] = None  # compute dtype of the blocks; the head runs in float32

    def arch(self) -> dict:
        if self.D_depth < 1:
            raise ValueError(f"biggan_deep.Discriminator: D_depth must be >= 1, got {self.D_depth}")
        return arch_row(D_ARCH, self.resolution, self.D_ch, "Discriminator.resolution")

    @nn.compact
    def __call__(self, x, labels, *, train: bool):
        dtype = resolve_dtype(self.dtype)
        sn = SNSettings(self.num_D_SVs, self.num_D_SV_itrs, self.SN_eps)
        arch, attn = self.arch(), parse_attn(self.D_attn, "D_attn")
        checks.check_shape("Discriminator: x", x, (None, self.resolution, self.resolution, 3))
        check_labels("Discriminator", labels, x.shape[0])
        h = x if dtype is None else x.astype(dtype)
        h = sn.conv(arch["in"][0], 3, "input_conv", dtype)(h, train=train)
        for i, (o, down, r) in enumerate(zip(arch["out"], arch["flags"], arch["res"])):
            for d in range(self.D_depth):
                last = i == len(arch["out"]) - 1 and d == self.D_depth - 1
                if last:  # D sees the group's spread (+mbstd_channels if mbstd_group).
                    h = minibatch_std_input(h, self.mbstd_group, self.mbstd_channels)
                drop = self.mbstd_channels if last and self.mbstd_group else 0
                h = DBlock(o, down and d == 0, sn, dtype, drop, name=f"blocks_{i}_{d}")(
                    h, train=train)
            if r in attn:
                h = sn.attention(f"blocks_{i}_{self.D_depth}", dtype)(h, train=train)
        logits, feats = projection_head(h, labels, sn, self.n_classes, train)
        names = ["input_conv"] + [f"blocks_{i}_0/conv2" for i in range(len(arch["out"]))]
        return logits, {"features": feats, "sv": sigmas(self, names + ["linear", "embed"])}
