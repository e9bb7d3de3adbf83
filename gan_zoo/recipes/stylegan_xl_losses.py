"""StyleGAN-XL's loss terms over the projected D's heads ({head name: logits}), used by the
recipe (recipes/stylegan_xl.py). Sauer, Schwarz, Geiger 2022 §2-§3 (spec stylegan_xl_and_t.md
§1.4, §6.1; code: autonomousvision/stylegan_xl `training/loss.py` ProjectedGANLoss).

- The hinge loss of the code (§6.1: not the paper's eq. 1 log form), summed over the heads.
- Classifier guidance (§3.4), the cross-entropy of the frozen classifier against the class.
- Not in the paper: GAN-CLS's matching-aware D term (an image under a wrong label as an extra
  hinge fake; the recipe applies it to reals and to G's samples), and the D's class margin
  (true vs a wrong label, logged).
"""

import jax
import jax.numpy as jnp

from gan_zoo import losses


def hinge_d_heads(real_heads: dict, fake_heads: dict):
    """Projected GAN D loss, hinge form (SG-XL §2 eq. 1 as implemented, spec §1.4, §6.1):
    L_D = Σ_heads mean(relu(1 − D_l(x))) + mean(relu(1 + D_l(G(z)))); heads {name: logits}.

    (The official code sums per-sample means of each backbone's logits, a list-extend quirk
    that only scales the loss by the per-GPU batch; the spec's per-head sum is used here.)
    Returns (loss, (real part, fake part))."""
    parts = [losses.hinge_d(real_heads[k], fake_heads[k])[1] for k in sorted(real_heads)]
    real, fake = sum(p[0] for p in parts), sum(p[1] for p in parts)
    return real + fake, (real, fake)


def mismatch_d_heads(mismatch_heads: dict):
    """Matching-aware D term (GAN-CLS, Reed et al. 2016 §4.2; not in StyleGAN-XL), hinge form:
    Σ_heads mean(relu(1 + D_l(x, y'))): the heads' logits of images x under a wrong label y',
    scored as an extra fake. d_loss applies it to real images (mismatch_weight) and to G's
    samples G(z, y) (mismatch_fake_weight)."""
    return sum(losses.hinge_d_fake(mismatch_heads[k]) for k in sorted(mismatch_heads))


def d_loss(real_heads: dict, fake_heads: dict, mismatch_heads=None, mismatch_weight=0.0,
           fake_mismatch_heads=None, fake_mismatch_weight=0.0):
    """The recipe's D loss: hinge_d_heads + mismatch_weight · mismatch_d_heads(reals under wrong
    labels) + fake_mismatch_weight · mismatch_d_heads(fakes G(z, y) under wrong labels y')
    (config.train.mismatch_weight, mismatch_fake_weight; 0 = the paper's loss).
    Returns (loss, {part: value})."""
    loss, (real, fake) = hinge_d_heads(real_heads, fake_heads)
    parts = {"loss_real": real, "loss_fake": fake}
    for name, heads, weight in (("loss_mismatch", mismatch_heads, mismatch_weight),
                                ("loss_mismatch_fake", fake_mismatch_heads, fake_mismatch_weight)):
        if weight > 0:
            parts[name] = mismatch_d_heads(heads)
            loss = loss + weight * parts[name]
    return loss, parts


def class_margin(heads: dict, alt_heads: dict):
    """The D's class margin: s(x, y) = Σ_heads mean_hw D_l(x, y) per sample, under the true label
    y and another label y' -> (mean s(x, y) − s(x, y'), fraction with s(x, y) > s(x, y'))."""
    def score(h):
        return sum(jnp.mean(h[k].reshape(h[k].shape[0], -1), axis=1) for k in sorted(h))
    diff = score(heads) - score(alt_heads)
    return jnp.mean(diff), jnp.mean((diff > 0).astype(jnp.float32))


def mean_logit(heads: dict):
    """Mean over the heads of each head's mean logit (logged as logit_real / logit_fake)."""
    return jnp.mean(jnp.stack([jnp.mean(v) for v in heads.values()]))


def hinge_g_heads(fake_heads: dict):
    """Projected GAN G loss, hinge form: L_G = Σ_heads mean(−D_l(G(z)))."""
    return sum(losses.hinge_g(fake_heads[k]) for k in sorted(fake_heads))


def classifier_guidance(logits, labels):
    """SG-XL §3.4: L_CE = −Σ_i c_i log CLF(x)_i against the conditioning class, averaged over the
    batch (torch CrossEntropyLoss). logits [N, K] float, labels int [N]."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))
