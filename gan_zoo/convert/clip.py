"""open_clip CLIP weights -> `gan_zoo.feature_nets.clip.CLIP` variables, without torch.

Files: an open_clip state dict saved as `.safetensors` (e.g. the hub's
`open_clip_model.safetensors`, read with safetensors' numpy API) or `.npz`; golden-format files
(`param/...` keys) too. Nothing is unpickled.

Name map (open_clip -> Flax): `visual.conv1.weight` -> visual/patch_embed/kernel (OIHW -> HWIO);
`visual.class_embedding` [W] -> visual/cls_token [1, 1, W]; `visual.positional_embedding` [T, W]
-> visual/pos_embed [1, T, W]; `visual.ln_post` -> visual/norm; `visual.proj`, `text_projection`
as they are ([in, out] already); `[visual.]transformer.resblocks.i.{ln_1, ln_2, attn.in_proj_*,
attn.out_proj, mlp.c_fc, mlp.c_proj}` -> blocks_i/{norm1, norm2, attn/qkv, attn/proj, mlp/fc1,
mlp/fc2} (Linear weights transposed); `token_embedding.weight` -> text/token_embedding/embedding;
`positional_embedding`, `ln_final`, `logit_scale` keep their names.
"""

import jax.numpy as jnp
import numpy as np

from gan_zoo.convert import vit as vit_convert
from gan_zoo.feature_nets import clip

WHAT = "open_clip CLIP weights"


def _ln_or_dense(mod: str, leaf: str):
    tleaf = {"kernel": "weight", "scale": "weight", "bias": "bias"}[leaf]
    return f"{mod}.{tleaf}", ("dense" if leaf == "kernel" else "same")


def _resblock_name(path: tuple):
    """blocks_i/... (either tower) -> (`transformer.resblocks.i.<leaf>`, kind, None)."""
    suffix, kind = vit_convert.block_name(path[1:], clip=True)
    return f"transformer.resblocks.{path[0].split('_')[1]}.{suffix}", kind, None


def _visual_name(path: tuple):
    head = path[0]
    if head.startswith("blocks_"):
        return _resblock_name(path)
    if head == "patch_embed":
        return "conv1.weight", "conv", None
    if head == "cls_token":
        return "class_embedding", "reshape", None  # torch shape filled in by the caller
    if head == "pos_embed":
        return "positional_embedding", "reshape", None
    if head in ("ln_pre", "norm"):
        name, kind = _ln_or_dense("ln_post" if head == "norm" else "ln_pre", path[1])
        return name, kind, None
    return head, "same", None  # proj


def _text_name(path: tuple):
    head = path[0]
    if head.startswith("blocks_"):
        return _resblock_name(path)
    if head == "token_embedding":
        return "token_embedding.weight", "same", None
    if head == "ln_final":
        name, kind = _ln_or_dense("ln_final", path[1])
        return name, kind, None
    return head, "same", None  # positional_embedding, text_projection


def open_clip_name(path: tuple):
    """Flax path under 'params' -> (open_clip state-dict name, kind, torch shape or None)."""
    if path[0] == "visual":
        name, kind, tshape = _visual_name(path[1:])
        return "visual." + name, kind, tshape
    if path[0] == "text":
        return _text_name(path[1:])
    return path[0], "same", None  # logit_scale


def convert_state_dict(state_dict: dict, model: clip.CLIP, source: str = "state dict") -> dict:
    """open_clip-named arrays -> {'params': ...} of `model`; ValueError on a bad name or shape."""
    template = clip.init_shapes(model)
    width = model.visual.width
    side = model.visual.image_size // model.visual.patch

    def name_fn(path):
        name, kind, tshape = open_clip_name(path)
        if name == "visual.class_embedding":
            tshape = (width,)
        elif name == "visual.positional_embedding":
            tshape = (side * side + 1, width)
        return name, kind, tshape

    return vit_convert.convert(template, name_fn, state_dict, source, WHAT)


def load_clip(path, variant: str = "ViT-L-14", model: clip.CLIP | None = None) -> tuple:
    """(model, variables) of a CLIP variant (clip.VARIANTS), or of `model` if given, from a local
    weights file."""
    model = model or clip.make(variant)
    sd = vit_convert.read_state_dict(path, WHAT)
    sd.pop("attn_mask", None)  # a non-persistent buffer; some exports include it
    return model, convert_state_dict(sd, model, source=str(path))


