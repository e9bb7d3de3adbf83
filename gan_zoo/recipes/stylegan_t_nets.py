"""StyleGAN-T networks from a config: the text-conditioned generator (G + its CLIP text encoder),
the DINO discriminator, the frozen CLIP (text and image towers), their weight files, and prompt
encoding for sampling (spec stylegan_xl_and_t.md §2.2-§2.5, §4).

Weight files are local state dicts named by config fields: model.clip_weights (open_clip
ViT-L/14, OpenAI weights; gan_zoo.convert.clip) and model.dino_weights (timm
vit_small_patch16_224_dino; gan_zoo.convert.vit). config.model.feature_nets: "pretrained" (the
paper: both files must exist, else FileNotFoundError naming the field) or "random" (CPU presets
and tests: seeded random towers of the configured sizes; a given file is still loaded). The run
logs which towers are loaded and which are random.

Parameter layout: params["g"] = {"G": Generator params, "text": CLIP text-tower params} (the
text encoder is part of G, as in the official `Generator.mapping.clip`, so the G EMA covers it);
the frozen original CLIP (both towers) lives in state.collections["clip"] and feeds D and the CLIP
loss in every stage (§2.5 "D and L_CLIP keep receiving c_text from the original encoder").
"""

import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import augment, checks
from gan_zoo.feature_nets import clip, clip_tokenizer
from gan_zoo.models import stylegan_t
from gan_zoo.models import stylegan_t_discriminator as sd

log = logging.getLogger("gan_zoo.recipes.stylegan_t")

CLIP_ID = "open_clip ViT-L-14 pretrained='openai'"  # spec §4
DINO_ID = "timm vit_small_patch16_224_dino"
_G_KEYS = ("z_dim", "channel_base", "channel_max", "num_res_blocks")
# config.model field -> (CLIP text/vision field, where); 0 = the clip_variant's value.
_TEXT_KEYS = {"clip_text_width": "width", "clip_text_layers": "layers",
              "clip_text_heads": "heads", "clip_context": "context_length"}
_VISION_KEYS = {"clip_vision_width": "width", "clip_vision_depth": "depth",
                "clip_vision_heads": "heads", "clip_vision_patch": "patch",
                "clip_image_size": "image_size"}
_DINO_KEYS = {"d_dino_width": "width", "d_dino_depth": "depth", "d_dino_heads": "heads",
              "d_dino_patch": "patch", "d_input_size": "image_size"}


class TextConditionedG(nn.Module):
    """G(z, c) with its own CLIP text encoder (StyleGAN-T §2.3, official Generator with
    `mapping.clip`). encode(tokens [N, L]) -> c [N, E] (L2-normalised, spec §2.3);
    __call__(z, c) -> (img [N, R, R, 3], aux) as stylegan_t.Generator."""

    G: stylegan_t.Generator  # params["G"]
    text: clip.TextTransformer  # params["text"]

    def encode(self, tokens):
        return clip.l2_normalize(self.text(tokens)[0].astype(jnp.float32))

    def __call__(self, z, c, psi=1.0, noise_mode="random", update_emas=False,
                 fused_modconv=None):
        return self.G(z, c, psi=psi, noise_mode=noise_mode, update_emas=update_emas,
                      fused_modconv=fused_modconv)

    def init_all(self, z, tokens):
        """Creates every variable (both submodules)."""
        return self(z, self.encode(tokens))


def _sizes(m, keys: dict) -> dict:
    return {v: int(m[k]) for k, v in keys.items() if m.get(k, 0)}


def make_clip(config) -> clip.CLIP:
    """The frozen CLIP of config.model.clip_variant with non-zero size overrides (tiny random
    towers for CPU presets)."""
    m = config.model
    if m.clip_variant not in clip.VARIANTS:
        raise ValueError(f"config.model.clip_variant={m.clip_variant!r}: expected one of "
                         f"{sorted(clip.VARIANTS)}")
    cfg = clip.VARIANTS[m.clip_variant]
    embed = int(m.get("clip_embed_dim", 0) or cfg["embed_dim"])
    text = {**cfg["text"], **_sizes(m, _TEXT_KEYS)}
    text["vocab_size"] = clip_tokenizer.VOCAB_SIZE  # the host tokenizer's ids (data, prompts)
    vision = {**cfg["vision"], **_sizes(m, _VISION_KEYS)}
    return clip.CLIP(visual=clip.image_tower(embed, **vision),
                     text=clip.TextTransformer(embed_dim=embed, **text))


def make_generator(config, clip_model: clip.CLIP, resolution: int) -> TextConditionedG:
    """G of a stylegan_t.VARIANTS row at `resolution` (the stage's), c_dim = the CLIP embedding
    width, non-zero size overrides; with a copy of the CLIP text tower."""
    m = config.model
    over = {k: int(m[k]) for k in _G_KEYS if m.get(k, 0)}
    G = stylegan_t.generator(m.variant, img_resolution=resolution,
                             c_dim=clip_model.text.embed_dim, **over)
    return TextConditionedG(G=G, text=clip_model.text)


