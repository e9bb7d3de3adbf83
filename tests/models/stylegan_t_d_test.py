"""StyleGAN-T discriminator (gan_zoo.models.stylegan_t_discriminator), spec §2.4."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.feature_nets import vit
from gan_zoo.models import stylegan_t_discriminator as sd
from gan_zoo.nn.batch_norm import BatchNorm

# Tiny DINO (2 blocks tapped 0, 1, 1, 1, width 32, 32^2 input with 8^2 patches -> 16 tokens).
TINY = dict(c_dim=16, num_devices=1, dino_overrides=(("width", 32), ("heads", 2), ("depth", 2),
                                      ("image_size", 32), ("patch", 8)),
            hooks=(0, 1, 1, 1), input_size=32)


def test_paper_size_trainable_count():
    # Official module shapes, per head: Conv1d(384, 384, 1) + BN affine, Conv1d(384, 384, 9) + BN
    # affine, cls Conv1d(384, 64, 1), cmapper FC 768 -> 64; 5 heads (4 blocks + patch embed).
    c, cmap, text = 384, 64, 768
    head = (c * c + c) + 2 * c + (9 * c * c + c) + 2 * c + (c * cmap + cmap) + (text * cmap + cmap)
    assert head == 1_550_720
    assert sd.trainable_param_count(sd.StyleGANTDiscriminator(), 224) == 5 * head == 7_753_600


def _np_sigma(weight, u0):
    """BigGAN SN sigma after one power iteration from u0, W_t = weight as [O, K]."""
    w_t = weight.reshape(-1, weight.shape[-1]).T
    v = u0 @ w_t
    v /= np.linalg.norm(v)
    u = v @ w_t.T
    u /= np.linalg.norm(u)
    return float((u @ w_t @ v.T)[0, 0])


def test_k9_conv_is_circular_against_numpy():
    n, length, cin, cout, k = 2, 12, 3, 5, 9
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (n, length, cin)), np.float64)
    conv = sd.SNConv1d(cout, k)
    xj = jnp.asarray(x, jnp.float32)
    v = jax.jit(lambda k: conv.init(k, xj, train=False))(jax.random.PRNGKey(1))
    y = np.asarray(jax.jit(lambda v: conv.apply(v, xj, train=False))(v))
    w = np.asarray(v["params"]["conv"]["weight"], np.float64)[0]  # [k, I, O]
    b = np.asarray(v["params"]["conv"]["bias"], np.float64)
    w = w / _np_sigma(w, np.asarray(v["spectral_norm"]["conv"]["u0"], np.float64))
    # torch Conv1d(padding=k//2, padding_mode='circular'): y[l] = b + sum_j x[(l + j - 4) % L] w[j]
    ref = np.zeros((n, length, cout))
    for l_ in range(length):
        for j in range(k):
            ref[:, l_] += x[:, (l_ + j - k // 2) % length] @ w[j]
    np.testing.assert_allclose(y, ref + b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch,group", [(16, 8), (8, 8), (4, 4), (12, 6), (24, 8)])
def test_virtual_group_size_follows_official_ceil_split(batch, group):
    assert sd.virtual_group_size(batch) == group


def test_virtual_group_size_error_names_batch():
    with pytest.raises(ValueError, match="batch 9"):
        sd.virtual_group_size(9)


@pytest.mark.parametrize("batch,devices,group", [(32, 1, 8), (32, 8, 4), (64, 4, 8), (48, 2, 8)])
def test_bn_groups_stay_within_each_devices_batch(batch, devices, group):
    assert sd.bn_group_size(batch, devices) == group
    with pytest.raises(ValueError, match="num_devices=5"):
        sd.bn_group_size(batch, 5)


def test_batch_norm_local_statistics_per_group_of_8_against_numpy():
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (16, 5, 4)) * 3 + 1, np.float64)
    bn = BatchNorm(reduction_group=sd.virtual_group_size(16), running_stats=False)
    v = bn.init(jax.random.PRNGKey(0), jnp.asarray(x, jnp.float32), train=False)
    assert set(v) == {"params"}  # no running statistics
    for train in (False, True):  # the same batch statistics in eval and train mode
        y = np.asarray(bn.apply(v, jnp.asarray(x, jnp.float32), train=train))
        for g in range(2):
            xg = x[8 * g:8 * (g + 1)]
            mean = xg.mean(axis=(0, 1))
            var = ((xg - mean) ** 2).mean(axis=(0, 1))  # biased
            np.testing.assert_allclose(y[8 * g:8 * (g + 1)], (xg - mean) / np.sqrt(var + 1e-5),
                                       rtol=1e-4, atol=1e-5)


def test_prepare_crops_one_224_window_or_area_resizes():
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 40, 40, 3), minval=-1, maxval=1)
    key = jax.random.PRNGKey(5)

    def prep(p_crop):
        d = sd.StyleGANTDiscriminator(diffaug=False, p_crop=p_crop, input_size=32)
        out = d.apply({}, x, key, method=lambda m, x, k: m._prepare(x, k))
        return np.asarray(out) * np.asarray(vit.IMAGENET_STD) + np.asarray(vit.IMAGENET_MEAN)

    x01 = (np.asarray(x) + 1) / 2
    cropped = prep(1.0)
    found = [(t, le) for t in range(9) for le in range(9)
             if np.allclose(cropped, x01[:, t:t + 32, le:le + 32], atol=1e-5)]
    assert len(found) == 1
    # No crop: area resize 40 -> 32, bins [floor(40 i / 32), ceil(40 (i + 1) / 32)): output 0
    # averages pixels 0-1, output 1 pixels 1-2 (per axis).
    resized = prep(0.0)
    np.testing.assert_allclose(resized[:, 0, 0], x01[:, 0:2, 0:2].mean(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(resized[:, 1, 0], x01[:, 1:3, 0:2].mean(axis=(1, 2)), atol=1e-5)


def test_prepare_applies_the_diffaug_policy_and_fill():
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 32, 32, 3), minval=-1, maxval=1)
    key = jax.random.PRNGKey(5)

    def prep(**kw):
        d = sd.StyleGANTDiscriminator(input_size=32, **kw)
        return np.asarray(d.apply({}, x, key, method=lambda m, x, k: m._prepare(x, k)))

    plain = prep(diffaug=False)
    assert np.allclose(prep(diffaug_policy=()), plain)
    # Cutout alone: each image keeps its pixels but for one square (side 16, clipped at the
    # border) of the fill: -1 -> black, 0 (official) -> grey, after [0, 1] and ImageNet norm.
    for fill, value in ((-1.0, 0.0), (0.0, 0.5)):
        cut = prep(diffaug_policy=("cutout",), diffaug_fill=fill)
        want = (value - np.asarray(vit.IMAGENET_MEAN)) / np.asarray(vit.IMAGENET_STD)
        changed = ~np.isclose(cut, plain, atol=1e-6).all(axis=-1)
        assert all(0 < c.sum() <= 256 for c in changed)
        np.testing.assert_allclose(cut[changed], np.broadcast_to(want, cut[changed].shape),
                                   atol=1e-5)


@pytest.mark.slow  # ~20 s CPU: init and jit of DINO + 5 heads with their gradients
def test_tiny_d_shapes_and_frozen_dino_gets_no_gradient():
    d = sd.StyleGANTDiscriminator(**TINY)
    n = 16  # two BatchNormLocal groups
    x = jax.random.uniform(jax.random.PRNGKey(0), (n, 48, 48, 3), minval=-1, maxval=1)
    c = jax.random.normal(jax.random.PRNGKey(1), (n, 16))
    v = d.init(jax.random.PRNGKey(2), x, c, train=False)
    assert set(v) == {"params", "spectral_norm", "frozen"}
    assert "dino" in v["frozen"] and "dino" not in v["params"]

    @jax.jit
    def loss_and_grads(params, frozen):
        def loss(params, frozen):
            logits, aux = d.apply({**v, "params": params, "frozen": frozen}, x, c, train=True,
                                  key=jax.random.PRNGKey(3), mutable=["spectral_norm"])[0]
            return jnp.mean(jax.nn.relu(1 - logits)), (logits, aux)
        return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, frozen)

    (_, (logits, aux)), (g_params, g_frozen) = loss_and_grads(v["params"], v["frozen"])
    assert logits.shape == (n, 5 * 16)  # 5 heads x 16 tokens
    assert [t.shape for t in aux["tokens"]] == [(n, 16, 32)] * 5
    assert all(not np.any(np.asarray(g)) for g in jax.tree_util.tree_leaves(g_frozen))
    assert all(np.any(np.asarray(g)) for g in jax.tree_util.tree_leaves(g_params))


def test_head_errors_name_the_conditioning():
    head = sd.DiscHead(c_dim=8, num_devices=1)
    x = jnp.zeros((2, 4, 6))
    with pytest.raises(ValueError, match=r"needs the text embedding c \[N, 8\]"):
        head.init(jax.random.PRNGKey(0), x, None, train=False)
    with pytest.raises(ValueError, match=r"DiscHead: c: expected shape \[2, 8\]"):
        head.init(jax.random.PRNGKey(0), x, jnp.zeros((2, 7)), train=False)


def test_head_c_alt_scores_the_same_tokens_under_other_captions():
    head = sd.DiscHead(c_dim=8, cmap_dim=4, num_devices=1)
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 6, 5))
    c, c_alt = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8))
    v = head.init(jax.random.PRNGKey(2), x, c, train=False)
    run = lambda *a, **k: head.apply(v, x, *a, train=True, mutable=["spectral_norm"], **k)[0]  # noqa: E731
    own, alt = run(c, c_alt=c_alt)
    np.testing.assert_array_equal(own, run(c))
    np.testing.assert_allclose(alt, run(c_alt), rtol=1e-6, atol=1e-6)
    assert not np.allclose(own, alt)
    with pytest.raises(ValueError, match=r"DiscHead: c_alt: expected shape \[8, 8\]"):
        run(c, c_alt=c_alt[:4])
    uncond = sd.DiscHead(c_dim=0, num_devices=1)
    vu = uncond.init(jax.random.PRNGKey(2), x, None, train=False)
    with pytest.raises(ValueError, match="c_alt needs a conditional head"):
        uncond.apply(vu, x, None, train=False, c_alt=c_alt)
