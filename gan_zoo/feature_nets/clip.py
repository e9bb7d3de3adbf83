"""CLIP (Radford et al. 2021) as open_clip builds it: text encoder, image tower, logit scale.

StyleGAN-T conditions on, and is guided by, CLIP ViT-L/14 with the OpenAI weights (spec
stylegan_xl_and_t.md §2.3, §2.5, §4; golden/README.md "Feature networks", CLIP):
- text: token embedding + position embedding -> pre-norm blocks with an additive causal mask ->
  ln_final -> the row at argmax(token ids) (the end token has the largest id) -> @ text_projection;
  StyleGAN-T L2-normalises it (context 77).
- image: `feature_nets.vit.VisionTransformer` configured as open_clip's tower (class embedding,
  ln_pre, QuickGELU, ln_post, proj).
- logits_per_image = exp(logit_scale) * normalize(image) @ normalize(text)^T.

API (stable; the CLIP-score metric and the tokenizer build on it):
    model = clip.make("ViT-L-14")                    # or CLIP(visual=..., text=...)
    model, variables = gan_zoo.convert.clip.load_clip(path, "ViT-L-14")
    img = model.apply(variables, images, normalize=True, method="encode_image")  # [N, E]
    txt = model.apply(variables, tokens, normalize=True, method="encode_text")   # [P, E]
`images` are NHWC float, already `preprocess_images`-ed (bicubic to 224 + OpenAI mean/std);
`tokens` are int [P, L <= 77] ids from the CLIP BPE tokenizer.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.feature_nets import vit

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip OPENAI_DATASET_MEAN
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408
SOT_TOKEN, EOT_TOKEN = 49406, 49407

# Paper-size configurations (CLIP Tables 19-20; open_clip configs). Text-side parameter count of
# ViT-L-14 (embeddings, blocks, ln_final, projection, logit scale) pinned in clip_test.py.
VARIANTS = {
    # open_clip "ViT-L-14-quickgelu" = OpenAI ViT-L/14 weights (QuickGELU), StyleGAN-T.
    "ViT-L-14": dict(embed_dim=768,
                     vision=dict(width=1024, depth=24, heads=16, patch=14, image_size=224),
                     text=dict(width=768, layers=12, heads=12)),
    # Tiny configuration for fast tests only.
    "_test": dict(embed_dim=24, vision=dict(width=32, depth=1, heads=2, patch=8, image_size=32),
                  text=dict(width=16, layers=1, heads=2, context_length=8, vocab_size=64)),
}


def l2_normalize(x, eps: float = 1e-12):
    """torch F.normalize(x, dim=-1): x / max(||x||, eps)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


class TextTransformer(nn.Module):
    """CLIP text encoder. tokens: int [P, L] (L <= context_length) -> (embedding [P, embed_dim],
    aux). aux: "blocks" (every block's tokens [P, L, W]), "ln_final_tokens" [P, L, W],
    "eot_index" [P] (the pooled position). Unnormalised, like open_clip `encode_text`."""
    width: int  # W, token width
    layers: int  # number of blocks
    heads: int  # attention heads
    embed_dim: int  # E, text_projection output width
    context_length: int = CONTEXT_LENGTH  # position-embedding rows
    vocab_size: int = VOCAB_SIZE  # token-embedding rows
    mlp_ratio: float = 4.0  # MLP hidden width / W
    eps: float = 1e-5  # LayerNorm epsilon (torch default)
    act: str = "quick_gelu"  # OpenAI weights were trained with QuickGELU

    @nn.compact
    def __call__(self, tokens):
        if tokens.ndim != 2 or tokens.shape[1] > self.context_length:
            raise ValueError(f"TextTransformer: expected int tokens [P, L <= "
                             f"{self.context_length}], got shape {tuple(tokens.shape)}")
        length = tokens.shape[1]
        # Embed.
        x = nn.Embed(self.vocab_size, self.width, name="token_embedding")(tokens)  # [P, L, W]
        pos = self.param("positional_embedding", nn.initializers.normal(0.01),
                         (self.context_length, self.width))
        x = x + pos[:length]  # the causal mask makes rows >= L irrelevant to rows < L
        # Causal transformer (additive -inf above the diagonal).
        causal = jnp.tril(jnp.ones((length, length), bool))
        blocks = []
        for i in range(self.layers):
            x = vit.Block(self.heads, self.mlp_ratio, self.eps, self.act, name=f"blocks_{i}")(
                x, causal)
            blocks.append(x)
        x = nn.LayerNorm(self.eps, name="ln_final")(x)
        # Pool the end token (largest id) and project.
        eot = jnp.argmax(tokens, axis=-1)
        pooled = jnp.take_along_axis(x, eot[:, None, None], axis=1)[:, 0]  # [P, W]
        proj = self.param("text_projection", nn.initializers.normal(self.width ** -0.5),
                          (self.width, self.embed_dim))
        aux = {"blocks": tuple(blocks), "ln_final_tokens": x, "eot_index": eot}
        return pooled @ proj, aux