def _hooks(text) -> tuple:
    return tuple(int(v) for v in str(text).split(",") if v.strip()) if isinstance(text, str) \
        else tuple(int(v) for v in text)


def make_discriminator(config, clip_model: clip.CLIP, data_devices: int):
    """The StyleGAN-T D (spec §2.4) of config.model.d_*; BatchNormLocal groups per device of
    d_bn_devices (0: the 'data' devices, official per-GPU statistics; k: as if the batch were
    split over k devices, so results do not depend on the device count)."""
    m = config.model
    dino = _sizes(m, _DINO_KEYS)
    return sd.StyleGANTDiscriminator(
        c_dim=clip_model.text.embed_dim, cmap_dim=m.d_cmap_dim, diffaug=m.d_diffaug,
        # .get: configs saved before these fields
        diffaug_policy=augment.check_policy(m.get("d_diffaug_policy", augment.DEFAULT_POLICY),
                                            "config.model.d_diffaug_policy"),
        diffaug_fill=float(m.get("d_diffaug_fill", 0.0)),
        p_crop=m.d_p_crop, num_devices=int(m.d_bn_devices) or data_devices,
        proj_seed=m.d_proj_seed, dino_overrides=tuple(sorted(dino.items())),
        hooks=_hooks(m.d_hooks), input_size=int(m.d_input_size))


WEIGHT_FIELDS = {"clip_weights": (CLIP_ID, "text encoder, CLIP guidance image tower"),
                 "dino_weights": (DINO_ID, "D feature net")}


def check_weight_files(config) -> None:
    """feature_nets="pretrained": both weight files must exist; log what is loaded or random."""
    random_note = ("" if config.model.feature_nets == "pretrained"
                   else "; sizes of config.model.clip_* / d_dino_* and the variant")
    for field, (ident, role) in WEIGHT_FIELDS.items():
        checks.check_feature_weights(config.model, field, ident, role, log, "StyleGAN-T",
                                     random_note)


def load_clip_variables(config, clip_model: clip.CLIP) -> dict:
    from gan_zoo.convert import clip as conv_clip  # noqa: PLC0415

    return conv_clip.load_clip(config.model.clip_weights, model=clip_model)[1]


def load_dino_params(config, D) -> dict:
    from gan_zoo.convert import vit as conv_vit  # noqa: PLC0415

    _, variables = conv_vit.load_vit(config.model.dino_weights, D.dino_variant,
                                     **{"num_classes": 0, **dict(D.dino_overrides)})
    return variables


def clip_augment_policy(t) -> tuple:
    """config.train.clip_augment ("" = off, the paper; else a DiffAugment policy such as
    "translation,cutout" on G's images before the CLIP-guidance tower and on the CLIP fit's
    images) -> the policy tuple; a clear error for an unknown entry."""
    return augment.check_policy(t.get("clip_augment", ""), "config.train.clip_augment")


def check_same_shapes(want, got, what: str) -> None:
    """ValueError naming the first leaf whose shape differs."""
    a = dict(jax.tree_util.tree_flatten_with_path(want)[0])
    b = dict(jax.tree_util.tree_flatten_with_path(got)[0])
    for k in sorted(set(a) | set(b), key=str):
        sa, sb = getattr(a.get(k), "shape", None), getattr(b.get(k), "shape", None)
        if sa != sb:
            raise ValueError(f"{what}{jax.tree_util.keystr(k)}: shape {sb}, expected {sa}")


# ----- Prompts -----

def tokenize(prompts, context_length: int) -> np.ndarray:
    """Raw strings -> int32 [P, context_length] CLIP BPE ids (on the host)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise ValueError(f"prompts: expected non-empty strings, got {list(prompts)!r}")
    return clip_tokenizer.tokenize(list(prompts), context_length).astype(np.int32)


def encode_tokens(TG: TextConditionedG, g_params: dict, tokens):
    """Tokens [P, L] -> G's text input c [P, E] with G's (EMA) text encoder."""
    return TG.apply({"params": g_params}, jnp.asarray(tokens, jnp.int32), method="encode")


def merge_by_path(src: dict, fresh: dict) -> dict:
    """fresh with every leaf that src has at the same path and shape (progressive growing: the
    blocks both generators share keep src's values; the new block stays fresh)."""
    flat_src = dict(jax.tree_util.tree_flatten_with_path(src)[0])

    def pick(path, leaf):
        old = flat_src.get(path)
        return old if old is not None and old.shape == leaf.shape else leaf
    return jax.tree_util.tree_map_with_path(pick, fresh)
