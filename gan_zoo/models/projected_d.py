"""Projected discriminator of StyleGAN-XL (Sauer et al. 2021 Projected GAN §3; StyleGAN-XL §3.3,
Fig. 2; spec stylegan_xl_and_t.md §1.4). Facts from autonomousvision/stylegan-xl
`pg_modules/{discriminator,projector,blocks}.py` and `feature_networks/vit.py`.

Per feature network F (official order: DeiT-base, then EfficientNet-lite0):
1. DiffAugment (color, translation, cutout) of the [-1, 1] image, drawn independently per F
   (gan_zoo.augment).
2. [0, 1], then F's normalisation (lite0: mean = std = 0.5; DeiT: ImageNet mean/std).
3. Bilinear resize (torch align_corners=False, no antialias) to 224 when `interp224` (the
   official sets it for training resolutions < 224) and always for the ViT.
4. Frozen F -> 4 taps. ViT: blocks 2/5/8/11, prefix tokens dropped (readout "ignore"), 14x14
   grid, random 1x1 conv to C/8, C/4, C/2, C channels, resampled by a transposed conv x4, x2,
   identity, a 3x3 stride-2 conv (DPT reassembly, random and frozen).
5. CCM: random 1x1 convs (bias) to 64/128/256/512 ch. CSM: from coarsest to finest, add the
   coarser fused map, bilinear x2 (align_corners=True), random 1x1 conv (halving channels except at
   the finest): maps of 64/64/128/256 ch at twice the tap resolution. Both frozen.
6. One head per map: DownBlocks (SN conv 4x4/2 pad 1 + BatchNorm + lrelu 0.2) down to a nominal
   8x8, then an SN 4x4 valid conv. Depth follows the official nominal sizes, computed for a 256
   input whatever the real one (`NOMINAL_RES`): 4/3/2/1 DownBlocks. Conditional heads output
   cmap_dim channels and project on a per-head class embedding:
   logit = sum_ch(out * embed_proj(embed(c))) / sqrt(cmap_dim)  (Miyato & Koyama 2018).
All heads' logit maps are flattened and concatenated: logits [N, sum_heads h*w].

Variables: `params` = the trainable heads only (convs, BatchNorm affine, class embeddings, FCs);
`batch_stats` / `spectral_norm` = the heads' BN running stats and SN vectors; `frozen` = the
feature nets' variables (`<backbone>_net`) and the random projections (`<backbone>_proj`,
`<backbone>_reassemble`), initialised from `proj_seed` (not from the init rng), saved with the
state and only ever read through stop_gradient, so the optimiser never sees them. Pretrained
weights replace `frozen/<backbone>_net` (gan_zoo.convert.efficientnet / vit).

Deviations: the heads use gan_zoo.nn.SNConv (BigGAN-PyTorch SN: one power iteration on every
forward, eval included), while torch.nn.utils.spectral_norm reuses the stored u, v in eval mode.
"""

import zlib
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import augment, checks
from gan_zoo.feature_nets import efficientnet, vit
from gan_zoo.nn.batch_norm import BatchNorm
from gan_zoo.nn.equalized import EqualizedDense
from gan_zoo.nn.spectral_norm import SNConv

FROZEN_COLLECTION = "frozen"
EFFNET = "tf_efficientnet_lite0"
DEIT = "deit_base_distilled_patch16_224"
BACKBONES = (DEIT, EFFNET)  # stylegan-xl train.py `backbones` (order of the logits)
NORM_STATS = {  # projector.get_backbone_normstats: (mean, std) of the [0, 1] image
    EFFNET: ((0.5,) * 3, (0.5,) * 3),  # NORMALIZED_INCEPTION
    DEIT: (vit.IMAGENET_MEAN, vit.IMAGENET_STD),  # NORMALIZED_IMAGENET
}
VIT_INPUT = 224  # the ViT always sees 224^2
NOMINAL_RES = 256  # projector._make_projector: im_res = 256 for the head sizes, whatever the input
HEAD_END_SIZE = 8  # MultiScaleD end_sz
# SingleDiscCond nfc_midas: channels of a head's map at each nominal size.
HEAD_CHANNELS = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32, 512: 16, 1024: 8}
EMBED_DIM = 320  # in_embeddings/tf_efficientnet_lite0.pkl: 1000 x 320


