"""StyleGAN-T discriminator (Sauer et al. 2023, §3.2, Fig. 3c; spec stylegan_xl_and_t.md §2.4).
Facts from autonomousvision/stylegan-t `networks/discriminator.py`, `networks/vit_utils.py`.

1. Input prep (images [N, H, W, 3] in [-1, 1]): DiffAugment color,translation,cutout
   (gan_zoo.augment; diffaug_policy / diffaug_fill choose other ops / fill, not official) ->
   [0, 1] -> when H > 224, with probability p_crop (0.5) one random 224 crop for the whole
   batch (torchvision RandomCrop) -> area resize to 224 (torch mode='area', also when
   upsampling) -> ImageNet mean/std.
2. Frozen DINO ViT-S/16 (timm vit_small_patch16_224_dino) -> 5 token maps, in the official head
   order: outputs of blocks 2, 5, 8, 11 (before the final norm), then the patch embedding after
   the cls token and position embedding (`pos_drop` hook). Readout "add": cls token added to
   every patch token, cls dropped -> [N, L, 384] with L = 196 at 224^2.
3. One head per map (identical): SN 1-D conv k=1 -> BatchNormLocal -> lrelu 0.2, then a residual
   (f(x) + x) / sqrt(2) around SN 1-D conv k=9 (circular padding 4) -> BatchNormLocal -> lrelu,
   then an SN 1-D conv k=1 to cmap_dim = 64. Text projection (Miyato & Koyama 2018):
   logit = sum_ch(out * FC(c_text)) / sqrt(cmap_dim), FC linear 768 -> 64 (equalized lr).
4. Logits of the 5 heads concatenated: [N, 5 L], one per token (the per-token hinge loss).

BatchNormLocal: statistics per virtual group of consecutive samples, over (samples, tokens), no
running statistics (train and eval alike), affine gamma/beta. The official reshapes each GPU's
batch n into G = ceil(n / 8) groups, so a group holds n / G samples (8 when 8 | n; n when
n <= 8); here n = N / num_devices, so groups never straddle devices (no cross-device sync).

Variables: `params` = the heads (convs, BN affine, FCs); `spectral_norm` = the SN vectors;
`frozen` = the DINO variables under `dino`, initialised from `proj_seed` (random unless the
converted timm weights from gan_zoo.convert.vit replace them) and only read through
stop_gradient, so the optimiser never sees them.

Deviations: SN is gan_zoo.nn.SNConv (BigGAN SN: a power iteration on every forward, eval
included; torch's SpectralNorm reuses u, v in eval). The 1-D convs are SNConv with a (1, k)
kernel on [N, 1, L, C]. The crop is drawn from `key`; without a key (eval) there is no crop.
"""

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import augment, checks
from gan_zoo.feature_nets import vit
from gan_zoo.models.projected_d import (
    FROZEN_COLLECTION,
    frozen_seed,
    torch_bias_init,
    torch_kernel_init,
)
from gan_zoo.nn.batch_norm import BatchNorm
from gan_zoo.nn.equalized import EqualizedDense
from gan_zoo.nn.spectral_norm import SNConv
from gan_zoo.ops.area_resize import random_crop, resize_area

DINO = "vit_small_patch16_224.dino"  # timm vit_small_patch16_224_dino
DINO_INPUT = 224  # DINO img_resolution: crop and area-resize target
DINO_HOOKS = vit.GAN_TAPS  # blocks 2, 5, 8, 11 (0-indexed)
NUM_HEADS = len(DINO_HOOKS) + 1  # + the patch-embedding tap
VIRTUAL_BS = 8  # BatchNormLocal virtual_bs
P_CROP = 0.5  # ProjectedDiscriminator p_crop (spec §6.16: not in the paper)
TEXT_DIM = 768  # CLIP ViT-L/14 text embedding
# Trainable parameters of the 5 paper-size heads (C = 384, cmap 64, c_dim 768), from the official
# module shapes: per head conv k=1 384*384+384, 2 BN affines 2*2*384, conv k=9 9*384*384+384,
# cls conv 384*64+64, cmapper 768*64+64 = 1,550,720.
PAPER_TRAINABLE_PARAMS = 5 * 1_550_720  # 7,753,600


