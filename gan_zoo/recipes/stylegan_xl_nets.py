"""StyleGAN-XL networks from a config: the generator of each stage, the projected discriminator,
the guidance classifier, and the frozen feature-network weights (spec stylegan_xl_and_t.md §1.3,
§1.4, §1.5, §4).

Feature-network weights are local files named by config fields (timm state dicts saved as
.safetensors / .npz; read by gan_zoo.convert.{efficientnet,vit}). config.model.feature_nets:
"pretrained" (the paper: every file must exist, else FileNotFoundError naming the field and the
timm id) or "random" (CPU presets and tests: the nets keep their seeded random init at the
configured sizes; a given file is still loaded). The run logs which nets are loaded and which
are random.
"""

import dataclasses
import logging

import jax
import jax.numpy as jnp
from flax import traverse_util

from gan_zoo import augment, checks
from gan_zoo.feature_nets import vit
from gan_zoo.models import projected_d as pd
from gan_zoo.models import stylegan_xl as xl

log = logging.getLogger("gan_zoo.recipes.stylegan_xl")

CLF_VARIANT = "deit_small_distilled_patch16_224"  # SG-XL §3.4 [C]: the guidance classifier
# (config field, timm id, what it is) of every weight file.
WEIGHT_FIELDS = {
    "effnet": ("effnet_weights", pd.EFFNET, "D feature net F1"),
    "deit": ("deit_weights", pd.DEIT, "D feature net F2"),
    "clf": ("clf_weights", CLF_VARIANT, "classifier guidance CLF"),
}
FITTED = ("deit", "clf")  # the random nets config.model.feature_fit_steps fits (ViTs)
_G_KEYS = ("z_dim", "w_dim", "channel_base", "channel_max", "stem_layers",
           "mapping_lr_multiplier")


def _ints(text) -> tuple:
    """"2,5,8,11" (or a list from a saved config) -> (2, 5, 8, 11)."""
    if isinstance(text, str):
        return tuple(int(v) for v in text.split(",") if v.strip())
    return tuple(int(v) for v in text)


def make_generator(config) -> xl.Generator:
    """The final-stage G of config.model: a stylegan_xl.VARIANTS row, non-zero size overrides."""
    m = config.model
    over = {k: m[k] for k in _G_KEYS if m.get(k, 0)}
    if m.get("head_layers", 0):
        over["head_layers_default"] = int(m.head_layers)
    if m.get("embed_rows", 0):
        over["embed_table"] = (int(m.embed_rows), int(m.embed_dim))
    over.update(num_fp16_res=m.get("num_fp16_res", 0), stem_resolution=m.stem_resolution)
    if m.get("fp16_dtype", "auto") != "auto":
        over["fp16_dtype"] = m.fp16_dtype
    return xl.generator(m.variant, m.resolution, c_dim=m.n_classes, **over)


def stage_generator(G: xl.Generator, res: int) -> xl.Generator:
    """G grown up to stage `res` only (the first heads of G's head_layers)."""
    kw = dict(G.synthesis_kwargs)
    stem = kw.get("stem_resolution", 16)
    n_heads = len(xl.stage_resolutions(res, stem)) - 1
    if kw.get("head_layers") is not None:
        kw["head_layers"] = tuple(kw["head_layers"])[:n_heads]
    return G.clone(img_resolution=res, synthesis_kwargs=tuple(sorted(kw.items())))


def vit_overrides(m, prefix: str) -> tuple:
    """(field, value) pairs of the non-zero config.model.<prefix>_{width,depth,heads,patch}."""
    return tuple((k, int(m[f"{prefix}_{k}"])) for k in ("width", "depth", "heads", "patch")
                 if m.get(f"{prefix}_{k}", 0))


def _policy(text) -> str:
    """config.model.d_diffaug_policy, checked -> the comma string ProjectedDiscriminator takes."""
    return ",".join(augment.check_policy(str(text), "config.model.d_diffaug_policy"))


def make_discriminator(config, data_devices: int) -> pd.ProjectedDiscriminator:
    """The projected D of config.model.d_* (spec §1.4). BatchNorm groups: d_bn_group "device"
    (official, per GPU: the 'data' devices) or a number k of samples per group."""
    m = config.model
    group = str(m.d_bn_group)
    interp = {"auto": None, "true": True, "false": False}[str(m.d_interp224).lower()]
    return pd.ProjectedDiscriminator(
        backbones=tuple(b for b in str(m.d_backbones).split(",") if b), c_dim=m.n_classes,
        cmap_dim=m.d_cmap_dim, embed_dim=m.d_embed_dim, diffaug=m.d_diffaug,
        diffaug_policy=_policy(m.get("d_diffaug_policy", pd.ProjectedDiscriminator.diffaug_policy)),
        diffaug_fill=float(m.get("d_diffaug_fill", 0.0)),  # .get: configs saved before the field
        interp224=interp, proj_seed=m.d_proj_seed, vit_variant=pd.DEIT,
        vit_overrides=vit_overrides(m, "d_vit"), vit_hooks=_ints(m.d_vit_hooks),
        bn_group=group if group in ("device", "global") else int(group),
        num_devices=data_devices, resize_to=m.d_resize_to, nominal_res=m.d_nominal_res,
        head_channel_max=int(m.get("d_head_channel_max", 0)))  # .get: configs saved before it


