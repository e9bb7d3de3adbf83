"""StyleGAN-T losses (Sauer et al. 2023, §3.2-3.3; spec stylegan_xl_and_t.md §2.4-2.5), as
autonomousvision/stylegan-t `training/loss.py` computes them.

- Per-token hinge: D outputs one logit per token of every head, [N, 5 L]; the hinge of
  gan_zoo.losses is averaged over all of them. (The official also divides each term by the
  per-GPU batch size, a constant factor that Adam's update all but ignores; not reproduced.)
- CLIP guidance (§3.3, eq. 2): L_CLIP = arccos^2(<c_image, c_text>) of the L2-normalised CLIP
  image embedding of G(z) and the text embedding. The official `spherical_distance` is this
  arccos form (not 2 arcsin(|x - y| / 2), equal for unit vectors); here the cosine is clipped to
  [-1, 1] so rounding cannot make arccos NaN. Image pipeline: one random 64 x 64 crop for the
  batch when larger than 64 -> area resize to the tower's input (224) -> [0, 1] -> bicubic to
  the input size (the identity at 224) -> OpenAI mean/std -> frozen CLIP image tower.
"""

import jax
import jax.numpy as jnp

from gan_zoo import losses
from gan_zoo.augment import diff_augment
from gan_zoo.feature_nets import clip
from gan_zoo.ops.area_resize import random_crop, resize_area

CLIP_WEIGHT = 0.2  # primary phase (§3.3)
CLIP_WEIGHT_TEXT_PHASE = 50.0  # secondary, text-encoder phase (§3.3, spec §2.5)
CLIP_CROP = 64  # guidance is applied to random 64^2 crops of larger images


def _check_logits(name: str, logits) -> None:
    if logits.ndim != 2:
        raise ValueError(f"{name}: expected per-token logits [N, tokens], got shape "
                         f"{tuple(logits.shape)}")


def hinge_d_per_token(logits_real, logits_fake):
    """D hinge loss per token, StyleGAN-T §3.2: mean over all N x 5L logits of
    relu(1 - D(x)) + mean relu(1 + D(G(z))) (gan_zoo.losses.hinge_d). -> (loss, (real, fake))."""
    _check_logits("hinge_d_per_token: logits_real", logits_real)
    _check_logits("hinge_d_per_token: logits_fake", logits_fake)
    return losses.hinge_d(logits_real, logits_fake)


def hinge_g_per_token(logits_fake):
    """G hinge loss per token, StyleGAN-T §3.2: -mean over all N x 5L logits of D(G(z))."""
    _check_logits("hinge_g_per_token: logits_fake", logits_fake)
    return losses.hinge_g(logits_fake)


def caption_margin(logits, logits_other):
    """The D's caption margin: per sample, mean over tokens of D(x, c) − D(x, c_other) -> (its
    batch mean, the fraction of samples where it is > 0). Logged, not a loss."""
    _check_logits("caption_margin: logits", logits)
    diff = jnp.mean(logits.astype(jnp.float32) - logits_other.astype(jnp.float32), axis=1)
    return jnp.mean(diff), jnp.mean((diff > 0).astype(jnp.float32))


def spherical_distance_sq(x, y):
    """arccos^2(<x/|x|, y/|y|>), StyleGAN-T §3.3 eq. 2 (official `spherical_distance`).
    x, y: [..., E] -> [...], float32."""
    x = clip.l2_normalize(x.astype(jnp.float32))
    y = clip.l2_normalize(y.astype(jnp.float32))
    cos = jnp.clip(jnp.sum(x * y, axis=-1), -1.0, 1.0)
    return jnp.square(jnp.arccos(cos))


def clip_guidance_images(key, images, input_size: int, crop: int = CLIP_CROP, augment=()):
    """G(z) [N, H, W, 3] in [-1, 1] -> the CLIP image tower's input [N, s, s, 3] (s =
    input_size): random crop (when H > crop), area resize to s, [0, 1], bicubic + OpenAI
    mean/std (clip.preprocess_images). augment: a DiffAugment policy applied first, per sample
    (not in the paper, whose guidance sees plain crops; () = none)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"clip_guidance_images: expected images [N, H, W, 3], got "
                         f"{tuple(images.shape)}")
    if augment:
        images = diff_augment(jax.random.fold_in(key, 1), images, augment)
    if images.shape[1] > crop:
        images = random_crop(key, images, crop)
    x = resize_area(images.astype(jnp.float32), input_size)
    return clip.preprocess_images((x + 1) / 2, input_size)


def clip_guidance_loss(model: clip.CLIP, variables, key, images, text_embed, augment=()):
    """L_CLIP (StyleGAN-T §3.3 eq. 2), mean over the batch; multiply by CLIP_WEIGHT.

    model/variables: the CLIP model whose image tower guides (frozen: read through
    stop_gradient, so only `images` receive a gradient). text_embed: [N, E] c_text (normalised
    again here; the frozen encoder's output, also in the text-encoder phase). augment: see
    clip_guidance_images.
    """
    frozen = jax.tree_util.tree_map(jax.lax.stop_gradient, variables)
    x = clip_guidance_images(key, images, model.visual.image_size, augment=augment)
    image_embed = model.apply(frozen, x, normalize=True, method="encode_image")
    if image_embed.shape != text_embed.shape:
        raise ValueError(f"clip_guidance_loss: image embedding {tuple(image_embed.shape)} and "
                         f"text_embed {tuple(text_embed.shape)} differ")
    return jnp.mean(spherical_distance_sq(image_embed, text_embed))


def g_loss(logits_fake, clip_loss=None, clip_weight: float = CLIP_WEIGHT):
    """Total G loss, StyleGAN-T §3.3: per-token hinge + clip_weight * L_CLIP."""
    loss = hinge_g_per_token(logits_fake)
    return loss if clip_loss is None else loss + clip_weight * clip_loss