# ----------------------------------------------------------------------------------------------
# Golden harness.

# open_clip config options this port implements only at their defaults.
_DEFAULTS = {"vision_cfg": dict(ls_init_value=None, attentional_pool=False, no_ln_pre=False,
                                pos_embed_type="learnable", final_ln_after_pool=False,
                                pool_type="tok", act_kwargs=None, norm_kwargs=None),
             "text_cfg": dict(ls_init_value=None, embed_cls=False, no_causal_mask=False,
                              final_ln_after_pool=False, pool_type="argmax", proj_bias=False,
                              proj_type="linear", norm_kwargs=None, act_kwargs=None)}


def model_from_config(cfg: dict) -> clip.CLIP:
    """The CLIP of an open_clip model config dict (golden JSON `model_config`; omitted keys
    take open_clip's CLIPVisionCfg / CLIPTextCfg defaults)."""
    for part, defaults in _DEFAULTS.items():
        for key, default in defaults.items():
            if cfg.get(part, {}).get(key, default) != default:
                raise ValueError(f"open_clip config: {part}.{key}={cfg[part][key]!r} is not "
                                 f"supported (only {default!r})")
    v, t = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    act = "quick_gelu" if cfg.get("quick_gelu", False) else "gelu"  # open_clip nn.GELU is exact
    width = v.get("width", 768)
    visual = clip.image_tower(cfg["embed_dim"], width=width, depth=v.get("layers", 12),
                              heads=width // v.get("head_width", 64),
                              patch=vit_convert.square(v.get("patch_size", 16), "patch_size"),
                              image_size=vit_convert.square(v.get("image_size", 224),
                                                            "image_size"),
                              mlp_ratio=v.get("mlp_ratio", 4.0), act=act)
    text = clip.TextTransformer(width=t.get("width", 512), layers=t.get("layers", 12),
                                heads=t.get("heads", 8), embed_dim=cfg["embed_dim"], act=act,
                                context_length=t.get("context_length", clip.CONTEXT_LENGTH),
                                vocab_size=t.get("vocab_size", clip.VOCAB_SIZE),
                                mlp_ratio=t.get("mlp_ratio", 4.0))
    return clip.CLIP(visual=visual, text=text)


def _forward(model, variables, images, tokens):
    """Everything the golden case stores, in one call."""
    img, _ = model.apply(variables, images, method=lambda m, x: m.visual(x))
    txt, txt_aux = model.apply(variables, tokens, method=lambda m, x: m.text(x))
    logits, aux = model.apply(variables, images, tokens)
    return {
        "output/text_embedding": txt,
        "output/text_embedding_normalized": clip.l2_normalize(txt),
        "output/text_last_block_tokens": txt_aux["blocks"][-1],
        "output/text_ln_final_tokens": txt_aux["ln_final_tokens"],
        "output/text_eot_index": txt_aux["eot_index"],
        "output/image_embedding": img,
        "output/image_embedding_normalized": clip.l2_normalize(img),
        "output/forward_image_features": aux["image_features"],
        "output/forward_text_features": aux["text_features"],
        "output/forward_logit_scale_exp": aux["logit_scale_exp"],
        "output/logits_per_image": logits,
    }


def golden_clip(case, impl: str = "xla") -> dict:
    """Runner for open_clip.model.CLIP cases."""
    del impl  # no custom ops
    import jax

    model = model_from_config(case.meta["model_config"])
    variables = convert_state_dict(case.prefixed("param"), model, source=case.name)
    images = jnp.asarray(case.arrays["input/image"].transpose(0, 2, 3, 1))  # NCHW -> NHWC
    tokens = jnp.asarray(case.arrays["input/text_tokens"].astype(np.int32))
    out = jax.jit(lambda v, x, t: _forward(model, v, x, t))(variables, images, tokens)
    result = {k: np.asarray(v) for k, v in out.items()}
    result["output/text_eot_index"] = result["output/text_eot_index"].astype(np.int64)
    return result
