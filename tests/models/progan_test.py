"""ProGAN networks: PG Table 2 parameter counts, fade-in identities, labels, mbstd definition."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.models import progan
from gan_zoo.ops import minibatch_std


@functools.partial(jax.jit, static_argnames=("module", "res"))
def _apply(module, params, x, labels=None, *, res, alpha=1.0):
    """Jitted forward (one compile per module and res; faster than eager on a busy CPU)."""
    return module.apply({"params": params}, x, labels, res=res, alpha=alpha)


def _count(tree) -> int:
    return int(sum(np.prod(a.shape) for a in jax.tree.leaves(tree)))


def _abstract_params(module, x, **kw):
    return jax.eval_shape(lambda: module.init(jax.random.key(0), x, **kw))["params"]


def _conv_params(k, cin, cout):
    return k * k * cin * cout + cout


# PG Table 2, left (spec B3), row by row: (kernel, in, out); the 4x4 "conv" is a 512 -> 16*512 FC.
G_TABLE_1024 = ([(1, 512, 16 * 512), (3, 512, 512)]
                + [(3, 512, 512)] * 6
                + [(3, 512, 256), (3, 256, 256), (3, 256, 128), (3, 128, 128), (3, 128, 64),
                   (3, 64, 64), (3, 64, 32), (3, 32, 32), (3, 32, 16), (3, 16, 16), (1, 16, 3)])
# PG Table 2, right (spec B4): fromRGB, 16 convs, conv after mbstd (513 in), 4x4 conv = FC, FC.
D_TABLE_1024 = ([(1, 3, 16), (3, 16, 16), (3, 16, 32), (3, 32, 32), (3, 32, 64), (3, 64, 64),
                 (3, 64, 128), (3, 128, 128), (3, 128, 256), (3, 256, 256), (3, 256, 512)]
                + [(3, 512, 512)] * 6
                + [(3, 513, 512), (1, 16 * 512, 512), (1, 512, 1)])


def _table_count(rows) -> int:
    return sum(_conv_params(k, i, o) for k, i, o in rows)


def test_table2_rows_sum_to_spec_total():
    # Spec B3: "I recomputed the total from the table: 23.07M" (23,079,187 exactly).
    assert _table_count(G_TABLE_1024) == 23_079_187
    assert _table_count(D_TABLE_1024) == 23_077_137
    for n in (_table_count(G_TABLE_1024), _table_count(D_TABLE_1024)):
        assert 23.07e6 <= n < 23.08e6 and abs(n - 23.1e6) / 23.1e6 < 1e-3


def _expected_counts(v: dict, n_classes: int = 0) -> tuple:
    """(G, D) parameter counts for a variant: Table 2's layers + one toRGB/fromRGB per level."""
    def ch(r):
        return progan.channels(r, v["fmap_base"], v["fmap_max"])
    res = progan.resolutions(v["resolution"])
    z, c4, nf0 = v["latent_size"], ch(4), progan.nf(0, v["fmap_base"], v["fmap_max"])
    g = _conv_params(1, z + n_classes, 16 * c4) + _conv_params(3, c4, c4)
    g += sum(_conv_params(3, ch(r // 2), ch(r)) + _conv_params(3, ch(r), ch(r)) for r in res[1:])
    g += sum(_conv_params(1, ch(r), 3) for r in res)
    d = sum(_conv_params(1, 3, ch(r)) for r in res)
    d += sum(_conv_params(3, ch(r), ch(r)) + _conv_params(3, ch(r), ch(r // 2)) for r in res[1:])
    d += _conv_params(3, c4 + 1, c4) + _conv_params(1, 16 * c4, nf0)
    d += _conv_params(1, nf0, 1 + n_classes)
    return g, d


def test_celebahq_1024_counts_match_table2():
    G, D = progan.make_generator("celebahq-1024"), progan.make_discriminator("celebahq-1024")
    g = _count(_abstract_params(G, jnp.zeros((2, 512)), res=4))
    d = _count(_abstract_params(D, jnp.zeros((2, 4, 4, 3)), res=4))
    # Table 2 lists only the final toRGB / fromRGB; the lower-resolution ones come on top.
    lower_torgb = sum(_conv_params(1, progan.channels(r, 8192, 512), 3)
                      for r in progan.resolutions(512))
    lower_fromrgb = sum(_conv_params(1, 3, progan.channels(r, 8192, 512))
                        for r in progan.resolutions(512))
    assert g - lower_torgb == _table_count(G_TABLE_1024) == 23_079_187
    assert d - lower_fromrgb == _table_count(D_TABLE_1024)


@pytest.mark.parametrize("name", sorted(progan.VARIANTS))
@pytest.mark.parametrize("n_classes", [0, 10])
def test_variant_param_counts(name, n_classes):
    v = progan.VARIANTS[name]
    G = progan.make_generator(name, n_classes)
    D = progan.make_discriminator(name, n_classes)
    y = jnp.zeros((2,), jnp.int32) if n_classes else None
    g = _count(_abstract_params(G, jnp.zeros((2, v["latent_size"])), labels=y, res=4))
    d = _count(_abstract_params(D, jnp.zeros((2, 4, 4, 3)), res=4))
    assert (g, d) == _expected_counts(v, n_classes)


def test_param_tree_does_not_depend_on_res():
    G, D = progan.make_generator("_test32"), progan.make_discriminator("_test32")
    z = jnp.zeros((2, 8))
    shapes = lambda t: jax.tree.map(lambda a: a.shape, t)  # noqa: E731
    ref_g = shapes(_abstract_params(G, z, res=4))
    ref_d = shapes(_abstract_params(D, jnp.zeros((2, 4, 4, 3)), res=4))
    for r in (8, 16, 32):
        assert shapes(_abstract_params(G, z, res=r)) == ref_g
        assert shapes(_abstract_params(D, jnp.zeros((2, r, r, 3)), res=r)) == ref_d


def _random_params(module, x, labels=None, seed=0):
    """N(0, 1) for every parameter (as equalized-lr init, plus non-zero biases so the checks see
    every term), built from eval_shape with NumPy: no init compile on a busy CPU."""
    rng = np.random.default_rng(seed)
    shapes = _abstract_params(module, x, labels=labels, res=4)
    return jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32), shapes)


@pytest.fixture(scope="module")
def nets():
    G, D = progan.make_generator("_test"), progan.make_discriminator("_test")
    return (G, D, _random_params(G, jnp.zeros((2, 8)), seed=1),
            _random_params(D, jnp.zeros((2, 4, 4, 3)), seed=2))


def _perturb(params, prefix):
    return {k: (jax.tree.map(lambda a: a + 1.0, v) if k.startswith(prefix) else v)
            for k, v in params.items()}


def test_generator_alpha0_equals_previous_upsampled(nets):
    G, _, gp, _ = nets
    z = jax.random.normal(jax.random.key(5), (4, 8))
    prev, _ = _apply(G, gp, z, res=8, alpha=1.0)
    grown, aux = _apply(G, gp, z, res=16, alpha=0.0)
    assert grown.shape == (4, 16, 16, 3) and prev.shape == (4, 8, 8, 3)
    np.testing.assert_allclose(grown, progan.upsample_nn(prev), rtol=1e-6, atol=1e-6)
    half, _ = _apply(G, gp, z, res=16, alpha=0.25)
    np.testing.assert_allclose(half, 0.75 * aux["rgb_old"] + 0.25 * aux["rgb_new"], atol=1e-5)


def test_generator_alpha1_uses_only_new_path(nets):
    G, _, gp, _ = nets
    z = jax.random.normal(jax.random.key(6), (4, 8))
    out, aux = _apply(G, gp, z, res=16, alpha=1.0)
    np.testing.assert_allclose(out, aux["rgb_new"], atol=1e-6)
    out2, _ = _apply(G, _perturb(gp, "torgb8"), z, res=16, alpha=1.0)
    np.testing.assert_array_equal(out, out2)
    out3, _ = _apply(G, _perturb(gp, "torgb8"), z, res=16, alpha=0.5)
    assert not np.allclose(out, out3)


def test_discriminator_alpha0_equals_previous_on_downsampled(nets):
    _, D, _, dp = nets
    x = jax.random.normal(jax.random.key(7), (4, 16, 16, 3))
    grown, _ = _apply(D, dp, x, res=16, alpha=0.0)
    prev, _ = _apply(D, dp, progan.avgpool2(x), res=8, alpha=1.0)
    assert grown.shape == (4,)
    np.testing.assert_allclose(grown, prev, rtol=1e-5, atol=1e-5)


def test_discriminator_alpha1_uses_only_new_path(nets):
    _, D, _, dp = nets
    x = jax.random.normal(jax.random.key(8), (4, 16, 16, 3))
    s, _ = _apply(D, dp, x, res=16, alpha=1.0)
    s2, _ = _apply(D, _perturb(dp, "fromrgb8"), x, res=16, alpha=1.0)
    np.testing.assert_array_equal(s, s2)
    s3, _ = _apply(D, _perturb(dp, "fromrgb8"), x, res=16, alpha=0.5)
    assert not np.allclose(s, s3)


def test_alpha_is_traced(nets):
    G, _, gp, _ = nets
    z = jnp.ones((2, 8))
    f = jax.jit(lambda a: _apply(G, gp, z, res=16, alpha=a)[0])
    np.testing.assert_allclose(f(0.0), _apply(G, gp, z, res=16, alpha=0.0)[0],
                               atol=1e-6)
    assert f._cache_size() == 1 and f(0.7).shape == (2, 16, 16, 3) and f._cache_size() == 1


def test_labels_condition_outputs():
    G = progan.make_generator("_test", n_classes=5)
    D = progan.make_discriminator("_test", n_classes=5)
    z = jnp.tile(jax.random.normal(jax.random.key(9), (1, 8)), (2, 1))
    y = jnp.array([0, 3])
    gp = _random_params(G, z, y, seed=3)
    img, _ = _apply(G, gp, z, y, res=16)
    assert not np.allclose(img[0], img[1], atol=1e-4)  # same z, different label
    dp = _random_params(D, jnp.zeros((2, 4, 4, 3)), seed=4)
    scores, aux = _apply(D, dp, img, res=16)
    assert scores.shape == (2,) and aux["class_logits"].shape == (2, 5)
    with pytest.raises(ValueError, match="labels"):
        _apply(G, gp, z, res=16)


def test_bad_inputs_raise(nets):
    G, D, gp, dp = nets
    with pytest.raises(ValueError, match="res must be one of"):
        _apply(G, gp, jnp.zeros((2, 8)), res=12)
    with pytest.raises(ValueError, match="Discriminator: x"):
        _apply(D, dp, jnp.zeros((2, 8, 8, 3)), res=16)
    with pytest.raises(ValueError, match="unknown variant"):
        progan.make_generator("nope")


def test_minibatch_std_matches_progan_definition():
    """PG §3: std over the group per feature and pixel, averaged over C, H, W -> one extra map.
    `minibatch_std(x, G, 1)` is exactly ProGAN's layer (official reshape: strided groups)."""
    x = np.random.default_rng(0).normal(size=(8, 4, 4, 6)).astype(np.float32)
    for g in (8, 4):
        out = np.asarray(minibatch_std(jnp.asarray(x), g, 1))
        groups = x.reshape(g, 8 // g, 4, 4, 6)  # sample i in group i % (8 // g)
        stat = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))  # [8 // g]
        expect = np.tile(stat, g)  # [8]
        np.testing.assert_allclose(out[..., :6], x)
        np.testing.assert_allclose(out[..., 6], np.broadcast_to(expect[:, None, None], (8, 4, 4)),
                                   rtol=1e-5)
