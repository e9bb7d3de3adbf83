"""Feature nets fitted on the training data's labels: a CPU stand-in for pretrained ones.

StyleGAN-XL's projected D stands on feature networks pretrained on ImageNet classification (SG-XL
§3.3, Projected GAN §3.1) and its guidance classifier is a pretrained DeiT (SG-XL §3.4). Without
the weight files (config.model.feature_nets="random") the nets are random, a poor stand-in: their
features carry little of the class. config.model.feature_fit_steps > 0 trains each random ViT
(the D's F2 and the guidance classifier) with a linear head on the labelled training data for
that many Adam steps before the GAN starts (the analogue of pretraining on the data's own domain),
then freezes it as the paper's nets. Weight files, when given, are used as they are (not fitted).
The run logs the steps and the fitted nets' accuracy on the data; the result is saved with the
state (collections "d"/frozen and "clf"), so a resumed run does not fit again.

Each fit step: a batch of reals, DiffAugment (as the D's input path), [0, 1], ImageNet mean/std,
bilinear resize to the net's input side, cross entropy of the ViT's logits (the mean of the cls
and distillation heads for DeiT) against the labels. With config.model.feature_fit_stages each
batch is split evenly over the run's stage resolutions, each part average-pooled to its stage's
side first: the D then sees, in every stage, reals like those its net was fitted on (fitted on
32^2 digits only, the net served the 16^2 stem's blurrier upsampled inputs poorly and the digits
preset's stem drew colour blobs; benchmarks/RESULTS.md, session 10). With
config.model.feature_fit_tint the D's ViT also learns to tell grey reals from tinted copies
(half of each batch, labelled as n_classes more classes): fitted on grey digits alone, its
features barely change with colour, so its D let G draw magenta and green digits.
"""

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_zoo import augment
from gan_zoo.feature_nets import fit, vit
from gan_zoo.models import progan as progan_models
from gan_zoo.models import projected_d as pd
from gan_zoo.recipes import stylegan_xl_nets as nets_lib

log = logging.getLogger("gan_zoo.recipes.stylegan_xl")
HEADS = ("head", "head_dist")  # timm classifier heads: trained by the fit, not kept by the D
# config.model.feature_fit_tint: the tint's ranges in [-1, 1] image units, and its key's tag.
TINT_GAIN, TINT_OFFSET, TINT_TAG = (0.5, 1.5), (-0.4, 0.4), 99


def _pooled(x, resolutions: tuple):
    """x [N, R, R, 3] with its N split evenly (in order) over `resolutions`, each part
    average-pooled to its resolution as a stage's reals are; a list of parts."""
    if not resolutions:
        return [x]
    parts = np.array_split(np.arange(x.shape[0]), len(resolutions))
    return [progan_models.downscale_to(x[p[0]:p[-1] + 1], r) for p, r in zip(parts, resolutions)]


def tint(key, x, y, n_classes: int):
    """(x, y) with about half the images (a fair coin each) tinted, x·g + o clipped to [-1, 1]
    with a per-image, per-channel gain g ~ U(TINT_GAIN) and offset o ~ U(TINT_OFFSET), and
    their labels moved to n_classes + y (config.model.feature_fit_tint)."""
    kb, kg, ko = jax.random.split(key, 3)
    n = x.shape[0]
    on = jax.random.bernoulli(kb, 0.5, (n,))
    g = jax.random.uniform(kg, (n, 1, 1, 3), minval=TINT_GAIN[0], maxval=TINT_GAIN[1])
    o = jax.random.uniform(ko, (n, 1, 1, 3), minval=TINT_OFFSET[0], maxval=TINT_OFFSET[1])
    x = jnp.where(on[:, None, None, None], jnp.clip(x * g + o, -1, 1), x)
    return x, y + n_classes * on.astype(y.dtype)


def _loss(net, side: int, resolutions: tuple, tint_classes: int, params, x, y, key):
    """Cross entropy of the net's logits on DiffAugmented reals (the D's input path), the
    batch split over the stage `resolutions` (() = as given), half of it tinted as extra
    classes when tint_classes > 0 (the data's class count)."""
    if tint_classes:
        x, y = tint(jax.random.fold_in(key, TINT_TAG), x, y, tint_classes)
    xs, parts = [], _pooled(x, resolutions)
    for i, part in enumerate(parts):
        k = key if len(parts) == 1 else jax.random.fold_in(key, i)  # 1 part: draws as before
        xs.append(nets_lib.vit_input(augment.diff_augment(k, part), side))
    x = jnp.concatenate(xs)
    logits = net.apply({"params": params}, x)[0].astype(jnp.float32)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def fit_vit(net: vit.VisionTransformer, params: dict, batches, steps: int, side: int, key,
            lr: float = 3e-3, resolutions: tuple = (), tint_classes: int = 0) -> dict:
    """params of `net` (num_classes > 0) after `steps` Adam steps of cross entropy on
    `batches` (an iterator of (images [N, H, W, 3] in [-1, 1], int labels [N])); with
    `resolutions`, each batch is split evenly over them and each part average-pooled to its
    resolution first (the reals of each stage); with tint_classes = the data's class count,
    half of each batch is tinted and labelled as tint_classes + its label (the net needs
    tint_classes more outputs)."""
    loss = functools.partial(_loss, net, side, tuple(resolutions), tint_classes)
    return fit.adam_fit(loss, params, batches, steps, lr, key)[0]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _logits(net, side: int, params, x):
    return net.apply({"params": params}, nets_lib.vit_input(x, side))[0]