def torch_kernel_init():
    """torch Conv2d default weight init: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))."""
    return nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
    """torch Conv2d default bias init: U(+-1/sqrt(fan_in))."""
    bound = 1 / np.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound,
                                                                    bound)


def _conv(features: int, kernel: int, fan_in: int, stride: int = 1, padding=0, name=None):
    """A torch-initialised Conv2d(bias=True) in NHWC (padding p on every side)."""
    return nn.Conv(features, (kernel, kernel), stride, padding=((padding, padding),) * 2,
                   kernel_init=torch_kernel_init(), bias_init=torch_bias_init(fan_in),
                   name=name)


def upsample2_align_corners(x):
    """[N, H, W, C] -> [N, 2H, 2W, C]: torch bilinear, scale 2, align_corners=True."""
    def taps(n):
        src = np.arange(2 * n) * ((n - 1) / max(2 * n - 1, 1))
        lo = np.minimum(np.floor(src).astype(np.int32), n - 1)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, jnp.asarray(src - lo, jnp.float32)
    ylo, yhi, dy = taps(x.shape[1])
    xlo, xhi, dx = taps(x.shape[2])
    x = x[:, ylo] * (1 - dy)[:, None, None] + x[:, yhi] * dy[:, None, None]
    return x[:, :, xlo] * (1 - dx)[:, None] + x[:, :, xhi] * dx[:, None]


def resize_bilinear(x, size: int):
    """[N, H, W, C] -> [N, size, size, C], torch bilinear align_corners=False, no antialias."""
    if x.shape[1:3] == (size, size):
        return x
    return jax.vmap(lambda img: vit.resize_bilinear(img, (size, size)))(x)


