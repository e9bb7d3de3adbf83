"""Projected discriminator (gan_zoo.models.projected_d), StyleGAN-XL spec §1.4."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.models import projected_d as pd

MUTABLE = ["batch_stats", "spectral_norm"]
# Tiny ViT (12 blocks for taps 2/5/8/11, width 32); the EfficientNet has no smaller variant, so
# the tiny D runs both nets on 64^2 inputs with head depths computed for 64 (4x4 heads: 2, 1, 0,
# 0 DownBlocks -> logits 5x5, 5x5, 5x5, 1x1).
TINY = dict(vit_overrides=(("width", 32), ("heads", 2)), c_dim=10, num_devices=1,
            interp224=False, resize_to=64, nominal_res=64)


def _n(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _shapes(d, res, batch=8):  # 8: the conftest's CPU devices (per-device BN)
    x = jax.ShapeDtypeStruct((batch, res, res, 3), jnp.float32)
    c = jax.ShapeDtypeStruct((batch, d.c_dim), jnp.float32) if d.c_dim else None
    v = jax.eval_shape(lambda k, x, c: d.init(k, x, c, train=False), jax.random.PRNGKey(0), x, c)
    out = jax.eval_shape(lambda v, x, c, k: d.apply(v, x, c, train=True, key=k, mutable=MUTABLE),
                         v, x, c, jax.random.PRNGKey(1))
    return v, out[0]


def test_head_blocks_follow_the_official_channel_table():
    # SingleDiscCond with nfc_midas {.., 16: 256, 32: 128, 64: 64, 128: 64}, end_sz 8.
    assert pd.head_channels(128, 64) == [(128, 64, 64), (64, 64, 128), (32, 128, 256),
                                         (16, 256, 512)]
    assert pd.head_channels(64, 64) == [(64, 64, 128), (32, 128, 256), (16, 256, 512)]
    assert pd.head_channels(32, 128) == [(32, 128, 256), (16, 256, 512)]
    assert pd.head_channels(16, 256) == [(16, 256, 512)]


def test_head_channel_cap_narrows_the_down_blocks_not_the_input():
    # config.model.d_head_channel_max (not official): every DownBlock's output width is capped,
    # the head's input keeps the CSM's width; 0, or a cap above 512, is the official table.
    assert pd.head_channels(128, 64, 64) == [(128, 64, 64), (64, 64, 64), (32, 64, 64),
                                             (16, 64, 64)]
    assert pd.head_channels(32, 128, 64) == [(32, 128, 64), (16, 64, 64)]
    assert pd.head_channels(64, 64, 0) == pd.head_channels(64, 64, 1024) == pd.head_channels(64, 64)
    with pytest.raises(ValueError, match="d_head_channel_max"):
        pd.head_channels(64, 64, -1)
    head = pd.DiscHead(32, c_dim=10, cmap_dim=8, embed_dim=6, num_devices=1, channel_max=64)
    f = jax.ShapeDtypeStruct((2, 32, 32, 128), jnp.float32)
    y = jax.ShapeDtypeStruct((2, 10), jnp.float32)
    v = jax.eval_shape(lambda f, y: head.init(jax.random.PRNGKey(0), f, y, train=False), f, y)
    p = v["params"]
    assert p["down0_conv"]["weight"].shape == (4, 4, 128, 64)
    assert p["down1_conv"]["weight"].shape == (4, 4, 64, 64)
    assert p["cls"]["weight"].shape == (4, 4, 64, 8)


def test_paper_scale_trainable_count():
    # Per backbone, heads on CSM maps of 64/64/128/256 ch at nominal 128/64/32/16 (official):
    # DownBlock(cin, cout) = 4x4 conv + bias + BN affine; cls 4x4 512 -> 64, no bias;
    # embed 1000 x 320; embed_proj 320 -> 64 + bias.
    chains = [[64, 64, 128, 256, 512], [64, 128, 256, 512], [128, 256, 512], [256, 512]]
    down = sum(16 * a * b + 3 * b for ch in chains for a, b in zip(ch, ch[1:]))
    per_head = 16 * 512 * 64 + 1000 * 320 + 320 * 64 + 64
    expected = 2 * (down + 4 * per_head)
    assert expected == 27_515_776
    d = pd.ProjectedDiscriminator()
    assert pd.trainable_param_count(d, 64) == expected


@pytest.mark.parametrize("res,eff_side", [(16, 4), (32, 4), (64, 4), (224, 4), (256, 5)])
def test_paper_scale_logit_shapes(res, eff_side):
    d = pd.ProjectedDiscriminator()
    v, (logits, aux) = _shapes(d, res)
    # DeiT always sees 224 -> 4x4 per head; lite0 sees 224 below 224^2, else the raw image.
    want = {f"{b}/{i}": (8, s, s) for b, s in ((pd.DEIT, 4), (pd.EFFNET, eff_side))
            for i in range(4)}
    assert {k: tuple(x.shape) for k, x in aux["logits"].items()} == want
    assert logits.shape == (8, 4 * 16 + 4 * eff_side ** 2)
    # CSM maps: 64/64/128/256 channels at twice the tap resolution (112/56/28/14 at 224).
    chans = [f.shape[-1] for f in aux["features"][pd.DEIT]]
    sides = [f.shape[1] for f in aux["features"][pd.DEIT]]
    assert chans == [64, 64, 128, 256] and sides == [112, 56, 28, 14]
    # DeiT-base without its two heads: 87,338,192 - 2 * (768 * 1000 + 1000) (timm count).
    assert _n(v["frozen"][pd.DEIT + "_net"]) == 87_338_192 - 2 * 769_000
    assert set(v["frozen"]) == {f"{b}_{p}" for b in pd.BACKBONES for p in ("net", "proj")} | {
        pd.DEIT + "_reassemble"}


def test_unconditional_heads_have_one_channel_and_no_embedding():
    d = pd.ProjectedDiscriminator(**{**TINY, "c_dim": 0})
    v, (logits, _) = _shapes(d, 64)
    assert logits.shape == (8, 2 * (3 * 25 + 1))
    assert not any("embed" in "/".join(map(str, p)) for p, _ in
                   jax.tree_util.tree_flatten_with_path(v["params"])[0])


@pytest.fixture(scope="module")
def tiny():
    d = pd.ProjectedDiscriminator(**TINY)
    x = jax.random.uniform(jax.random.PRNGKey(2), (2, 64, 64, 3), minval=-1, maxval=1)
    c = jax.nn.one_hot(jnp.array([3, 7]), 10)
    init = jax.jit(lambda k: d.init(k, x, c, train=False))
    return d, x, c, init(jax.random.PRNGKey(0)), init(jax.random.PRNGKey(1))


@pytest.mark.slow  # the fixture's jitted init compiles ~2 min on a loaded 2-core box
def test_frozen_variables_are_seeded_by_proj_seed_not_the_init_rng(tiny):
    _, _, _, v0, v1 = tiny
    for a, b in zip(jax.tree_util.tree_leaves(v0["frozen"]),
                    jax.tree_util.tree_leaves(v1["frozen"])):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(v0["params"][f"{pd.DEIT}_head0"]["cls"]["weight"],
                              v1["params"][f"{pd.DEIT}_head0"]["cls"]["weight"])


@pytest.mark.slow  # ~1 min compile
def test_gradient_skips_frozen_parts_and_a_step_leaves_them_unchanged(tiny):
    d, x, c, v, _ = tiny
    frozen0 = jax.tree_util.tree_map(np.asarray, v["frozen"])

    def loss(params, frozen, state):
        (logits, _), new = d.apply({"params": params, "frozen": frozen, **state}, x, c,
                                   train=True, key=jax.random.PRNGKey(4), mutable=MUTABLE)
        return jnp.mean(jax.nn.relu(1 + logits)), new  # hinge, fake side

    state = {k: v[k] for k in MUTABLE}
    step = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))
    (g_params, g_frozen), new_state = step(v["params"], v["frozen"], state)
    assert set(new_state) == set(MUTABLE)  # train mode writes only the heads' collections
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree_util.tree_leaves(g_frozen))
    assert jax.tree_util.tree_structure(g_params) == jax.tree_util.tree_structure(v["params"])
    for name, g in g_params.items():  # every head is trained
        assert float(sum(jnp.sum(jnp.abs(t)) for t in jax.tree_util.tree_leaves(g))) > 0, name
    params = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, v["params"], g_params)
    (_, g2), _ = step(params, v["frozen"], new_state)
    for a, b in zip(jax.tree_util.tree_leaves(frozen0), jax.tree_util.tree_leaves(v["frozen"])):
        np.testing.assert_array_equal(a, b)
    bn = f"{pd.EFFNET}_head0"
    assert not np.array_equal(new_state["batch_stats"][bn]["down0_bn"]["stored_mean"],
                              state["batch_stats"][bn]["down0_bn"]["stored_mean"])


def test_errors_name_the_problem():
    d = pd.ProjectedDiscriminator(**TINY)
    x = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    c = jax.ShapeDtypeStruct((2, 10), jnp.float32)
    v = jax.eval_shape(lambda x, c: d.init(jax.random.PRNGKey(0), x, c, train=False), x, c)
    with pytest.raises(ValueError, match="key"):
        jax.eval_shape(lambda v, x, c: d.apply(v, x, c, train=False), v, x, c)
    bad = pd.ProjectedDiscriminator(backbones=("resnet50",), **TINY)
    with pytest.raises(ValueError, match="resnet50"):
        jax.eval_shape(lambda x, c: bad.init(jax.random.PRNGKey(0), x, c, train=False), x, c)
    c5 = jax.ShapeDtypeStruct((2, 5), jnp.float32)
    with pytest.raises(ValueError, match="one-hot"):
        jax.eval_shape(lambda v, x, c: d.apply(v, x, c, train=False, key=jax.random.PRNGKey(0)),
                       v, x, c5)
    # A head whose down blocks shrink its map below the 4x4 logit conv would give no logits:
    # nominal 128 = 4 blocks, a 32^2 map -> 2^2 (the digits D at d_nominal_res 256); 64^2 -> 4^2.
    head = pd.DiscHead(128, c_dim=10, num_devices=1)
    y = jax.ShapeDtypeStruct((2, 10), jnp.float32)

    def logits(side):
        f = jax.ShapeDtypeStruct((2, side, side, 64), jnp.float32)
        return jax.eval_shape(lambda f, y: head.init_with_output(
            jax.random.PRNGKey(0), f, y, train=False)[0], f, y)
    assert logits(64).shape == (2, 1, 1)
    with pytest.raises(ValueError, match="config.model.d_nominal_res"):
        logits(32)


def test_csm_upsample_is_align_corners_linear_interpolation():
    # align_corners=True keeps the corners and samples a ramp f(i) = i at j (n - 1) / (2n - 1).
    n = 5
    ramp = jnp.broadcast_to(jnp.arange(n, dtype=jnp.float32)[None, :, None, None], (1, n, 3, 2))
    up = np.asarray(pd.upsample2_align_corners(ramp))
    assert up.shape == (1, 2 * n, 6, 2)
    np.testing.assert_allclose(up[0, :, 0, 0], np.arange(2 * n) * (n - 1) / (2 * n - 1),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(up[0, :, :, 0], np.broadcast_to(up[0, :, :1, 0], (2 * n, 6)))


def test_head_logits_under_other_labels_equal_a_second_call_with_them():
    """c_alt re-projects the same features: logits_alt == the head applied with c = c_alt, and
    the labels do matter (a head with no DownBlocks: 5x5 map -> 2x2 logits)."""
    head = pd.DiscHead(8, c_dim=10, cmap_dim=8, embed_dim=6, num_devices=1)
    f = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 5, 16))
    y, y_alt = (jax.nn.one_hot(jnp.array(v), 10) for v in ([1, 2, 3, 4], [5, 2, 0, 9]))

    @jax.jit  # one compile for init and the three calls
    def run(key):
        v = head.init(key, f, y, train=False)
        return (head.apply(v, f, y, train=False, c_alt=y_alt), head.apply(v, f, y, train=False),
                head.apply(v, f, y_alt, train=False))
    (logits, alt), want, want_alt = run(jax.random.PRNGKey(1))
    np.testing.assert_allclose(alt, want_alt, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(logits, want, rtol=1e-6, atol=1e-6)
    assert np.abs(logits[0] - alt[0]).max() > 1e-3  # different labels, different logits
    np.testing.assert_allclose(logits[1], alt[1], rtol=1e-6)  # the same label (2)
    with pytest.raises(ValueError, match="c_alt"):
        jax.eval_shape(lambda: head.init_with_output(jax.random.PRNGKey(0), f, y, train=False,
                                                     c_alt=y_alt[:, :5]))




def test_diffaug_policy_and_fill_reach_the_feature_net_input():
    """A white image through the D's input path: translation alone at fill -1 (the digits'
    black) leaves white and some black pixels only; cutout alone at fill 0 white and some grey."""
    mean, std = (np.asarray(v, np.float32) for v in pd.NORM_STATS[pd.DEIT])
    for policy, fill, dark in (("translation", -1.0, 0.0), ("cutout", 0.0, 0.5)):
        d = pd.ProjectedDiscriminator(**{**TINY, "resize_to": 16}, diffaug_policy=policy,
                                      diffaug_fill=fill)
        out = jax.jit(lambda x, k, d=d: d.bind({})._prepare(pd.DEIT, x, k))(
            jnp.ones((8, 16, 16, 3)), jax.random.PRNGKey(2))
        x01 = np.asarray(out) * std + mean  # the ViT's normalisation undone: [0, 1]
        filled = np.isclose(x01, dark, atol=1e-5)
        assert (filled | np.isclose(x01, 1, atol=1e-5)).all() and filled.any(), policy
