"""StyleGAN-T per-token hinge and CLIP guidance (gan_zoo.losses_stylegan_t), spec §2.4-2.5."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import losses_stylegan_t as lt
from gan_zoo.feature_nets import clip


def test_per_token_hinge_against_direct_formula():
    real = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (4, 10)) * 2, np.float64)
    fake = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (4, 10)) * 2, np.float64)
    loss_d, (lr, lf) = lt.hinge_d_per_token(jnp.asarray(real), jnp.asarray(fake))
    ref_r = np.mean(np.maximum(0, 1 - real))
    ref_f = np.mean(np.maximum(0, 1 + fake))
    np.testing.assert_allclose([loss_d, lr, lf], [ref_r + ref_f, ref_r, ref_f], rtol=1e-5)
    np.testing.assert_allclose(lt.hinge_g_per_token(jnp.asarray(fake)), -fake.mean(), rtol=1e-5)
    np.testing.assert_allclose(lt.g_loss(jnp.asarray(fake), 2.0), -fake.mean() + 0.2 * 2.0,
                               rtol=1e-5)
    with pytest.raises(ValueError, match=r"per-token logits \[N, tokens\]"):
        lt.hinge_g_per_token(jnp.zeros((4,)))


def test_spherical_distance_is_arccos_squared_and_equals_the_chord_form():
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (6, 8)), np.float64)
    y = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (6, 8)), np.float64) * 3
    xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=-1, keepdims=True)
    d = np.asarray(lt.spherical_distance_sq(jnp.asarray(x), jnp.asarray(y)))
    np.testing.assert_allclose(d, np.arccos(np.sum(xn * yn, -1)) ** 2, rtol=1e-4)
    chord = (2 * np.arcsin(np.linalg.norm(xn - yn, axis=-1) / 2)) ** 2  # same for unit vectors
    np.testing.assert_allclose(d, chord, rtol=1e-4)
    assert np.isfinite(lt.spherical_distance_sq(jnp.ones((1, 3)), jnp.ones((1, 3)))).all()


def test_guidance_images_take_one_64_crop_above_64():
    x = jax.random.uniform(jax.random.PRNGKey(4), (2, 72, 72, 3), minval=-1, maxval=1)
    out = np.asarray(lt.clip_guidance_images(jax.random.PRNGKey(5), x, 64))
    x01 = out * np.asarray(clip.OPENAI_STD) + np.asarray(clip.OPENAI_MEAN)  # bicubic 64->64 = id
    xin = (np.asarray(x) + 1) / 2
    found = [(t, le) for t in range(9) for le in range(9)
             if np.allclose(x01, xin[:, t:t + 64, le:le + 64], atol=1e-4)]
    assert len(found) == 1


def test_guidance_images_augment_is_off_by_default_and_cuts_one_square():
    # White 32^2 images at a 32^2 tower: no crop, identity resizes, so the tower input read
    # back in [0, 1] is the image; cutout's square is DiffAugment's fill 0 (0.5 in [0, 1]).
    x = jnp.ones((2, 32, 32, 3))
    back = lambda out: np.asarray(out) * np.asarray(clip.OPENAI_STD) + np.asarray(  # noqa: E731
        clip.OPENAI_MEAN)
    key = jax.random.PRNGKey(0)
    np.testing.assert_allclose(back(lt.clip_guidance_images(key, x, 32)), 1.0, atol=1e-5)
    cut = back(lt.clip_guidance_images(key, x, 32, augment=("cutout",)))[..., 0]
    grey = np.isclose(cut, 0.5, atol=1e-5).sum(axis=(1, 2))
    assert np.all(np.isclose(cut, 0.5, atol=1e-5) | np.isclose(cut, 1.0, atol=1e-5))
    assert np.all((grey > 0) & (grey <= 6 * 6))  # one square of side int(32 * 0.2 + 0.5)


def test_clip_augment_field_parses_and_names_itself():
    from gan_zoo.recipes import stylegan_t_nets as nets_lib  # noqa: PLC0415

    assert nets_lib.clip_augment_policy({}) == ()  # the paper: no augmentation
    assert nets_lib.clip_augment_policy({"clip_augment": "translation,cutout"}) == (
        "translation", "cutout")
    with pytest.raises(ValueError, match="config.train.clip_augment='flip'"):
        nets_lib.clip_augment_policy({"clip_augment": "flip"})


def test_clip_guidance_against_direct_formula_and_tower_frozen():
    model = clip.make("_test")  # 32^2 image tower
    v = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)),
                            jnp.zeros((1, 8), jnp.int32))
    images = jax.random.uniform(jax.random.PRNGKey(1), (3, 64, 64, 3), minval=-1, maxval=1)
    text = jax.random.normal(jax.random.PRNGKey(2), (3, 24))
    key = jax.random.PRNGKey(3)
    # Direct: 64^2 is not cropped; area 64 -> 32 is a 2x2 box mean; [0, 1]; OpenAI mean/std.
    x01 = (np.asarray(images).reshape(3, 32, 2, 32, 2, 3).mean(axis=(2, 4)) + 1) / 2
    xn = (x01 - np.asarray(clip.OPENAI_MEAN)) / np.asarray(clip.OPENAI_STD)
    encode = jax.jit(lambda v, x: model.apply(v, x, method="encode_image"))
    img = np.asarray(encode(v, jnp.asarray(xn, jnp.float32)), np.float64)
    img /= np.linalg.norm(img, axis=-1, keepdims=True)
    txt = np.asarray(text, np.float64) / np.linalg.norm(text, axis=-1, keepdims=True)
    ref = np.mean(np.arccos(np.sum(img * txt, -1)) ** 2)
    # The tower is frozen: no gradient to its variables; the images get one.
    loss, (g_v, g_img) = jax.jit(jax.value_and_grad(
        lambda v, x: lt.clip_guidance_loss(model, v, key, x, text), argnums=(0, 1)))(v, images)
    np.testing.assert_allclose(loss, ref, rtol=1e-4)
    assert not any(np.any(np.asarray(g)) for g in jax.tree_util.tree_leaves(g_v))
    assert np.any(np.asarray(g_img))
