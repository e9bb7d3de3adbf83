"""config.model.feature_fit_steps (recipes/stylegan_xl_fit.py): the digits preset's random D ViT,
fitted on digits labels, classifies held-out digits far above chance (a random one does not);
with feature_fit_stages its batches are split over the stage resolutions, with feature_fit_tint
half of them tinted as extra classes;
fit_frozen replaces only the fitted nets' frozen weights, keeps the D's shapes and drops the
classifier heads; a run without classes is refused naming the field."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import stylegan_xl as xl_config
from gan_zoo.data import builtin
from gan_zoo.feature_nets import vit
from gan_zoo.models import projected_d as pd
from gan_zoo.recipes import stylegan_xl_fit as fit
from gan_zoo.recipes import stylegan_xl_nets as nets

STEPS = 300  # the preset fits longer (config.model.feature_fit_steps); enough to pass here


HELD = 512  # held-out digits scored (the size fit_frozen's log line uses: one compile)


@pytest.fixture(scope="module")
def digits():
    """(images in [-1, 1] at 32^2, labels): 1,200 to fit, 512 held out (fixed permutation)."""
    images, labels = builtin.load_digits(32)
    x = images.astype(np.float32) / 127.5 - 1
    idx = np.random.default_rng(0).permutation(len(x))
    fit_idx, held = idx[:1200], idx[1200:1200 + HELD]
    return (x[fit_idx], labels[fit_idx]), (x[held], labels[held])


@pytest.fixture(scope="module")
def preset_vit():
    """(config, the digits preset's D ViT with a 10-class head, its random params, side)."""
    c = xl_config.get_config("digits")
    m = c.model
    net = vit.make(pd.DEIT, **dict(nets.vit_overrides(m, "d_vit"), num_classes=10))
    side = int(m.d_resize_to)
    params = jax.jit(net.init)(jax.random.PRNGKey(0), jnp.zeros((1, side, side, 3)))["params"]
    return c, net, params, side


def _batches(x, y, n: int):
    rng = np.random.default_rng(1)
    while True:
        i = rng.integers(0, len(x), n)
        yield x[i], y[i]


def test_fitted_vit_classifies_held_out_digits(digits, preset_vit):
    (x, y), (hx, hy) = digits
    c, net, params, side = preset_vit
    before = fit.accuracy(net, params, hx, hy, side)
    params = fit.fit_vit(net, params, _batches(x, y, c.model.feature_fit_batch), STEPS, side,
                         jax.random.PRNGKey(1), float(c.model.feature_fit_lr))
    after = fit.accuracy(net, params, hx, hy, side)
    assert before < 0.25, before  # chance is 0.1
    assert after > 0.4, after  # 4x chance after 300 steps (the preset fits longer: ~90%)


def test_fit_batches_split_over_the_stage_resolutions(digits):
    """config.model.feature_fit_stages: a fit batch's first half is pooled to the stem's 16^2
    as the stem's reals are (2x2 means), the second half stays at 32^2, in order."""
    (x, _), _ = digits
    parts = fit._pooled(jnp.asarray(x[:6]), (16, 32))
    assert [p.shape for p in parts] == [(3, 16, 16, 3), (3, 32, 32, 3)]
    np.testing.assert_allclose(parts[0], x[:3].reshape(3, 16, 2, 16, 2, 3).mean(axis=(2, 4)),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(parts[1], x[3:6])
    assert len(fit._pooled(jnp.asarray(x[:6]), ())) == 1  # off: the batch as it is


def test_tint_moves_half_the_batch_to_extra_classes(digits):
    """config.model.feature_fit_tint: untinted images and labels pass unchanged; tinted ones
    are no longer grey (channels differ, most by far), stay in [-1, 1], and are labelled
    10 + their digit."""
    (x, y), _ = digits
    x, y = jnp.asarray(x[:64]), jnp.asarray(y[:64])
    tx, ty = fit.tint(jax.random.PRNGKey(3), x, y, 10)
    on = np.asarray(ty) >= 10
    assert 16 < on.sum() < 48  # a fair coin per image
    np.testing.assert_array_equal(np.asarray(ty)[on] - 10, np.asarray(y)[on])
    np.testing.assert_array_equal(np.asarray(tx)[~on], np.asarray(x)[~on])
    assert float(jnp.abs(x[..., 0] - x[..., 2]).max()) == 0  # the digits are grey
    spread = np.abs(np.asarray(tx)[on][..., 0] - np.asarray(tx)[on][..., 2]).max(axis=(1, 2))
    assert spread.mean() > 0.2 and np.mean(spread > 0.05) > 0.8, spread
    assert float(tx.min()) >= -1 and float(tx.max()) <= 1


def test_fit_frozen_replaces_only_the_fitted_nets(preset_vit, caplog):
    c, _, params, _ = preset_vit
    c.model.feature_fit_steps = 2
    name = pd.DEIT + "_net"
    frozen = {name: {"params": {k: v for k, v in params.items() if k not in fit.HEADS}},
              pd.DEIT + "_proj": {"params": {"w": jnp.ones((3,))}}}
    with caplog.at_level("INFO", logger="gan_zoo"):
        new, clf_vars = fit.fit_frozen(c, frozen, None, None, jax.random.PRNGKey(1), (16, 32))
    assert re.search(r"accuracy [\d.]+% at 16\^2, [\d.]+% at 32\^2", caplog.text), caplog.text
    assert clf_vars is None
    assert set(new) == set(frozen)
    # Same tree (heads dropped again), every fitted weight moved; the projection untouched.
    assert jax.tree.structure(new[name]) == jax.tree.structure(frozen[name])
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new[name],
                                            frozen[name])))
    assert new[pd.DEIT + "_proj"] is frozen[pd.DEIT + "_proj"]


def test_fit_needs_classes():
    c = xl_config.get_config("digits")
    c.model.update(n_classes=0, feature_fit_steps=2)
    with pytest.raises(ValueError, match="config.model.n_classes"):
        fit.fit_frozen(c, {}, None, None, jax.random.PRNGKey(0))
