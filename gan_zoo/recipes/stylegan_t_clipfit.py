"""A CPU stand-in for the pretrained CLIP and DINO of StyleGAN-T: the tiny random CLIP of a CPU
preset fit contrastively on the run's own captioned images before training
(config.model.clip_fit_steps), then the D's tiny random DINO against it (dino_fit_steps).

Why: the paper conditions on a pretrained CLIP ViT-L/14 (§2.3) whose text embedding says what
the caption means and whose image tower makes CLIP guidance (§3.3) a real signal. A RANDOM tiny
text tower does neither: on the digits captions its embeddings are closer for the same phrasing
of two digits (cosine 0.86) than for two phrasings of one digit (0.47), so G and D see a class
signal buried under the phrasing, and guidance through a random image tower pulls G toward
nothing in particular (benchmarks/RESULTS.md, "StyleGAN-T digits_text trials"). Fitting the tiny
towers for a few hundred steps (seconds on CPU) gives the miniature what the paper's CLIP gives
the real model. Only with config.model.feature_nets="random" and no clip_weights file; the paper
path (pretrained weights) never does this. The run logs it.

Loss: CLIP's symmetric cross-entropy over the batch's image-text similarities (Radford et al.
2021, Fig. 3), with the targets spread over every pair whose captions are identical (a small
caption set repeats captions within a batch; plain CLIP would call those pairs negatives).
Images go through the CLIP-guidance pipeline (losses_stylegan_t.clip_guidance_images); half of
each batch is first area-pooled to half size, as G's first-stage images are.

DINO: the paper's D taps a pretrained DINO ViT-S/16 (§3.2), whose tokens carry what the image
shows. The tiny random DINO holds a digit only spread across its tokens (a linear probe reads it
from all 16 tokens at 91-94%, from their mean at 31-64%), and DiffAugment's cutout and
translation remove much of it, so the D's text projection learns slowly. The fit gives its cls
token a linear projection to the CLIP embedding and trains both with the same multi-positive
loss against the frozen (fitted) CLIP's text embeddings of the captions (no labels), images
through the D's own input path; the projection is dropped afterwards.
"""

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_zoo import losses_stylegan_t as lt
from gan_zoo.feature_nets import clip, clip_tokenizer, fit, vit
from gan_zoo.ops.area_resize import resize_area
from gan_zoo.recipes import stylegan_t_nets as nets_lib

log = logging.getLogger("gan_zoo.recipes.stylegan_t")

FIT_BATCH = 64  # image-caption pairs per step
FIT_LR = 1e-3  # Adam, default betas


def multi_positive_ce(logits, tokens):
    """Symmetric CLIP cross-entropy (Radford et al. 2021, Fig. 3) with multi-positive targets:
    row i's target is uniform over the pairs j whose tokens equal i's. logits: [N images,
    N texts]; tokens: int [N, L] -> scalar."""
    same = jnp.all(tokens[:, None, :] == tokens[None, :, :], axis=-1).astype(jnp.float32)
    target = same / jnp.sum(same, axis=1, keepdims=True)  # symmetric: same rule both ways
    loss_i = optax.softmax_cross_entropy(logits, target)
    loss_t = optax.softmax_cross_entropy(logits.T, target)
    return jnp.mean(loss_i + loss_t) / 2


def contrastive_loss(model: clip.CLIP, variables, images, tokens):
    """multi_positive_ce of the CLIP's logits. images: CLIP input [N, s, s, 3]; tokens: int
    [N, L] -> scalar."""
    logits, _ = model.apply(variables, images, tokens)  # [N images, N texts], exp(t) x cos
    return multi_positive_ce(logits, tokens)