def accuracy(net: vit.VisionTransformer, params: dict, images, labels, side: int) -> float:
    """Top-1 accuracy of the fitted net on images [N, H, W, 3] in [-1, 1] (no augmentation)."""
    logits = _logits(net, side, params, jnp.asarray(images))
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)))


def with_head(net_params: dict, fitter: vit.VisionTransformer, side: int, key) -> dict:
    """The D's head-less ViT params plus fresh classifier heads of `fitter`."""
    init = jax.jit(fitter.init)(key, jnp.zeros((1, side, side, 3), jnp.float32))["params"]
    return {**init, **{k: v for k, v in net_params.items() if k not in HEADS}}


def data_batches(config, batch: int):
    """(images, labels) batches of config.data at the final resolution (the data pipeline)."""
    from gan_zoo import data as gdata  # noqa: PLC0415 (host-side, only when fitting)

    src = gdata.make_source(config.data, config.model.resolution, config.seed + 1)
    for b in src.batches(gdata.Layout(1, 1, batch), 0):
        yield (np.asarray(b["image"]).reshape(-1, *b["image"].shape[-3:]),
               np.asarray(b["label"]).reshape(-1))


def _fit_one(what: str, fitter, params: dict, config, side: int, key,
             resolutions: tuple = (), tint_classes: int = 0) -> dict:
    """Fit one ViT on the data; logs its accuracy on a fresh batch of 512 training images (at
    each of `resolutions`, when the fit is split over stages)."""
    m = config.model
    batches = data_batches(config, int(m.feature_fit_batch))
    params = fit_vit(fitter, params, batches, int(m.feature_fit_steps), side, key,
                     float(m.feature_fit_lr), resolutions, tint_classes)
    x, y = next(data_batches(config, 512))
    down = progan_models.downscale_to
    acc = ", ".join(f"{100 * accuracy(fitter, params, down(x, r), y, side):.1f}% at {r}^2"
                    for r in resolutions or (x.shape[1],))
    log.info("StyleGAN-XL %s: fitted on the data labels (config.model.feature_fit_steps=%d, "
             "batch %d): accuracy %s on 512 training images", what, m.feature_fit_steps,
             m.feature_fit_batch, acc)
    return params


def fit_frozen(config, d_frozen: dict, clf, clf_vars, key, resolutions: tuple = ()) -> tuple:
    """(D frozen collection, classifier variables) with the random ViTs fitted on the data
    (config.model.feature_fit_steps > 0; nets loaded from weight files are kept); resolutions:
    the stage resolutions each fit batch is split over (() = the data's only)."""
    m = config.model
    if m.n_classes < 1:
        raise ValueError("config.model.feature_fit_steps > 0 fits the feature nets on the data's "
                         f"labels: it needs config.model.n_classes > 0, got {m.n_classes}")
    name = pd.DEIT + "_net"
    if name in d_frozen and not m.get("deit_weights", ""):
        tint_classes = m.n_classes if m.feature_fit_tint else 0  # D's ViT only
        over = dict(nets_lib.vit_overrides(m, "d_vit"), num_classes=m.n_classes + tint_classes)
        fitter, side = vit.make(pd.DEIT, **over), int(m.d_resize_to)
        params = with_head(d_frozen[name]["params"], fitter, side, jax.random.fold_in(key, 0))
        params = _fit_one("D feature net F2 (DeiT stand-in)", fitter, params, config, side,
                          jax.random.fold_in(key, 1), resolutions, tint_classes)
        d_frozen = {**d_frozen, name: {"params": {k: v for k, v in params.items()
                                                  if k not in HEADS}}}
    if clf is not None and not m.get("clf_weights", ""):
        params = _fit_one("guidance classifier (DeiT-small stand-in)", clf.net,
                          clf_vars["params"], config, clf.side, jax.random.fold_in(key, 2),
                          resolutions)
        clf_vars = {**clf_vars, "params": params}
    return d_frozen, clf_vars
