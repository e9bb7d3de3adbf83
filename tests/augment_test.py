"""DiffAugment (gan_zoo.augment): official stylegan-xl `training/diffaug.py` semantics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import augment

N, H, W, C = 64, 16, 24, 3


def _images(seed=0, n=N, h=H, w=W):
    return jax.random.uniform(jax.random.PRNGKey(seed), (n, h, w, C), minval=-1.0, maxval=1.0)


def _shift_np(img, th, tw):
    """out[i, j] = img[i + th, j + tw], zero outside (NumPy pad + slice)."""
    h, w, _ = img.shape
    p = max(h, w)
    pad = np.pad(img, ((p, p), (p, p), (0, 0)))
    return pad[p + th:p + th + h, p + tw:p + tw + w]


def test_max_shift_and_cutout_size_follow_int_ratio_plus_half():
    # int(size * ratio + 0.5): 16 * 1/8 = 2, 24 / 8 = 3, 20 / 8 = 2.5 -> 3; cutout 0.2: 16 -> 3.
    assert [augment.max_shift(s) for s in (16, 20, 24, 224)] == [2, 3, 3, 28]
    assert [augment.cutout_size(s) for s in (16, 24, 32, 224)] == [3, 5, 6, 45]


def test_translate_moves_content_by_the_given_pixels():
    x = np.asarray(_images(n=4))
    th, tw = np.array([-2, 0, 1, 2]), np.array([3, -3, 0, 1])
    y = np.asarray(augment.translate(jnp.asarray(x), jnp.asarray(th), jnp.asarray(tw), 2, 3))
    for k in range(4):
        np.testing.assert_array_equal(y[k], _shift_np(x[k], th[k], tw[k]))


def test_rand_translation_is_a_shift_within_one_eighth():
    x = np.asarray(_images(1, n=32))
    y = np.asarray(augment.rand_translation(jax.random.PRNGKey(3), jnp.asarray(x)))
    sh, sw = augment.max_shift(H), augment.max_shift(W)
    found = set()
    for k in range(x.shape[0]):
        hits = [(a, b) for a in range(-sh, sh + 1) for b in range(-sw, sw + 1)
                if np.array_equal(y[k], _shift_np(x[k], a, b))]
        assert len(hits) == 1, f"sample {k}: not a single zero-padded shift within range"
        found.add(hits[0])
    assert len(found) > 10  # shifts are drawn per sample


def test_cutout_zeroes_one_square_of_ratio_side():
    x = jnp.ones((256, 32, 32, 1))
    y = np.asarray(augment.rand_cutout(jax.random.PRNGKey(1), x))[..., 0]
    c = augment.cutout_size(32)  # 6
    full = 0
    for k in range(y.shape[0]):
        rows, cols = np.nonzero(y[k] == 0)
        assert rows.size > 0
        hr, wc = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert rows.size == hr * wc, "zeroed region is not a rectangle"
        assert hr <= c and wc <= c
        # Sides shorter than c only where the square is clipped by the border.
        assert hr == c or rows.min() == 0 or rows.max() == 31
        assert wc == c or cols.min() == 0 or cols.max() == 31
        full += rows.size == c * c
    assert full > 0.5 * y.shape[0]  # area ratio (c / size)^2 for unclipped squares
    assert np.all((y == 0) | (y == 1))


def test_fill_sets_translation_padding_and_cutout_square():
    # 8 black (-1) images, then 8 white: the same draws (key) at fill 0 (official) and -1.
    x = jnp.concatenate([-jnp.ones((8, 16, 16, 1)), jnp.ones((8, 16, 16, 1))])
    aug = jax.jit(lambda fill: augment.diff_augment(
        jax.random.PRNGKey(2), x, "translation,cutout", cutout_ratio=0.25, fill=fill))
    y0, y1 = np.asarray(aug(0.0)), np.asarray(aug(-1.0))
    assert np.all(y1[:8] == -1.0)  # black stays black at fill -1 ...
    assert np.any(y0[:8] == 0.0)  # ... and gets grey bars / squares at the official fill 0
    # On white images the padded and cut-out pixels are exactly `fill`, nothing else moves.
    assert np.any(y0[8:] == 0.0)
    np.testing.assert_array_equal(y1[8:], np.where(y0[8:] == 0.0, -1.0, 1.0))



def test_brightness_adds_one_offset_per_sample_in_range():
    x = _images()
    d = np.asarray(augment.rand_brightness(jax.random.PRNGKey(0), x) - x)
    off = d[:, 0, 0, 0]
    np.testing.assert_allclose(d, np.broadcast_to(off[:, None, None, None], d.shape), atol=1e-6)
    assert off.min() >= -0.5 and off.max() < 0.5 and off.std() > 0.1


def test_saturation_scales_deviation_from_channel_mean_by_0_to_2():
    x = np.asarray(_images())
    y = np.asarray(augment.rand_saturation(jax.random.PRNGKey(0), jnp.asarray(x)))
    m = x.mean(-1, keepdims=True)
    np.testing.assert_allclose(y.mean(-1), m[..., 0], atol=1e-5)  # channel mean kept
    f = ((y - m) * (x - m)).sum((1, 2, 3)) / ((x - m) ** 2).sum((1, 2, 3))
    np.testing.assert_allclose(y, m + (x - m) * f[:, None, None, None], atol=1e-5)
    assert f.min() >= 0 and f.max() < 2 and f.std() > 0.2


def test_contrast_scales_deviation_from_image_mean_by_half_to_three_halves():
    x = np.asarray(_images())
    y = np.asarray(augment.rand_contrast(jax.random.PRNGKey(0), jnp.asarray(x)))
    m = x.mean((1, 2, 3), keepdims=True)
    np.testing.assert_allclose(y.mean((1, 2, 3)), m[:, 0, 0, 0], atol=1e-5)
    f = ((y - m) * (x - m)).sum((1, 2, 3)) / ((x - m) ** 2).sum((1, 2, 3))
    np.testing.assert_allclose(y, m + (x - m) * f[:, None, None, None], atol=1e-5)
    assert f.min() >= 0.5 and f.max() < 1.5


def test_diff_augment_is_deterministic_per_key_and_keeps_shape_dtype():
    x = _images().astype(jnp.bfloat16)
    a = augment.diff_augment(jax.random.PRNGKey(5), x)
    b = augment.diff_augment(jax.random.PRNGKey(5), x)
    c = augment.diff_augment(jax.random.PRNGKey(6), x)
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    assert not np.array_equal(np.asarray(a, np.float32), np.asarray(c, np.float32))
    s = augment.diff_augment(jax.random.PRNGKey(5), x, "color,translation,cutout")
    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(s, np.float32))


def test_diff_augment_is_differentiable_and_jittable():
    x = _images(n=4)
    f = jax.jit(lambda k, x: jnp.sum(augment.diff_augment(k, x) ** 2))
    g = jax.grad(f, argnums=1)(jax.random.PRNGKey(0), x)
    assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))


def test_unknown_policy_names_the_entry():
    with pytest.raises(ValueError, match="blur"):
        augment.diff_augment(jax.random.PRNGKey(0), _images(n=1), ("color", "blur"))
