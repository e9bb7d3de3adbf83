"""Vision Transformer (Dosovitskiy et al. 2021) as timm and open_clip build it, in one module.

One `VisionTransformer` covers, by configuration (spec stylegan_xl_and_t.md §1.4, §1.5, §2.4, §2.5,
§4; golden/README.md "Feature networks"):
- timm DeiT distilled (Touvron et al. 2021): cls + distillation token, two heads averaged in eval;
  StyleGAN-XL's projected-D feature net (DeiT-base) and its classifier guidance (DeiT-small).
- timm DINO ViT-S/16 (Caron et al. 2021): one cls token, no head; StyleGAN-T's D feature net.
- the CLIP image tower (Radford et al. 2021, open_clip): patch conv without bias, class embedding,
  ln_pre, QuickGELU, ln_post, projection; StyleGAN-T's CLIP guidance.

Steps: 1. patch conv (p x p, stride p) -> tokens in row-major (h, w) order; 2. prefix tokens
concatenated BEFORE the position embedding is added (resized bilinearly when the token grid is not
the trained one, as StyleGAN-XL / StyleGAN-T `forward_flex` do); 3. optional ln_pre (CLIP);
4. pre-norm blocks x + attn(ln1(x)), x + mlp(ln2(x)); 5. final LayerNorm on all tokens (timm
`norm`, CLIP `ln_post`); 6. pooling of the prefix tokens, heads or projection.

Layout: images NHWC, already normalised (ImageNet mean/std for timm, OpenAI mean/std for CLIP).
Parameter names mirror the timm state dict (`blocks_3/attn/qkv`), so the converters in
`gan_zoo.convert.vit` / `gan_zoo.convert.clip` are a rename and a transpose per tensor.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Paper-size configurations. Parameter counts (timm 1.0.31 / open_clip 3.3.0) are pinned in
# tests/feature_nets/vit_test.py.
VARIANTS = {
    # DeiT Table 1 "DeiT-B⚗" (timm deit_base_distilled_patch16_224): 87,338,192 params.
    "deit_base_distilled_patch16_224": dict(width=768, depth=12, heads=12, num_prefix=2,
                                            num_classes=1000),
    # DeiT Table 1 "DeiT-S⚗" (timm deit_small_distilled_patch16_224): 22,436,432 params.
    "deit_small_distilled_patch16_224": dict(width=384, depth=12, heads=6, num_prefix=2,
                                             num_classes=1000),
    # DINO Table 2 ViT-S/16 (timm vit_small_patch16_224.dino, num_classes=0): 21,665,664 params.
    "vit_small_patch16_224.dino": dict(width=384, depth=12, heads=6, num_prefix=1),
    # CLIP Table 19/20 ViT-L/14 image tower (open_clip ViT-L-14-quickgelu, 'openai'): 303,966,208.
    "clip_vit_l_14_openai": dict(width=1024, depth=24, heads=16, patch=14, patch_bias=False,
                                 ln_pre=True, proj_dim=768, eps=1e-5, act="quick_gelu"),
    # Tiny configuration for fast tests only.
    "_test": dict(width=32, depth=2, heads=2, num_prefix=2, num_classes=10, image_size=32,
                  patch=8),
}
VARIANTS["vit_small_patch16_224_dino"] = VARIANTS["vit_small_patch16_224.dino"]  # timm 0.x alias

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # timm default_cfg (DeiT, DINO)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Blocks whose outputs the GANs read (0-indexed, of 12): StyleGAN-XL DeiT-base (spec §1.4, then
# the 2 prefix tokens dropped); StyleGAN-T DINO (spec §2.4, plus tokens_after_pos_embed).
GAN_TAPS = (2, 5, 8, 11)


def _check_shape(name: str, x, rank: int, last: int) -> None:
    if x.ndim != rank or x.shape[-1] != last:
        raise ValueError(f"{name}: expected a rank-{rank} array with last axis {last}, got "
                         f"shape {tuple(x.shape)}")


# ----------------------------------------------------------------------------------------------
# Activations and position-embedding resize.

def quick_gelu(x):
    """QuickGELU of the OpenAI CLIP weights: x * sigmoid(1.702 x)."""
    return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # timm nn.GELU: exact erf form
    "quick_gelu": quick_gelu,
}


def _bilinear_taps(in_size: int, out_size: int):
    """Design-time taps of torch bilinear, align_corners=False, no antialias, along one axis:
    src = max((dst + 0.5) * in/out - 0.5, 0); lo = floor(src); hi = min(lo + 1, in - 1)."""
    scale = np.float32(in_size / out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    lo = np.minimum(np.floor(src).astype(np.int32), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (src - lo.astype(np.float32)).astype(np.float32)


def resize_bilinear(grid: jnp.ndarray, out_hw: tuple) -> jnp.ndarray:
    """[h, w, C] -> [H, W, C], as torch F.interpolate(mode='bilinear', align_corners=False)."""
    ylo, yhi, dy = _bilinear_taps(grid.shape[0], out_hw[0])
    xlo, xhi, dx = _bilinear_taps(grid.shape[1], out_hw[1])
    rows = grid[ylo] * (1 - dy)[:, None, None] + grid[yhi] * dy[:, None, None]  # along h
    return rows[:, xlo] * (1 - dx)[None, :, None] + rows[:, xhi] * dx[None, :, None]


def resize_pos_embed(pos: jnp.ndarray, num_prefix: int, grid_hw: tuple) -> jnp.ndarray:
    """Position embedding [T0, C] for a token grid grid_hw (StyleGAN-XL / StyleGAN-T
    `_resize_pos_embed`): prefix entries kept, the square grid part resized bilinearly (torch,
    align_corners=False); the identity when the grid is unchanged."""
    prefix, grid = pos[:num_prefix], pos[num_prefix:]
    side = int(round(np.sqrt(grid.shape[0])))
    if side * side != grid.shape[0]:
        raise ValueError(f"resize_pos_embed: {grid.shape[0]} grid entries are not a square grid")
    if (side, side) == tuple(grid_hw):
        return pos
    grid = resize_bilinear(grid.reshape(side, side, -1), grid_hw)  # [H, W, C]
    return jnp.concatenate([prefix, grid.reshape(-1, grid.shape[-1])], axis=0)


# ----------------------------------------------------------------------------------------------
# Transformer block (shared with the CLIP text tower in clip.py).

class Attention(nn.Module):
    """Multi-head self-attention, softmax(q k^T / sqrt(d_head)) v (Vaswani et al. 2017, §3.2.1).

    x: [N, T, C] -> [N, T, C]. qkv's 3C outputs are ordered [3, heads, d_head] (timm `qkv`, torch
    MultiheadAttention `in_proj_weight`). mask: optional bool [T, T], True = may attend.
    """
    heads: int  # number of heads

    @nn.compact
    def __call__(self, x, mask=None):
        n, t, c = x.shape
        if c % self.heads:
            raise ValueError(f"Attention: width {c} is not divisible by heads={self.heads}")
        d = c // self.heads
        qkv = nn.Dense(3 * c, name="qkv")(x).reshape(n, t, 3, self.heads, d)  # [N, T, 3, H, d]
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [N, T, H, d]
        logits = jnp.einsum("nqhd,nkhd->nhqk", q * d ** -0.5, k)  # [N, H, T, T]
        if mask is not None:  # additive -inf mask of open_clip's text tower
            logits = jnp.where(mask, logits, -jnp.inf)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
        out = jnp.einsum("nhqk,nkhd->nqhd", weights, v).reshape(n, t, c)  # heads concatenated
        return nn.Dense(c, name="proj")(out)


class Mlp(nn.Module):
    """fc1 -> activation -> fc2. x: [N, T, C] -> [N, T, C]."""
    hidden: int  # fc1 width (4 C in every variant here)
    act: str = "gelu"  # key of ACTIVATIONS

    @nn.compact
    def __call__(self, x):
        h = ACTIVATIONS[self.act](nn.Dense(self.hidden, name="fc1")(x))
        return nn.Dense(x.shape[-1], name="fc2")(h)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)). [N, T, C] -> same."""
    heads: int  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden width / C
    eps: float = 1e-6  # LayerNorm epsilon: 1e-6 timm, 1e-5 CLIP
    act: str = "gelu"  # "gelu" (timm, exact) | "quick_gelu" (OpenAI CLIP)

    @nn.compact
    def __call__(self, x, mask=None):
        x = x + Attention(self.heads, name="attn")(nn.LayerNorm(self.eps, name="norm1")(x), mask)
        hidden = int(x.shape[-1] * self.mlp_ratio)
        return x + Mlp(hidden, self.act, name="mlp")(nn.LayerNorm(self.eps, name="norm2")(x))