@dataclasses.dataclass(frozen=True)
class Classifier:
    """The frozen guidance classifier: a DeiT (feature_nets.vit) on `side`^2 inputs."""

    net: vit.VisionTransformer
    side: int  # input side (224 for the pretrained DeiT-small)

    def logits(self, variables, img):
        """img [N, H, W, 3] in [-1, 1] -> logits [N, classes] (SG-XL §3.4 [C]: [0, 1], ImageNet
        mean/std, bilinear resize to 224 (align_corners=False); frozen: stop_gradient)."""
        variables = jax.tree.map(jax.lax.stop_gradient, variables)
        return self.net.apply(variables, vit_input(img, self.side))[0]


def vit_input(img, side: int):
    """[-1, 1] images [N, H, W, 3] -> a timm ViT's input: [0, 1], ImageNet mean/std, bilinear
    resize to side (align_corners=False)."""
    x = (img.astype(jnp.float32) + 1) / 2
    x = (x - jnp.asarray(vit.IMAGENET_MEAN)) / jnp.asarray(vit.IMAGENET_STD)
    return pd.resize_bilinear(x, side)


def make_classifier(config) -> Classifier:
    """DeiT-small (1000 ImageNet classes) or, for feature_nets="random", a random ViT of the
    configured size with max(n_classes, 1) outputs."""
    m = config.model
    classes = 1000 if m.feature_nets == "pretrained" or m.clf_weights else max(m.n_classes, 1)
    over = dict(vit_overrides(m, "clf"), num_classes=classes, image_size=m.clf_input)
    return Classifier(vit.make(CLF_VARIANT, **over), int(m.clf_input))


def check_weight_files(config, need_clf: bool) -> None:
    """feature_nets="pretrained": every needed weight file must exist (spec §4 names)."""
    fit = config.model.get("feature_fit_steps", 0)
    for key, (field, timm_id, role) in _needed(config, need_clf).items():
        note = (f"; fitted on the data's labels first, config.model.feature_fit_steps={fit}"
                if fit > 0 and key in FITTED else "")
        checks.check_feature_weights(config.model, field, f"timm {timm_id!r}", role, log,
                                     "StyleGAN-XL", note)


def _needed(config, need_clf: bool) -> dict:
    backbones = str(config.model.d_backbones).split(",")
    out = {k: v for k, v in WEIGHT_FIELDS.items() if v[1] in backbones}
    if need_clf:
        out["clf"] = WEIGHT_FIELDS["clf"]
    return out


def load_d_weights(config, d_vars: dict) -> dict:
    """d_vars with frozen/<backbone>_net replaced by the configured weight files."""
    m, frozen = config.model, dict(d_vars[pd.FROZEN_COLLECTION])
    if m.get("effnet_weights", "") and pd.EFFNET + "_net" in frozen:
        from gan_zoo.convert import efficientnet as conv_eff  # noqa: PLC0415

        frozen[pd.EFFNET + "_net"] = conv_eff.load_efficientnet(m.effnet_weights)
    if m.get("deit_weights", "") and pd.DEIT + "_net" in frozen:
        from gan_zoo.convert import vit as conv_vit  # noqa: PLC0415

        _, variables = conv_vit.load_vit(m.deit_weights, pd.DEIT,
                                         **dict(vit_overrides(m, "d_vit")))
        params = {k: v for k, v in variables["params"].items()
                  if k not in ("head", "head_dist")}  # D uses the taps only (num_classes 0)
        frozen[pd.DEIT + "_net"] = {"params": params}
    _check_same_shapes(d_vars[pd.FROZEN_COLLECTION], frozen, "config.model weight files")
    return {**d_vars, pd.FROZEN_COLLECTION: frozen}


def classifier_variables(config, clf: Classifier, key) -> dict:
    """The classifier's variables: config.model.clf_weights, else a random init from `key`."""
    if config.model.get("clf_weights", ""):
        from gan_zoo.convert import vit as conv_vit  # noqa: PLC0415

        return conv_vit.convert_state_dict(conv_vit.read_state_dict(config.model.clf_weights),
                                           clf.net, source=config.model.clf_weights)
    x = jnp.zeros((1, clf.side, clf.side, 3), jnp.float32)
    return clf.net.init(key, x)


def with_class_embedding(g_params: dict, path: str) -> dict:
    """G params whose class table is the pretrained one in `path` (config.model.embed_weights;
    official: in_embeddings/tf_efficientnet_lite0.pkl, SG-XL §3.1). The shape must equal G's
    table (config.model.embed_rows x embed_dim; paper 1000 x 320)."""
    from gan_zoo.convert import stylegan_xl as conv_xl  # noqa: PLC0415

    table = conv_xl.read_class_embedding(path)
    old = g_params["mapping"]["embed"]["embedding"]
    if tuple(table.shape) != tuple(old.shape):
        raise ValueError(f"config.model.embed_weights={path}: class table {list(table.shape)}, "
                         f"the G's is {list(old.shape)} (config.model.embed_rows, embed_dim)")
    log.info("StyleGAN-XL G class embedding %s: from %s", list(table.shape), path)
    embed = {**g_params["mapping"]["embed"], "embedding": jnp.asarray(table, old.dtype)}
    return {**g_params, "mapping": {**g_params["mapping"], "embed": embed}}


def _check_same_shapes(want, got, what: str) -> None:
    a = traverse_util.flatten_dict(want, sep="/")
    b = traverse_util.flatten_dict(got, sep="/")
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b or a[k].shape != b[k].shape:
            raise ValueError(f"{what}: frozen/{k} has shape "
                             f"{getattr(b.get(k), 'shape', None)}, the D expects "
                             f"{getattr(a.get(k), 'shape', None)}")