class ViTReassemble(nn.Module):
    """DPT reassembly of 4 ViT taps (stylegan-xl feature_networks/vit.py `_make_vit_b16_backbone`,
    readout "ignore"). tokens: 4 x [N, prefix + h*w, C] -> maps at strides 4/8/16/32 of the image
    with C/8, C/4, C/2, C channels (96/192/384/768 for DeiT-base)."""
    num_prefix: int  # prefix tokens dropped (2 for DeiT distilled: cls + dist)
    grid: tuple[int, int]  # (h, w) token grid

    @nn.compact
    def __call__(self, tokens: Sequence[jnp.ndarray]):
        c = tokens[0].shape[-1]
        feats = (c // 8, c // 4, c // 2, c)
        outs = []
        for i, (t, f) in enumerate(zip(tokens, feats)):
            x = t[:, self.num_prefix:].reshape(t.shape[0], *self.grid, c)  # [N, h, w, C]
            x = _conv(f, 1, c, name=f"layer{i + 1}_conv")(x)
            if i in (0, 1):  # transposed conv, kernel = stride = 4 / 2 (no overlap)
                k = 4 if i == 0 else 2
                x = nn.ConvTranspose(f, (k, k), (k, k), padding="VALID",
                                     kernel_init=torch_kernel_init(),
                                     bias_init=torch_bias_init(f * k * k),
                                     name=f"layer{i + 1}_resample")(x)
            elif i == 3:  # 3x3 stride-2 conv, padding 1
                x = _conv(f, 3, f * 9, 2, 1, name=f"layer{i + 1}_resample")(x)
            outs.append(x)
        return tuple(outs)


class RandomProjection(nn.Module):
    """CCM + CSM (Projected GAN §3.2; stylegan-xl projector.py, proj_type 2, expand).
    4 maps [N, H_i, W_i, C_i] -> 4 maps at twice the resolution with cout*(1, 1, 2, 4) ch."""
    cout: int = 64  # CCM width of the finest map (x1, x2, x4, x8 with expand)
    expand: bool = True  # widen coarser maps in the CCM; halve them in the CSM

    @nn.compact
    def __call__(self, feats: Sequence[jnp.ndarray]):
        mult = (1, 2, 4, 8) if self.expand else (1, 1, 1, 1)
        # CCM: random 1x1 cross-channel mixing.
        ccm = [_conv(self.cout * m, 1, f.shape[-1], name=f"layer{i}_ccm")(f)
               for i, (f, m) in enumerate(zip(feats, mult))]
        # CSM: top-down fusion; add, bilinear x2 (align_corners=True), random 1x1.
        out, fused = None, [None] * 4
        for i in (3, 2, 1, 0):
            x = ccm[i] if out is None else out + ccm[i]
            x = upsample2_align_corners(x)
            c = x.shape[-1]
            out = _conv(c // 2 if (self.expand and i > 0) else c, 1, c, name=f"layer{i}_csm")(x)
            fused[i] = out
        return tuple(fused)


def head_channels(nominal_size: int, in_channels: int,
                  channel_max: int = 0) -> list[tuple[int, int, int]]:
    """The DownBlocks of a head: (size, cin, cout) while size > HEAD_END_SIZE (SingleDiscCond).
    channel_max > 0 caps the HEAD_CHANNELS widths (not in the official code: small CPU presets);
    0 = the official table."""
    if channel_max < 0:
        raise ValueError(f"head_channels: channel_max (config.model.d_head_channel_max) must be "
                         f">= 0 (0 = the official widths), got {channel_max}")
    table = {k: min(v, channel_max) if channel_max > 0 else v for k, v in HEAD_CHANNELS.items()}
    table[nominal_size] = in_channels
    blocks, s = [], nominal_size
    while s > HEAD_END_SIZE:
        blocks.append((s, table[s], table[s // 2]))
        s //= 2
    return blocks


class DiscHead(nn.Module):
    """One multi-scale head (stylegan-xl SingleDiscCond / SingleDisc, Projected GAN §3).
    x: [N, H, W, C] feature map, c: one-hot [N, c_dim] -> logits [N, H', W'] (4x4 at 224^2).
    c_alt (one-hot [N, c_dim], conditional heads only): also the logits of the same features
    under other labels -> (logits, logits_alt); only the projection is recomputed."""
    nominal_size: int  # official start_sz: the map's size for a 256 input (128/64/32/16)
    c_dim: int = 1000  # classes; 0 = unconditional (4x4 conv to 1 channel, SingleDisc)
    cmap_dim: int = 64  # projection width
    embed_dim: int = EMBED_DIM  # class-embedding width (pretrained lite0 table)
    bn_group: str | int = "device"  # BatchNorm statistics: per device as the official DDP
    num_devices: Optional[int] = None  # devices for bn_group "device"; None: jax.device_count()
    channel_max: int = 0  # cap on the DownBlocks' widths (head_channels); 0 = official

    @nn.compact
    def __call__(self, x, c, *, train: bool, c_alt=None):
        checks.check_rank("DiscHead: x", x, 4, "[N, H, W, C]")
        blocks = head_channels(self.nominal_size, x.shape[-1], self.channel_max)
        if min(x.shape[1:3]) // 2 ** len(blocks) < 4:  # else no logits at all (a blind head)
            raise ValueError(f"DiscHead: a {tuple(x.shape[1:3])} map is {len(blocks)} down "
                             f"blocks (nominal size {self.nominal_size}) from smaller than the "
                             "4x4 logit conv; lower nominal_res (config.model.d_nominal_res)")
        # DownBlocks: SN conv 4x4/2 (pad 1, bias) + BatchNorm + lrelu 0.2.
        for i, (_, cin, cout) in enumerate(blocks):
            x = SNConv(cout, 4, 2, 1, weight_init=torch_kernel_init(),
                       bias_init=torch_bias_init(cin * 16), name=f"down{i}_conv")(x, train=train)
            x = BatchNorm(reduction_group=self.bn_group, num_devices=self.num_devices,
                          name=f"down{i}_bn")(x, train=train)
            x = jax.nn.leaky_relu(x, 0.2)
        out_ch = self.cmap_dim if self.c_dim else 1
        out = SNConv(out_ch, 4, 1, "VALID", use_bias=False, weight_init=torch_kernel_init(),
                     name="cls")(x, train=train)  # [N, h, w, cmap]
        if not self.c_dim:
            if c_alt is not None:
                raise ValueError("DiscHead: c_alt needs a conditional head (c_dim > 0)")
            return out[..., 0]
        # Projection conditioning: logit = <out, cmap> / sqrt(cmap_dim).
        for name, lab in (("c", c), ("c_alt", c_alt))[:1 if c_alt is None else 2]:
            if lab is None or lab.shape != (x.shape[0], self.c_dim):
                raise ValueError(f"DiscHead: {name} must be one-hot [N, c_dim] = [{x.shape[0]}, "
                                 f"{self.c_dim}], got {None if lab is None else tuple(lab.shape)}")
        embed = nn.Embed(self.c_dim, self.embed_dim, embedding_init=nn.initializers.normal(1.0),
                         name="embed")
        embed_proj = EqualizedDense(self.cmap_dim, activation="lrelu", name="embed_proj")

        def project(labels):
            cmap = embed_proj(embed(jnp.argmax(labels, axis=1)))
            return jnp.sum(out * cmap[:, None, None, :], axis=-1) / np.sqrt(self.cmap_dim)
        return project(c) if c_alt is None else (project(c), project(c_alt))


def frozen_seed(proj_seed: int, name: str):
    """A key for the frozen variables of `name`, from proj_seed only (never the init rng)."""
    return jax.random.fold_in(jax.random.PRNGKey(proj_seed), zlib.crc32(name.encode()) % 2**31)


def _normalize(x01, backbone: str):
    mean, std = (jnp.asarray(v, x01.dtype) for v in NORM_STATS[backbone])
    return (x01 - mean) / std


class ProjectedDiscriminator(nn.Module):
    """StyleGAN-XL projected D (spec §1.4). x: images [N, H, W, 3] in [-1, 1], c: one-hot
    [N, c_dim] (or None when c_dim = 0) -> (logits [N, L], aux) with L = sum over the 4 heads of
    every backbone of h*w (8 heads x 16 at inputs resized to 224). aux["logits"]: per-head maps
    keyed "<backbone>/<i>"; aux["features"]: the CSM maps fed to the heads.

    key: the DiffAugment key (required when diffaug); each backbone draws from fold_in(key, i).
    c_alt: optional other labels [N, c_dim]: aux["logits_alt"] holds every head's logits of the
    same features under c_alt (the class margin, the matching-aware term of the XL recipe).
    """
    backbones: tuple[str, ...] = BACKBONES  # feature networks, in logit order
    c_dim: int = 1000  # classes (0: unconditional heads)
    cmap_dim: int = 64  # projection width of the conditional heads
    embed_dim: int = EMBED_DIM  # per-head class-embedding width
    diffaug: bool = True  # DiffAugment before every F
    diffaug_policy: str = ",".join(augment.DEFAULT_POLICY)  # its ops (official: all three)
    diffaug_fill: float = 0.0  # translation/cutout fill (official 0; -1 = black, augment.py)
    interp224: Optional[bool] = None  # resize the CNN input to 224; None: when H < 224 (official)
    cout: int = 64  # CCM width
    expand: bool = True  # CCM/CSM channel expansion
    proj_seed: int = 0  # seed of the frozen random projections and random feature-net weights
    vit_variant: str = DEIT  # gan_zoo.feature_nets.vit VARIANTS key of the ViT backbone
    vit_overrides: tuple = ()  # (field, value) pairs for vit.make (tiny test sizes)
    vit_hooks: tuple[int, ...] = vit.GAN_TAPS  # ViT blocks tapped (0-indexed)
    bn_group: str | int = "device"  # head BatchNorm statistics (official: per GPU)
    num_devices: Optional[int] = None  # devices for bn_group "device"
    resize_to: int = VIT_INPUT  # input side of the ViT (and of the CNN when interp224); tests only
    nominal_res: int = NOMINAL_RES  # input side the head depths are computed for; tests only
    head_channel_max: int = 0  # DiscHead.channel_max of every head (not official); 0 = official

    def _vit(self):
        return vit.make(self.vit_variant, **{"num_classes": 0, **dict(self.vit_overrides)})

    def _frozen(self, name: str, module: nn.Module, *args):
        """Variables of `module` in the `frozen` collection (seeded), read through stop_gradient."""
        var = self.variable(FROZEN_COLLECTION, name,
                            lambda: module.init(frozen_seed(self.proj_seed, name), *args))
        return jax.tree_util.tree_map(jax.lax.stop_gradient, var.value)

    def _features(self, backbone: str, x):
        """Frozen F + random projections: normalised image -> the 4 CSM maps."""
        if backbone == EFFNET:
            net = efficientnet.EfficientNetLite0()
            taps, _ = net.apply(self._frozen(f"{backbone}_net", net, x), x)
            proj_in = taps
        elif backbone == DEIT:
            net = self._vit()
            _, aux = net.apply(self._frozen(f"{backbone}_net", net, x), x)
            tokens = [aux["blocks"][i] for i in self.vit_hooks]
            grid = (x.shape[1] // net.patch, x.shape[2] // net.patch)
            re = ViTReassemble(net.num_prefix, grid)
            proj_in = re.apply(self._frozen(f"{backbone}_reassemble", re, tokens), tokens)
        else:
            raise AssertionError(f"no feature net for backbone {backbone!r}")
        proj = RandomProjection(self.cout, self.expand)
        return proj.apply(self._frozen(f"{backbone}_proj", proj, proj_in), proj_in)

    def _prepare(self, backbone: str, x, key):
        """DiffAugment, [0, 1], F's normalisation, resize to 224 (CNN if interp224; ViT always)."""
        if self.diffaug and key is not None:
            x = augment.diff_augment(key, x, self.diffaug_policy, fill=self.diffaug_fill)
        elif self.diffaug and not self.is_initializing():
            raise ValueError("ProjectedDiscriminator: diffaug=True needs a `key`")
        x = _normalize((x + 1) / 2, backbone)
        interp = self.interp224 if self.interp224 is not None else x.shape[1] < VIT_INPUT
        if interp or backbone != EFFNET:
            x = resize_bilinear(x, self.resize_to)
        return x

    @nn.compact
    def __call__(self, x, c=None, *, train: bool, key=None, c_alt=None):
        checks.check_shape("ProjectedDiscriminator: x", x, (None, None, None, 3))
        unknown = [b for b in self.backbones if b not in NORM_STATS]
        if unknown:
            raise ValueError(f"ProjectedDiscriminator: unknown backbones {unknown} in `backbones`; "
                             f"known: {sorted(NORM_STATS)}")
        logits, aux = [], {"logits": {}, "features": {}}
        if c_alt is not None:
            aux["logits_alt"] = {}
        for b, backbone in enumerate(self.backbones):
            k = None if key is None else jax.random.fold_in(key, b)
            feats = self._features(backbone, self._prepare(backbone, x, k))
            aux["features"][backbone] = feats
            for i, f in enumerate(feats):
                size = self.nominal_res // 2 ** (i + 2) * 2  # tap stride 4..32, x2 by the CSM
                head = DiscHead(size, self.c_dim, self.cmap_dim, self.embed_dim, self.bn_group,
                                self.num_devices, self.head_channel_max,
                                name=f"{backbone}_head{i}")
                out = head(f, c, train=train, c_alt=c_alt)
                if c_alt is not None:
                    out, aux["logits_alt"][f"{backbone}/{i}"] = out
                aux["logits"][f"{backbone}/{i}"] = out
                logits.append(out.reshape(out.shape[0], -1))
        return jnp.concatenate(logits, axis=1), aux


def trainable_param_count(d: ProjectedDiscriminator, resolution: int, batch: int = 2) -> int:
    """Number of `params` entries (the optimiser's set), from jax.eval_shape."""
    x = jax.ShapeDtypeStruct((batch, resolution, resolution, 3), jnp.float32)
    c = jax.ShapeDtypeStruct((batch, d.c_dim), jnp.float32) if d.c_dim else None
    shapes = jax.eval_shape(lambda k, x, c: d.init(k, x, c, train=False), jax.random.PRNGKey(0),
                            x, c)
    return sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes["params"]))