def _half_pooled(images):
    """Reals [N, r, r, 3]: the first half area-pooled to r/2 and back (G's images in its first,
    half-resolution stage), the rest as they are."""
    r, half = images.shape[1], images.shape[0] // 2
    low = resize_area(resize_area(images[:half], r // 2), r)
    return jnp.concatenate([low, images[half:]], axis=0)


def _clip_input(key, images, input_size: int, augment=()):
    """Reals [N, r, r, 3] in [-1, 1] -> the guidance pipeline's input (half of them pooled;
    augment: config.train.clip_augment's policy, as the guidance applies it)."""
    return lt.clip_guidance_images(key, _half_pooled(images), input_size, augment=augment)


def _batches(source, steps: int, seed: int):
    """(images [B, r, r, 3] in [-1, 1], tokens [B, L]) per step: records drawn with replacement
    by (seed, step) from a random-access caption source (load(i), num_records)."""
    for step in range(steps):
        idx = np.random.default_rng([seed, 7919, step]).integers(0, source.num_records,
                                                                 FIT_BATCH)
        records = [source.load(int(i)) for i in idx]
        images = np.stack([r[0] for r in records]).astype(np.float32) / 127.5 - 1.0
        tokens = clip_tokenizer.tokenize([r[1] for r in records], source.context_length)
        yield images, tokens.astype(np.int32)


def _source(config):
    from gan_zoo.data import captions  # noqa: PLC0415

    name = config.data.name
    source = captions.SOURCES.get(name)
    if source is None:
        raise ValueError(f"config.model.clip_fit_steps > 0 needs a caption dataset; "
                         f"config.data.name={name!r} is not one of {sorted(captions.SOURCES)}")
    src = source(config.data, int(config.model.resolution), int(config.seed))
    if not hasattr(src, "load"):
        raise ValueError(f"config.model.clip_fit_steps > 0: config.data.name={name!r} has no "
                         f"random access; fit needs an indexed caption source (digits_captions, "
                         f"caption_folder)")
    return src


def fit_clip(config, model: clip.CLIP, variables: dict) -> tuple[dict, list]:
    """(the random CLIP `variables` after config.model.clip_fit_steps contrastive steps on the
    run's caption data, the per-step losses); deterministic for config.seed. Logs the first
    and last losses."""
    steps = int(config.model.clip_fit_steps)
    side = model.visual.image_size
    policy = nets_lib.clip_augment_policy(config.train)

    def loss_fn(p, images, tokens, key):
        return contrastive_loss(model, {**variables, "params": p},
                                _clip_input(key, images, side, policy), tokens)

    params, losses = fit.adam_fit(loss_fn, variables["params"],
                                  _batches(_source(config), steps, int(config.seed)), steps,
                                  FIT_LR, jax.random.PRNGKey(int(config.seed) + 7919))
    log.info("StyleGAN-T: the random CLIP (text encoder, guidance image tower; D's text "
             "conditioning) fit contrastively on config.data.name=%r for "
             "config.model.clip_fit_steps=%d steps of %d pairs: loss %.3f -> %.3f (a CPU "
             "stand-in for the pretrained CLIP)", config.data.name, steps, FIT_BATCH,
             losses[0], float(np.mean(losses[-10:])))
    return {**variables, "params": params}, losses


# ----- The D's DINO (config.model.dino_fit_steps) -----

DINO_PROJ = "proj"  # params key of the fit's cls -> text-embedding projection (dropped after)
DINO_LOGIT_SCALE = 1 / 0.07  # CLIP's initial temperature (Radford et al. 2021, §2.5), fixed


def dino_contrastive_loss(D, fitter, clip_model: clip.CLIP, clip_vars, params, images, tokens,
                          key):
    """multi_positive_ce of the DINO's projected cls token against the frozen CLIP's text
    embeddings of the captions. images: reals [N, r, r, 3] in [-1, 1] (half pooled, as for the
    CLIP fit), through the D's own input path (DiffAugment, [0, 1], area resize, ImageNet
    mean/std); tokens: int [N, L] -> scalar."""
    x = D.apply({}, _half_pooled(images), key, method="_prepare")  # [N, s, s, 3]
    img = clip.l2_normalize(fitter.apply({"params": params}, x)[0])  # [N, E]
    txt = clip_model.apply(jax.lax.stop_gradient(clip_vars), tokens, normalize=True,
                           method="encode_text")  # [N, E]
    return multi_positive_ce(DINO_LOGIT_SCALE * img @ txt.T, tokens)


def fit_dino_projected(config, D, dino_vars: dict, clip_model: clip.CLIP, clip_vars: dict):
    """(fitter, its params, the per-step losses): the D's DINO (`dino_vars`, params only) plus a
    fresh linear projection of its cls token to the CLIP embedding (fitter = that ViT with
    proj_dim), after config.model.dino_fit_steps Adam steps of dino_contrastive_loss on the
    run's captioned images (fit.adam_fit, the CLIP fit's loop and batches)."""
    steps, seed = int(config.model.dino_fit_steps), int(config.seed)
    fitter = vit.make(D.dino_variant, **{**dict(D.dino_overrides), "num_classes": 0,
                                         "proj_dim": clip_model.text.embed_dim})
    # The D's DINO + a fresh projection, drawn as VisionTransformer's `proj` init (N(0, 1/C)).
    proj = jax.random.normal(jax.random.PRNGKey(seed + 31), (fitter.width, fitter.proj_dim))
    params = {**dino_vars["params"], DINO_PROJ: proj * fitter.width ** -0.5}
    loss_fn = functools.partial(dino_contrastive_loss, D, fitter, clip_model, clip_vars)
    params, losses = fit.adam_fit(loss_fn, params, _batches(_source(config), steps, seed + 1),
                                  steps, FIT_LR, jax.random.PRNGKey(seed + 7907))
    return fitter, params, losses


def fit_dino(config, D, dino_vars: dict, clip_model: clip.CLIP, clip_vars: dict):
    """(the D's random DINO variables fit by fit_dino_projected, projection dropped, the
    losses): the CPU stand-in for the paper's pretrained DINO, whose tokens carry what the image
    shows. clip_vars: the run's frozen (fitted) CLIP. Logs the first and last losses."""
    _, params, losses = fit_dino_projected(config, D, dino_vars, clip_model, clip_vars)
    log.info("StyleGAN-T: the random DINO (D's feature net) fit contrastively against the "
             "CLIP's text embeddings on config.data.name=%r for config.model.dino_fit_steps=%d "
             "steps of %d pairs: loss %.3f -> %.3f (a CPU stand-in for the pretrained DINO)",
             config.data.name, len(losses), FIT_BATCH, losses[0], float(np.mean(losses[-10:])))
    kept = {k: v for k, v in params.items() if k != DINO_PROJ}
    return {**dino_vars, "params": kept}, losses
