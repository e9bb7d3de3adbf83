"""BigGAN D's optional minibatch-stddev input (config.model.d_mbstd_group; issue #16 item 2): off
(0, the default: the paper's D, whose logits test_golden pins) builds the same parameters; on,
the last block takes one more channel and a sample's logit depends on the other samples of its
group of consecutive samples and on no others; BigGAN-deep's D the same, its skip dropping
the std channel; config.model.d_mbstd_channels widens both Ds by that many std maps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.models import biggan

ROW = dict(biggan.VARIANTS["biggan_test"], D_attn="0")  # res 32, ch 4: last block 16 -> 16


def _shapes(D, x, y):
    return jax.eval_shape(lambda: D.init(jax.random.PRNGKey(0), x, y, train=False))


def _random_vars(shapes, seed):
    """Random-valued variables of the given shapes (cheaper than D.init's orthogonal init)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: 0.3 * rng.standard_normal(s.shape).astype(s.dtype), shapes)


def test_d_mbstd_group_params_and_group_dependence():
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 32, 32, 3))
    y = jnp.arange(8) % 10
    D_off = biggan.make_discriminator(ROW)
    assert D_off == biggan.make_discriminator(dict(ROW, d_mbstd_group=0))  # the default: off
    off = _shapes(D_off, x, y)
    D_on = biggan.make_discriminator(dict(ROW, d_mbstd_group=4))
    on = _shapes(D_on, x, y)
    # +1 input channel of the last block's 3x3 conv1, and a learnable 1x1 shortcut (17 != 16).
    o = off["params"]["blocks_3_0"]["conv2"]["weight"].shape[-1]  # 16
    count = lambda t: sum(int(np.prod(a.shape)) for a in jax.tree.leaves(t["params"]))
    assert count(on) == count(off) + 9 * o + (o + 1) * o + o
    # Groups of 4 consecutive samples: {0..3}, {4..7}. Change sample 1 only (without the
    # layer every logit is a function of its own sample: D_off == the paper's D above).
    apply = jax.jit(lambda v, x: D_on.apply(v, x, y, train=False)[0])
    variables = _random_vars(on, 2)
    logits, moved = apply(variables, x), apply(variables, x.at[1].multiply(-1.0))
    assert moved[1] != logits[1] and moved[0] != logits[0]  # its group's other members
    np.testing.assert_array_equal(moved[4:], logits[4:])  # never the other group


def test_deep_d_mbstd_group_skip_drops_the_std_channel():
    """BigGAN-deep D, same field: the last bottleneck block's 1x1 conv1 takes one more input
    channel, its skip drops it (no new shortcut conv), a logit depends only on its group."""
    row = dict(biggan.VARIANTS["biggan-deep_test"], D_attn="0")  # ch 8: last block 32 -> 32
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 3))
    y = jnp.arange(4)
    D_off = biggan.make_discriminator(row)
    assert D_off == biggan.make_discriminator(dict(row, d_mbstd_group=0))  # the default: off
    D_on = biggan.make_discriminator(dict(row, d_mbstd_group=2))
    on_vars = _shapes(D_on, x, y)
    off, on = _shapes(D_off, x, y)["params"], on_vars["params"]
    shape = lambda t, k: t["blocks_2_1"][k]["weight"].shape
    hid = shape(off, "conv1")[-1]  # 32 // 4
    assert shape(on, "conv1") == shape(off, "conv1")[:-2] + (33, hid)  # [1, 1, I + 1, O]
    assert "conv_sc" not in on["blocks_2_1"]
    count = lambda t: sum(int(np.prod(a.shape)) for a in jax.tree.leaves(t))
    assert count(on) == count(off) + hid
    # Change sample 3 only: its group {2, 3} moves, the group {0, 1} does not.
    apply = jax.jit(lambda v, x: D_on.apply(v, x, y, train=False)[0])
    variables = _random_vars(on_vars, 3)
    logits, moved = apply(variables, x), apply(variables, x.at[3].multiply(-1.0))
    assert moved[2] != logits[2]
    np.testing.assert_array_equal(moved[:2], logits[:2])


def test_d_mbstd_channels_widen_the_last_block_and_name_the_field():
    """config.model.d_mbstd_channels (default 1): F std maps, one per chunk of C / F features
    (StyleGAN2's mbstd_num_channels). BigGAN D: conv1 and the 1x1 shortcut take F more inputs;
    BigGAN-deep D: conv1 takes F more, the skip drops all F. A count not dividing C is refused."""
    x, y = jnp.zeros((4, 32, 32, 3)), jnp.arange(4)
    count = lambda t: sum(int(np.prod(a.shape)) for a in jax.tree.leaves(t["params"]))
    one = _shapes(biggan.make_discriminator(dict(ROW, d_mbstd_group=4)), x, y)
    two = _shapes(biggan.make_discriminator(dict(ROW, d_mbstd_group=4, d_mbstd_channels=2)), x, y)
    o = one["params"]["blocks_3_0"]["conv2"]["weight"].shape[-1]  # 16
    assert two["params"]["blocks_3_0"]["conv1"]["weight"].shape[-2] == o + 2  # [3, 3, I + F, O]
    assert count(two) == count(one) + 9 * o + o  # conv1 and the shortcut: one more input each
    deep = dict(biggan.VARIANTS["biggan-deep_test"], D_attn="0", d_mbstd_group=2)
    d1 = _shapes(biggan.make_discriminator(deep), x, y)
    d2 = _shapes(biggan.make_discriminator(dict(deep, d_mbstd_channels=2)), x, y)
    conv1 = d2["params"]["blocks_2_1"]["conv1"]["weight"].shape  # [1, 1, 32 + 2, 8]
    assert conv1[-2:] == (34, 8) and "conv_sc" not in d2["params"]["blocks_2_1"]
    assert count(d2) == count(d1) + conv1[-1]
    with pytest.raises(ValueError, match="d_mbstd_channels=3"):  # 16 channels
        _shapes(biggan.make_discriminator(dict(ROW, d_mbstd_group=4, d_mbstd_channels=3)), x, y)
