"""config.model.clip_fit_steps (recipes/stylegan_t_clipfit.py), the CPU presets' stand-in for
the pretrained CLIP, tested directly on the smoke preset's tiny random CLIP: the contrastive loss
on a held batch falls; after the fit, captions of one digit in different phrasings are closer
than one phrasing across digits (the random tower has it the other way round); identical
captions in a batch are shared positives (the loss does not change when their texts swap).
config.model.dino_fit_steps (the D's DINO fit against that CLIP's caption embeddings): its loss
falls and the fitted DINO's images are closer to their own digit's caption than to others'."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import stylegan_t as t_config
from gan_zoo.data import captions
from gan_zoo.feature_nets import clip, clip_tokenizer, vit
from gan_zoo.recipes import stylegan_t as t_recipe
from gan_zoo.recipes import stylegan_t_clipfit as cf
from gan_zoo.recipes import stylegan_t_nets as nets

STEPS = 150  # the preset fits 300 steps of 64 pairs (the compile is most of the cost)
BATCH = 32
# The smoke CLIP with a 1-layer text tower on 16^2 images (a smaller compile).
SIZES = {"clip_text_layers": 1, "clip_image_size": 16}
DINO_STEPS = 100  # the preset fits 300 steps of 64 pairs
N_EVAL = 200  # the data's first images, scored against the 10 digits' captions


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


def _config():
    c = t_config.get_config("digits_text,smoke")
    c.model.update(clip_fit_steps=STEPS, dino_fit_steps=DINO_STEPS, **SIZES)
    c.train.clip_augment = ""  # the values below were measured on plain images
    return c


@pytest.fixture(scope="module")
def fit_run():
    """(model, random variables, fitted variables, the fit's per-step losses)."""
    c = _config()
    model = nets.make_clip(c)
    side, ctx = model.visual.image_size, model.text.context_length
    variables = jax.device_get(jax.jit(model.init)(  # "rbg": as dino_fit_run's init
        jax.random.key(0, impl="rbg"), jnp.zeros((1, side, side, 3)),
        jnp.ones((1, ctx), jnp.int32)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cf, "FIT_BATCH", BATCH)
        fitted, losses = cf.fit_clip(c, model, variables)
    return model, variables, fitted, losses


def test_fit_lowers_the_contrastive_loss(fit_run):
    losses = fit_run[3]
    assert len(losses) == STEPS
    # log(32) = 3.47 for a uniform guess; measured 4.56 -> 2.08 (first, last step).
    assert np.mean(losses[-10:]) < losses[0] - 0.5, losses


def test_fit_makes_the_text_tower_encode_the_digit(fit_run):
    model, variables, fitted, _ = fit_run
    ctx = model.text.context_length
    digit0, phrasing0 = _text_cosines(model, variables, ctx)
    digit1, phrasing1 = _text_cosines(model, fitted, ctx)
    # Measured: random 0.84 vs 0.95 (the phrasing dominates), fitted 0.97 vs 0.40.
    assert digit0 < phrasing0, (digit0, phrasing0)
    assert digit1 > phrasing1 + 0.3, (digit1, phrasing1)


@pytest.fixture(scope="module")
def dino_fit_run(fit_run):
    """(D without DiffAugment, fitter, random params, fitted params, losses): the smoke D's random
    DINO fit against fit_run's fitted CLIP; the random params carry the same fresh projection."""
    model, _, fitted, _ = fit_run
    c = _config()
    c.model.update(d_dino_depth=1, d_hooks="0,0,0,0")  # the smoke DINO with 1 block
    # DiffAugment off: through it the fit learns more slowly than this test can afford (300
    # steps with it: the own caption closest for 10.5% of the images below, chance 10%).
    D = nets.make_discriminator(c, model, 1).clone(diffaug=False)
    dino = vit.make(D.dino_variant, **{**dict(D.dino_overrides), "num_classes": 0})
    side = D.input_size
    # An "rbg" key: any random init will do, and it compiles in half threefry's time.
    dino_vars = jax.jit(dino.init)(jax.random.key(1, impl="rbg"), jnp.zeros((1, side, side, 3)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cf, "FIT_BATCH", BATCH)
        fitter, params, losses = cf.fit_dino_projected(c, D, jax.device_get(dino_vars), model,
                                                       fitted)
    random = {**dino_vars["params"], cf.DINO_PROJ: params[cf.DINO_PROJ]}
    return D, fitter, random, params, losses


@functools.partial(jax.jit, static_argnums=(0, 1))
def _embed(D, fitter, params, images):
    """The fitted DINO's L2-normalised projected cls token of reals [N, r, r, 3] through D's
    input path (no DiffAugment) -> [N, E]."""
    x = D.apply({}, images, None, method="_prepare")
    return clip.l2_normalize(fitter.apply({"params": params}, x)[0])


def _own_caption_wins(dino_fit_run, clip_run, params) -> float:
    """Fraction of (image, other digit) pairs where the image's projected DINO embedding is
    closer (cosine) to its own digit's caption than to the other digit's (chance 0.5); the
    data's first N_EVAL images, the 10 digits' first phrasing through the fitted CLIP (all 40
    captions encoded: _text_cosines' compiled shape)."""
    D, fitter, model, fitted = dino_fit_run[0], dino_fit_run[1], clip_run[0], clip_run[2]
    source = cf._source(_config())
    records = [source.load(i) for i in range(N_EVAL)]
    images = np.stack([r[0] for r in records]).astype(np.float32) / 127.5 - 1
    labels = np.array([[w in r[1].split() for w in captions.DIGIT_WORDS].index(True)
                       for r in records])
    img = np.asarray(_embed(D, fitter, params, jnp.asarray(images)))  # [N, E]
    caps = [p.format(w) for p in captions.PHRASINGS for w in captions.DIGIT_WORDS]  # as above
    tokens = clip_tokenizer.tokenize(caps, model.text.context_length).astype(np.int32)
    sim = img @ np.asarray(_encode(model, fitted, jnp.asarray(tokens)))[:10].T  # [N, 10]
    own = sim[np.arange(N_EVAL), labels][:, None]
    others = np.arange(10)[None, :] != labels[:, None]
    return float(np.mean((own > sim)[others]))


def test_dino_fit_lowers_its_loss_and_follows_the_captions(fit_run, dino_fit_run):
    losses = dino_fit_run[4]
    assert len(losses) == DINO_STEPS
    # Measured 4.65 -> 3.00 (first step, mean of the last 10).
    assert np.mean(losses[-10:]) < losses[0] - 0.5, losses
    before = _own_caption_wins(dino_fit_run, fit_run, dino_fit_run[2])
    after = _own_caption_wins(dino_fit_run, fit_run, dino_fit_run[3])
    # Measured 0.50 (random DINO, same projection) -> 0.81.
    assert abs(before - 0.5) < 0.1, before
    assert after > 0.65, (before, after)


@pytest.mark.parametrize("fields,match", [
    ({"dino_fit_steps": -1}, "dino_fit_steps must be an integer >= 0"),
    ({"clip_fit_steps": -5}, "clip_fit_steps must be an integer >= 0"),
    ({"dino_fit_steps": 3, "feature_nets": "pretrained"}, "feature_nets='pretrained'"),
    ({"dino_fit_steps": 3, "dino_weights": "dino.npz"}, "dino_weights='dino.npz'"),
])
def test_bad_fit_steps_raise_naming_the_field(fields, match):
    m = _config().model
    m.update(fields)
    with pytest.raises(ValueError, match=match):
        t_recipe.check_fit_steps(m)
    t_recipe.check_fit_steps(_config().model)  # the defaults pass


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
    loss_j = jax.jit(lambda lg: cf.contrastive_loss(_GivenLogits(), lg, None, tokens))
    loss = lambda lg: float(loss_j(jnp.asarray(lg)))  # noqa: E731
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