def virtual_group_size(batch: int, virtual_bs: int = VIRTUAL_BS) -> int:
    """Samples per BatchNormLocal group: N / ceil(N / virtual_bs) (official view(G, -1, ...))."""
    groups = -(-batch // virtual_bs)
    if batch % groups:
        raise ValueError(f"BatchNormLocal: batch {batch} does not split into ceil({batch}/"
                         f"{virtual_bs}) = {groups} equal groups (the official view fails too)")
    return batch // groups


def bn_group_size(batch: int, num_devices: Optional[int], virtual_bs: int = VIRTUAL_BS) -> int:
    """BatchNormLocal group size when the batch is split evenly over num_devices devices (None:
    jax.device_count()): the official split of each device's batch, so no group spans devices."""
    n_dev = jax.device_count() if num_devices is None else num_devices
    if n_dev < 1 or batch % n_dev:
        raise ValueError(f"StyleGAN-T D: batch {batch} is not divisible by num_devices={n_dev}")
    return virtual_group_size(batch // n_dev, virtual_bs)


def circular_pad(x, pad: int):
    """[N, L, C] -> [N, L + 2 pad, C], torch padding_mode='circular' along the tokens."""
    return jnp.pad(x, ((0, 0), (pad, pad), (0, 0)), mode="wrap")


class SNConv1d(nn.Module):
    """SN 1-D conv over tokens, torch Conv1d(padding=k//2, padding_mode='circular') + SpectralNorm
    (torch default init). x: [N, L, I] -> [N, L, O]. Params `weight` [1, k, I, O], `bias` [O]."""
    features: int  # O
    kernel: int = 1  # k, taps along the tokens (odd)

    @nn.compact
    def __call__(self, x, *, train: bool):
        fan_in = x.shape[-1] * self.kernel
        conv = SNConv(self.features, (1, self.kernel), 1, "VALID", weight_init=torch_kernel_init(),
                      bias_init=torch_bias_init(fan_in), name="conv")
        x = circular_pad(x, self.kernel // 2)[:, None]  # [N, 1, L + k - 1, I]
        return conv(x, train=train)[:, 0]


class TokenBlock(nn.Module):
    """make_block: SNConv1d -> BatchNormLocal -> lrelu 0.2. [N, L, C] -> [N, L, C]."""
    kernel: int  # k
    virtual_bs: int = VIRTUAL_BS  # BatchNormLocal group size bound
    num_devices: Optional[int] = None  # devices the batch is split over; None: device_count()

    @nn.compact
    def __call__(self, x, *, train: bool):
        c = x.shape[-1]
        x = SNConv1d(c, self.kernel, name="conv")(x, train=train)
        k = bn_group_size(x.shape[0], self.num_devices, self.virtual_bs)
        x = BatchNorm(reduction_group=k, running_stats=False, name="bn")(x, train=True)
        return jax.nn.leaky_relu(x, 0.2)


class DiscHead(nn.Module):
    """One StyleGAN-T D head. tokens [N, L, C], c [N, c_dim] -> logits [N, L]. c_alt (other text
    embeddings [N, c_dim], conditional heads only): also the logits of the same tokens under
    c_alt -> (logits, logits_alt); only the projection is recomputed."""
    c_dim: int = TEXT_DIM  # conditioning width (0: unconditional, 1 output channel)
    cmap_dim: int = 64  # projection width
    virtual_bs: int = VIRTUAL_BS  # BatchNormLocal group size bound
    num_devices: Optional[int] = None  # devices the batch is split over; None: device_count()

    @nn.compact
    def __call__(self, x, c, *, train: bool, c_alt=None):
        checks.check_rank("StyleGAN-T DiscHead: tokens", x, 3, "[N, L, C]")
        if self.c_dim:
            self._check_c(x, c)
            if c_alt is not None:
                self._check_c(x, c_alt, "c_alt")
        elif c_alt is not None:
            raise ValueError("StyleGAN-T DiscHead: c_alt needs a conditional head (c_dim > 0)")
        kw = dict(virtual_bs=self.virtual_bs, num_devices=self.num_devices)
        h = TokenBlock(1, **kw, name="block0")(x, train=train)
        # Residual block, (f(x) + x) / sqrt(2) (networks/shared.py ResidualBlock).
        h = (TokenBlock(9, **kw, name="block1")(h, train=train) + h) / np.sqrt(2)
        out = SNConv1d(self.cmap_dim if self.c_dim else 1, 1, name="cls")(h, train=train)
        if not self.c_dim:
            return out[..., 0]
        # Projection: logit = <out, FC(c)> / sqrt(cmap_dim).
        cmapper = EqualizedDense(self.cmap_dim, name="cmapper")

        def project(text):
            cmap = cmapper(text)  # [N, cmap]
            return jnp.sum(out * cmap[:, None, :], axis=-1) / np.sqrt(self.cmap_dim)
        return project(c) if c_alt is None else (project(c), project(c_alt))

    def _check_c(self, x, c, name: str = "c") -> None:
        if c is None:
            raise ValueError(f"StyleGAN-T DiscHead: c_dim={self.c_dim} needs the text embedding "
                             f"{name} [N, {self.c_dim}] (c_dim=0 for an unconditional D)")
        checks.check_shape(f"StyleGAN-T DiscHead: {name}", c, (x.shape[0], self.c_dim))


def dino_tokens(aux, hooks) -> list:
    """The 5 taps in head order (blocks at `hooks`, then patch embedding + pos), readout add:
    [N, 1 + L, C] -> [N, L, C] with the cls token added to every patch token."""
    taps = [aux["blocks"][i] for i in hooks] + [aux["tokens_after_pos_embed"]]
    return [t[:, 1:] + t[:, :1] for t in taps]


class StyleGANTDiscriminator(nn.Module):
    """StyleGAN-T D (spec §2.4). x: [N, H, W, 3] in [-1, 1], c: CLIP text embedding [N, c_dim]
    -> (logits [N, 5 L], aux). aux["logits"]: per-head [N, L]; aux["tokens"]: the 5 token maps.
    key: DiffAugment (fold 0) and crop (fold 1) randomness; required when diffaug and training.
    c_alt: optional other text embeddings [N, c_dim]: aux["logits_alt"] [N, 5 L] holds the logits
    of the same tokens under c_alt (the recipe's matching-aware term, not in the paper).
    """
    c_dim: int = TEXT_DIM  # text-embedding width (0: unconditional)
    cmap_dim: int = 64  # projection width
    diffaug: bool = True  # DiffAugment before DINO
    diffaug_policy: tuple[str, ...] = augment.DEFAULT_POLICY  # its ops (official: all three)
    diffaug_fill: float = 0.0  # translation/cutout fill (official 0; -1 = black, augment.py)
    p_crop: float = P_CROP  # probability of a random 224 crop when H > 224
    virtual_bs: int = VIRTUAL_BS  # BatchNormLocal group bound
    num_devices: Optional[int] = None  # devices the batch is split over (BN groups stay within
    # one device, official per-GPU statistics); None: jax.device_count()
    proj_seed: int = 0  # seed of the frozen DINO's (random) init
    dino_variant: str = DINO  # gan_zoo.feature_nets.vit VARIANTS key
    dino_overrides: tuple = ()  # (field, value) pairs for vit.make (tiny test sizes)
    hooks: tuple[int, ...] = DINO_HOOKS  # DINO blocks tapped (0-indexed)
    input_size: int = DINO_INPUT  # crop / resize side (224; tests use the tiny ViT's size)

    def _dino(self):
        return vit.make(self.dino_variant, **{"num_classes": 0, **dict(self.dino_overrides)})

    def _prepare(self, x, key):
        """DiffAugment -> [0, 1] -> random crop (p_crop, when larger) -> area resize -> ImageNet
        normalisation."""
        if self.diffaug and key is not None:
            x = augment.diff_augment(jax.random.fold_in(key, 0), x, self.diffaug_policy,
                                     fill=self.diffaug_fill)
        elif self.diffaug and not self.is_initializing():
            raise ValueError("StyleGANTDiscriminator: diffaug=True needs a `key`")
        x = (x + 1) / 2
        s = self.input_size
        if x.shape[1] > s and key is not None and self.p_crop > 0:
            kc, kp = jax.random.split(jax.random.fold_in(key, 1))
            x = jax.lax.cond(jax.random.uniform(kp) < self.p_crop,
                             lambda: random_crop(kc, x, s), lambda: resize_area(x, s))
        x = resize_area(x, s)
        mean, std = (jnp.asarray(v, x.dtype) for v in (vit.IMAGENET_MEAN, vit.IMAGENET_STD))
        return (x - mean) / std

    @nn.compact
    def __call__(self, x, c=None, *, train: bool, key=None, c_alt=None):
        checks.check_shape("StyleGANTDiscriminator: x", x, (None, None, None, 3))
        x = self._prepare(x, key)
        net = self._dino()
        var = self.variable(FROZEN_COLLECTION, "dino",
                            lambda: net.init(frozen_seed(self.proj_seed, "dino"), x))
        frozen = jax.tree_util.tree_map(jax.lax.stop_gradient, var.value)
        _, dino_aux = net.apply(frozen, x)
        tokens = dino_tokens(dino_aux, self.hooks)
        aux = {"tokens": tokens, "logits": []}
        alt = []
        for i, t in enumerate(tokens):
            head = DiscHead(self.c_dim, self.cmap_dim, self.virtual_bs, self.num_devices,
                            name=f"head{i}")
            out = head(t, c, train=train, c_alt=c_alt)
            if c_alt is not None:
                out, out_alt = out
                alt.append(out_alt)
            aux["logits"].append(out)
        if c_alt is not None:
            aux["logits_alt"] = jnp.concatenate(alt, axis=1)
        return jnp.concatenate(aux["logits"], axis=1), aux


def trainable_param_count(d: StyleGANTDiscriminator, resolution: Optional[int] = None,
                          batch: int = 2) -> int:
    """Number of `params` entries (the optimiser's set), from jax.eval_shape."""
    res = resolution or d.input_size
    d = d.clone(num_devices=1)  # the BN grouping does not change the parameters
    x = jax.ShapeDtypeStruct((batch, res, res, 3), jnp.float32)
    c = jax.ShapeDtypeStruct((batch, d.c_dim), jnp.float32) if d.c_dim else None
    shapes = jax.eval_shape(lambda k, x, c: d.init(k, x, c, train=False), jax.random.PRNGKey(0),
                            x, c)
    return sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes["params"]))
