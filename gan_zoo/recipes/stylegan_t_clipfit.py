"""A CPU stand-in for the pretrained CLIP of StyleGAN-T: the tiny random CLIP of a CPU preset fit
contrastively on the run's own captioned images before training (config.model.clip_fit_steps).

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
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_zoo import losses_stylegan_t as lt
from gan_zoo.feature_nets import clip, clip_tokenizer, fit
from gan_zoo.ops.area_resize import resize_area

log = logging.getLogger("gan_zoo.recipes.stylegan_t")

FIT_BATCH = 64  # image-caption pairs per step
FIT_LR = 1e-3  # Adam, default betas


def contrastive_loss(model: clip.CLIP, variables, images, tokens):
    """Symmetric CLIP cross-entropy (Radford et al. 2021, Fig. 3) with multi-positive targets:
    row i's target is uniform over the pairs j whose tokens equal i's. images: CLIP input
    [N, s, s, 3]; tokens: int [N, L] -> scalar."""
    logits, _ = model.apply(variables, images, tokens)  # [N images, N texts], exp(t) x cos
    same = jnp.all(tokens[:, None, :] == tokens[None, :, :], axis=-1).astype(jnp.float32)
    target = same / jnp.sum(same, axis=1, keepdims=True)  # symmetric: same rule both ways
    loss_i = optax.softmax_cross_entropy(logits, target)
    loss_t = optax.softmax_cross_entropy(logits.T, target)
    return jnp.mean(loss_i + loss_t) / 2


def _clip_input(key, images, input_size: int):
    """Reals [N, r, r, 3] in [-1, 1] -> the guidance pipeline's input; the first half pooled to
    r/2 first (G's images in its first, half-resolution stage)."""
    r, half = images.shape[1], images.shape[0] // 2
    low = resize_area(resize_area(images[:half], r // 2), r)
    x = jnp.concatenate([low, images[half:]], axis=0)
    return lt.clip_guidance_images(key, x, input_size)


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

    def loss_fn(p, images, tokens, key):
        return contrastive_loss(model, {**variables, "params": p},
                                _clip_input(key, images, side), tokens)

    params, losses = fit.adam_fit(loss_fn, variables["params"],
                                  _batches(_source(config), steps, int(config.seed)), steps,
                                  FIT_LR, jax.random.PRNGKey(int(config.seed) + 7919))
    log.info("StyleGAN-T: the random CLIP (text encoder, guidance image tower; D's text "
             "conditioning) fit contrastively on config.data.name=%r for "
             "config.model.clip_fit_steps=%d steps of %d pairs: loss %.3f -> %.3f (a CPU "
             "stand-in for the pretrained CLIP)", config.data.name, steps, FIT_BATCH,
             losses[0], float(np.mean(losses[-10:])))
    return {**variables, "params": params}, losses
