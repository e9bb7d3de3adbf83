"""config.model.clip_fit_steps (recipes/stylegan_t_clipfit.py), the CPU presets' stand-in for
the pretrained CLIP, tested directly on the smoke preset's tiny random CLIP: the contrastive loss
on a held batch falls; after the fit, captions of one digit in different phrasings are closer
than one phrasing across digits (the random tower has it the other way round); identical
captions in a batch are shared positives (the loss does not change when their texts swap)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import stylegan_t as t_config
from gan_zoo.data import captions
from gan_zoo.feature_nets import clip_tokenizer
from gan_zoo.recipes import stylegan_t_clipfit as cf
from gan_zoo.recipes import stylegan_t_nets as nets

STEPS = 150  # the preset fits 300 steps of 64 pairs (the compile is most of the cost)
BATCH = 32
# The smoke CLIP with a 1-layer text tower on 16^2 images (a smaller compile).
SIZES = {"clip_text_layers": 1, "clip_image_size": 16}


@functools.partial(jax.jit, static_argnums=0)
def _encode(model, variables, tokens):
    return model.apply(variables, tokens, normalize=True, method="encode_text")


def _text_cosines(model, variables, context: int):
    """(same digit across phrasings, same phrasing across digits): mean cosines over the 4 x 10
    digit captions."""
    caps = [p.format(w) for p in captions.PHRASINGS for w in captions.DIGIT_WORDS]
    tokens = clip_tokenizer.tokenize(caps, context).astype(np.int32)
    n = len(captions.PHRASINGS)
    e = np.asarray(_encode(model, variables, jnp.asarray(tokens))).reshape(n, 10, -1)
    same_digit = [e[p, d] @ e[q, d] for p in range(n) for q in range(n) if q != p
                  for d in range(10)]
    same_phrasing = [e[p, d] @ e[p, f] for p in range(n) for d in range(10) for f in range(10)
                     if f != d]
    return float(np.mean(same_digit)), float(np.mean(same_phrasing))


@pytest.fixture(scope="module")
def fit_run():
    """(model, random variables, fitted variables, the fit's per-step losses)."""
    c = t_config.get_config("digits_text,smoke")
    c.model.update(clip_fit_steps=STEPS, **SIZES)
    model = nets.make_clip(c)
    side, ctx = model.visual.image_size, model.text.context_length
    variables = jax.device_get(jax.jit(model.init)(
        jax.random.PRNGKey(0), jnp.zeros((1, side, side, 3)), jnp.ones((1, ctx), jnp.int32)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cf, "FIT_BATCH", BATCH)
        fitted, losses = cf.fit_clip(c, model, variables)
    return model, variables, fitted, losses


def test_fit_lowers_the_contrastive_loss(fit_run):
    losses = fit_run[3]
    assert len(losses) == STEPS
    # log(32) = 3.47 for a uniform guess; measured 4.36 -> 2.13 (first, last step).
    assert np.mean(losses[-10:]) < losses[0] - 0.5, losses


def test_fit_makes_the_text_tower_encode_the_digit(fit_run):
    model, variables, fitted, _ = fit_run
    ctx = model.text.context_length
    digit0, phrasing0 = _text_cosines(model, variables, ctx)
    digit1, phrasing1 = _text_cosines(model, fitted, ctx)
    # Measured: random 0.67 vs 0.91 (the phrasing dominates), fitted 0.97 vs 0.35.
    assert digit0 < phrasing0, (digit0, phrasing0)
    assert digit1 > phrasing1 + 0.3, (digit1, phrasing1)


class _GivenLogits:
    """Stands in for clip.CLIP: apply(variables, images, tokens) returns `variables` as the
    [N images, N texts] logits."""

    def apply(self, variables, images, tokens):
        del images, tokens
        return variables, {}


def _log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def test_identical_captions_are_shared_positives():
    tokens = jnp.asarray([[5, 7, 9], [5, 7, 9], [5, 8, 9], [6, 7, 9]], jnp.int32)  # 0 == 1
    logits = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (4, 4))) * 3
    loss = lambda lg: float(cf.contrastive_loss(_GivenLogits(), jnp.asarray(lg), None, tokens))  # noqa: E731
    # Direct formula: targets uniform over {0, 1} for rows/columns 0 and 1, one-hot otherwise.
    target = np.array([[.5, .5, 0, 0], [.5, .5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    want = -((target * _log_softmax(logits)).sum(1).mean()
             + (target * _log_softmax(logits.T)).sum(1).mean()) / 2
    np.testing.assert_allclose(loss(logits), want, rtol=1e-5)
    # Swapping the texts of the two identical captions changes nothing (plain CLIP targets,
    # the identity, would score row 0's match with text 1 as a miss).
    swapped = logits[:, [1, 0, 2, 3]]
    np.testing.assert_allclose(loss(swapped), loss(logits), rtol=1e-5)
    assert abs(loss(logits[:, [2, 1, 0, 3]]) - loss(logits)) > 1e-3  # distinct captions do