# ----------------------------------------------------------------------------------------------
# Vision Transformer.

class VisionTransformer(nn.Module):
    """ViT of timm (DeiT distilled, DINO) or open_clip (CLIP image tower), by configuration.

    x: normalised images [N, H, W, 3] -> (output, aux). output: logits [N, num_classes] (mean of
    the cls and distillation heads when num_prefix == 2) if num_classes > 0, else the projected
    pooled token [N, proj_dim] if proj_dim > 0, else pre-logits [N, width]. aux: "patch_embed"
    [N, h*w, C], "tokens_after_pos_embed" [N, T, C], "blocks" (tuple of every block's output,
    before the final norm, [N, T, C]), "forward_features" (final norm, all tokens), "pre_logits"
    [N, C], and "logits_cls_head" / "logits_dist_head" for distilled heads.
    """
    width: int  # C, token width
    depth: int  # number of blocks
    heads: int  # attention heads
    patch: int = 16  # p, patch side (conv kernel and stride)
    image_size: int = 224  # trained input side; the position embedding has (side/p)^2 + prefix
    num_prefix: int = 1  # 1: cls token; 2: cls + distillation token (DeiT distilled)
    num_classes: int = 0  # classifier head(s) size; 0 = no head
    proj_dim: int = 0  # CLIP `proj` output width; 0 = no projection
    patch_bias: bool = True  # patch conv bias (timm yes, CLIP no)
    ln_pre: bool = False  # CLIP LayerNorm after the position embedding
    mlp_ratio: float = 4.0  # MLP hidden width / C
    eps: float = 1e-6  # LayerNorm epsilon (1e-6 timm, 1e-5 CLIP)
    act: str = "gelu"  # "gelu" exact (timm) | "quick_gelu" (OpenAI CLIP)

    def _check_config(self):
        if self.num_prefix not in (1, 2):
            raise ValueError(f"VisionTransformer: num_prefix must be 1 or 2, got {self.num_prefix}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"VisionTransformer: act must be one of {sorted(ACTIVATIONS)}, "
                             f"got {self.act!r}")

    @nn.compact
    def __call__(self, x):
        self._check_config()
        _check_shape("VisionTransformer input (NHWC)", x, 4, 3)
        aux = {}
        # Patch embedding: p x p conv, stride p ('valid': a remainder is dropped, as torch does).
        x = nn.Conv(self.width, (self.patch, self.patch), self.patch, padding="VALID",
                    use_bias=self.patch_bias, name="patch_embed")(x)
        n, gh, gw, c = x.shape
        x = aux["patch_embed"] = x.reshape(n, gh * gw, c)  # row-major (h, w) tokens
        x = self._prefix_and_pos_embed(x, (gh, gw))
        aux["tokens_after_pos_embed"] = x
        if self.ln_pre:
            x = nn.LayerNorm(self.eps, name="ln_pre")(x)
        blocks = []
        for i in range(self.depth):
            x = Block(self.heads, self.mlp_ratio, self.eps, self.act, name=f"blocks_{i}")(x)
            blocks.append(x)
        aux["blocks"] = tuple(blocks)
        x = aux["forward_features"] = nn.LayerNorm(self.eps, name="norm")(x)
        return self._head(x, aux), aux

    def _prefix_and_pos_embed(self, x, grid_hw):
        """cat(cls[, dist], patches) + pos_embed (resized to grid_hw). [N, hw, C] -> [N, T, C]."""
        n, _, c = x.shape
        init = nn.initializers.normal(0.02)
        tokens = [self.param("cls_token", init, (1, 1, c))]
        if self.num_prefix == 2:
            tokens.append(self.param("dist_token", init, (1, 1, c)))
        side = self.image_size // self.patch
        pos = self.param("pos_embed", init, (1, side * side + self.num_prefix, c))
        pos = resize_pos_embed(pos[0], self.num_prefix, grid_hw)
        prefix = [jnp.broadcast_to(t, (n, 1, c)) for t in tokens]
        return jnp.concatenate(prefix + [x], axis=1) + pos[None]

    def _head(self, x, aux):
        """Pooling of the normed prefix tokens, then heads or the CLIP projection."""
        if self.num_prefix == 2:  # DeiT distilled (eval): the two tokens' heads are averaged
            aux["pre_logits"] = (x[:, 0] + x[:, 1]) / 2
        else:
            aux["pre_logits"] = x[:, 0]
        if self.num_classes:
            cls = nn.Dense(self.num_classes, name="head")(x[:, 0])
            aux["logits_cls_head"] = cls
            if self.num_prefix == 1:
                return cls
            dist = aux["logits_dist_head"] = nn.Dense(self.num_classes, name="head_dist")(x[:, 1])
            return (cls + dist) / 2
        if self.proj_dim:
            proj = self.param("proj", nn.initializers.normal(self.width ** -0.5),
                              (self.width, self.proj_dim))
            return aux["pre_logits"] @ proj  # CLIP: class token after ln_post @ proj
        return aux["pre_logits"]


def make(variant: str, **overrides) -> VisionTransformer:
    """A VisionTransformer from VARIANTS[variant] with field overrides."""
    if variant not in VARIANTS:
        raise ValueError(f"vit: unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    return VisionTransformer(**{**VARIANTS[variant], **overrides})


def param_count(module: nn.Module, image_size: int | None = None) -> int:
    """Number of parameters, from jax.eval_shape (nothing is allocated)."""
    side = image_size or getattr(module, "image_size", 224)
    x = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)
    return sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes))