class CLIP(nn.Module):
    """CLIP: image tower `visual` (vit.VisionTransformer with proj_dim = E), text tower `text`,
    logit scale. __call__(images [N, H, W, 3], tokens [P, L]) -> (logits_per_image [N, P], aux
    with "image_features", "text_features" (both L2-normalised) and "logit_scale_exp")."""
    visual: vit.VisionTransformer  # open_clip `visual`
    text: TextTransformer  # open_clip token_embedding, positional_embedding, transformer, ...

    def setup(self):
        self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(1 / 0.07)),
                                      ())

    def encode_image(self, images, normalize: bool = False):
        """Normalised NHWC images -> [N, E] (projected class token after ln_post)."""
        out, _ = self.visual(images)
        return l2_normalize(out) if normalize else out

    def encode_text(self, tokens, normalize: bool = False):
        """int token ids [P, L] -> [P, E] (projected end-token row after ln_final)."""
        out, _ = self.text(tokens)
        return l2_normalize(out) if normalize else out

    def __call__(self, images, tokens):
        image = self.encode_image(images, normalize=True)
        text = self.encode_text(tokens, normalize=True)
        scale = jnp.exp(self.logit_scale)
        aux = {"image_features": image, "text_features": text, "logit_scale_exp": scale}
        return scale * image @ text.T, aux


def image_tower(embed_dim: int, **vision) -> vit.VisionTransformer:
    """open_clip's VisionTransformer as a vit.VisionTransformer (QuickGELU, eps 1e-5, ...)."""
    fields = dict(patch_bias=False, ln_pre=True, eps=1e-5, act="quick_gelu", num_prefix=1,
                  num_classes=0, proj_dim=embed_dim)
    return vit.VisionTransformer(**{**fields, **vision})


def make(variant: str = "ViT-L-14") -> CLIP:
    """A CLIP model from VARIANTS[variant]."""
    if variant not in VARIANTS:
        raise ValueError(f"clip: unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    cfg = VARIANTS[variant]
    return CLIP(visual=image_tower(cfg["embed_dim"], **cfg["vision"]),
                text=TextTransformer(embed_dim=cfg["embed_dim"], **cfg["text"]))


def init_shapes(model: CLIP):
    """Variable shapes of `model` via jax.eval_shape (nothing allocated)."""
    side = model.visual.image_size
    images = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
    tokens = jax.ShapeDtypeStruct((1, model.text.context_length), jnp.int32)
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), images, tokens)


# ----------------------------------------------------------------------------------------------
# Preprocessing (StyleGAN-T networks/clip.py: bicubic resize to 224, then OpenAI mean/std).

def _cubic(t, a: float = -0.75):
    """Keys cubic-convolution kernel with torch's A = -0.75, |t| < 2."""
    t = np.abs(t).astype(np.float32)
    a = np.float32(a)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] weights of torch bicubic, align_corners=False, no antialias: src = (dst + 0.5)
    * in/out - 0.5 (not clamped), taps floor(src) - 1 .. + 2 with indices clamped to the edge."""
    f32 = np.float32
    scale = f32(in_size / out_size)  # torch computes coordinates in float32
    src = scale * (np.arange(out_size, dtype=f32) + f32(0.5)) - f32(0.5)
    base = np.floor(src).astype(np.int64)
    t = (src - base.astype(f32)).astype(f32)
    m = np.zeros((out_size, in_size), np.float32)
    for k in range(-1, 3):
        idx = np.clip(base + k, 0, in_size - 1)
        np.add.at(m, (np.arange(out_size), idx), _cubic(t - f32(k)).astype(f32))
    return m


def preprocess_images(images01, size: int = 224):
    """Images in [0, 1], NHWC float -> bicubic resize to size x size (torch, align_corners=False,
    no clamp) -> (x - OPENAI_MEAN) / OPENAI_STD."""
    vit._check_shape("clip.preprocess_images (NHWC)", images01, 4, 3)
    mh = jnp.asarray(bicubic_matrix(images01.shape[1], size))
    mw = jnp.asarray(bicubic_matrix(images01.shape[2], size))
    x = jnp.einsum("oh,nhwc->nowc", mh, images01.astype(jnp.float32))
    x = jnp.einsum("pw,nowc->nopc", mw, x)
    return (x - jnp.asarray(OPENAI_MEAN)) / jnp.asarray(OPENAI_STD)
