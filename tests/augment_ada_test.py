"""ADA (gan_zoo.augment `ada_augment`, gan_zoo.recipes.ada): the official StyleGAN2-ADA pipeline
outputs (tests/augment_ada_golden.npz, written by benchmarks/ada_vs_official.py from the official
`AugmentPipe`), direct formulas, the draw probabilities, the p update rule by hand, and p in a
tiny StyleGAN2 run (saved, restored, logged)."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import stylegan2 as sg2_config
from gan_zoo import augment, train
from gan_zoo.models import stylegan2
from gan_zoo.recipes import ada, stylegan
from gan_zoo.recipes.base import GANState
from gan_zoo.train import loop as train_loop
from gan_zoo.train import sharding

GOLDEN = pathlib.Path(__file__).with_name("augment_ada_golden.npz")
_geometry = jax.jit(augment.apply_geometry)


def _images(n=4, h=8, w=8, c=3, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), (n, h, w, c), minval=-1.0, maxval=1.0)


def test_p_zero_is_the_identity():
    x = _images()
    fn = jax.jit(augment.ada_augment, static_argnums=3)
    for seed in range(3):
        np.testing.assert_array_equal(fn(jax.random.PRNGKey(seed), x, 0.0, "bgc"), x)
    assert not np.allclose(fn(jax.random.PRNGKey(0), x, 1.0, "bgc"), x)


def test_every_transform_matches_the_official_pipe():
    """One transform at a time and all twelve at once ('bgc'), official debug_percentile
    parameters at q = 0.2, 0.7, 0.9, on an 8x8 RGB image."""
    g = np.load(GOLDEN)
    x = jnp.asarray(g["x"])
    cases = sorted({k for k in g.files if k != "x" and not k.startswith("p__")})
    assert len(cases) == 13 * 3, cases
    for case in cases:
        params = {k.split("__")[2]: g[k] for k in g.files if k.startswith(f"p__{case}__")}
        geom = {k: v for k, v in params.items() if k not in augment._COLOR_KEYS}
        y = _geometry(x, augment.geometry_matrix(geom, 1)) if geom else x
        y = augment.apply_color(y, augment.color_matrix(params, 1))
        np.testing.assert_allclose(y, g[case], atol=2e-5, err_msg=case)


def test_integer_translation_is_a_reflected_shift():
    x = np.asarray(_images(n=2, h=8, w=12))
    shifts = np.asarray([[2, -1], [-3, 1]], np.float32)  # (x, y) pixels
    y = _geometry(x, augment.geometry_matrix({"xint": shifts}, 2))
    pad = np.pad(x, ((0, 0), (8, 8), (12, 12), (0, 0)), mode="reflect")
    for i, (tx, ty) in enumerate(shifts.astype(int)):
        want = pad[i, 8 - ty:16 - ty, 12 - tx:24 - tx]  # out[r, c] = x[r - ty, c - tx]
        np.testing.assert_allclose(y[i], want, atol=1e-5)


def test_brightness_contrast_saturation_match_the_matrix_formula():
    """C = S(s) · diag(c, c, c, 1) · T(b): out = m + s (y - m), y = c (x + b), m = mean_RGB(y)
    (saturation scales the part orthogonal to the luma axis (1, 1, 1)); grey: c (x + b)."""
    b, c, s = np.asarray([0.3, -0.2]), np.asarray([1.5, 0.7]), np.asarray([0.25, 2.0])
    mat = augment.color_matrix({"brightness": b, "contrast": c, "saturation": s}, 2)
    x = np.asarray(_images(n=2))
    y = c[:, None, None, None] * (x + b[:, None, None, None])
    m = y.mean(-1, keepdims=True)
    np.testing.assert_allclose(augment.apply_color(x, mat), m + s[:, None, None, None] * (y - m),
                               atol=1e-5)
    grey = x[..., :1]
    np.testing.assert_allclose(augment.apply_color(grey, mat),
                               c[:, None, None, None] * (grey + b[:, None, None, None]),
                               atol=1e-5)
    with pytest.raises(ValueError, match="3 \\(RGB\\) or 1 \\(grey\\) channels"):
        augment.apply_color(x[..., :2], mat)


def test_draws_follow_the_official_probabilities_and_ranges():
    n, p, key = 20_000, 0.5, jax.random.PRNGKey(1)
    geo = augment.draw_geometry(key, p, augment.ADA_PIPES["bgc"], n, 16, 32)
    col = augment.draw_color(jax.random.PRNGKey(2), p, augment.ADA_PIPES["bgc"], n, 3)
    frac = lambda a, ident: float(np.mean(np.any(  # noqa: E731
        np.asarray(a).reshape(n, -1) != ident, axis=1)))
    # P(non-identity): gate p times P(draw != identity) (flip 1/2, quarter turns 3/4).
    expected = {"xflip": p / 2, "rotate90": p * 3 / 4, "scale": p, "aniso": p, "xfrac": p,
                "brightness": p, "contrast": p, "lumaflip": p / 2, "hue": p, "saturation": p}
    for name, want in expected.items():
        got = frac((geo | col)[name], 1.0 if name in ("scale", "aniso", "contrast",
                                                      "saturation") else 0.0)
        assert abs(got - want) < 0.02, (name, got, want)
    # Rotation: P(pre or post) = p, each 1 - sqrt(1 - p).
    rot = np.asarray(geo["rotate_pre"] != 0) | np.asarray(geo["rotate_post"] != 0)
    assert abs(rot.mean() - p) < 0.02
    assert np.abs(geo["rotate_pre"]).max() <= np.pi
    # Integer translation: gate p, |t| <= round(0.125 * size) pixels, whole pixels.
    t = np.asarray(geo["xint"])
    assert np.array_equal(t, np.round(t)) and np.abs(t[:, 0]).max() == 4
    assert np.abs(t[:, 1]).max() == 2 and abs(np.any(t != 0, 1).mean() - p) < 0.03


def _state(step: int, scalars: dict) -> GANState:
    return GANState(step=jnp.asarray(step, jnp.int32), rng=None, params={}, opt_state={},
                    ema_params=None, collections={}, scalars=scalars)


def test_p_update_rule_by_hand():
    """Batch 4, interval 2, ada_kimg 0.032: each move is ±4·2 / 32 = 0.25 (target 0.6)."""
    signs = [[1, 1, 1, 1], [1, 1, 1, 1],  # r = 1 > 0.6: p 0 -> 0.25
             [1, 1, -1, -1], [1, 1, -1, -1],  # r = 0: p -> 0
             [1, 1, 1, -1], [1, 1, 1, -1],  # r = 0.5: p stays clipped at 0
             [1, 1, 1, 1], [1, 1, 1, -1],  # r = 7/8: p -> 0.25
             [1, 1, 1, 0], [1, 1, 1, 1],  # r = 7/8 (sign 0 counts as 0): p -> 0.5
             [1, 1, -1, -1], [1, 1, 1, 1]]  # r = 0.5: p -> 0.25
    want_p = [0, .25, .25, 0, 0, 0, 0, .25, .25, .5, .5, .25]
    scalars = ada.ada_scalars()
    for step, s in enumerate(signs):
        logits = jnp.asarray(s, jnp.float32) * (step + 1.5)  # any magnitude: only signs count
        state = _state(step, ada.count_signs(scalars, logits))
        if step == 0:
            assert (float(state.scalars["ada_signs"]), float(state.scalars["ada_count"])) == (4, 4)
        scalars = ada.ada_post_step(state, batch=4, interval=2, target=0.6,
                                    ada_kimg=0.032).scalars
        assert float(scalars["ada_p"]) == pytest.approx(want_p[step]), step
        assert float(scalars["ada_count"]) == (4 if step % 2 == 0 else 0), step
    # No sample counted: p unchanged.
    assert float(augment.ada_adjust(0.3, 0.0, 0.0, 0.6, 4, 2, 0.032)[0]) == pytest.approx(0.3)


def test_gradient_reaches_the_images_as_the_adjoint():
    """ada_augment is affine in x for a fixed key: f(x) = <A x + b, w> has gradient A^T w, so
    f(x) - f(0) = <x, grad f>; and the gradient is not zero."""
    x, w = _images(n=3, seed=1), _images(n=3, seed=2)
    key = jax.random.PRNGKey(5)
    f = jax.jit(jax.value_and_grad(lambda v: jnp.sum(augment.ada_augment(key, v, 1.0) * w)))
    (fx, grad), (f0, _) = f(x), f(jnp.zeros_like(x))
    assert float(jnp.sum(jnp.abs(grad))) > 1.0
    np.testing.assert_allclose(fx - f0, jnp.sum(x * grad), rtol=1e-4)


def test_config_modes_and_errors():
    assert sg2_config.get_config("ffhq1024").augment == "none"  # StyleGAN2 paper: no ADA
    c = sg2_config.get_config("photos")
    c.augment = "adaptive"
    with pytest.raises(ValueError, match="config.augment: expected one of"):
        ada.augment_setting(c)
    c.augment, c.train.ada_interval = "ada", 0
    with pytest.raises(ValueError, match="config.train.ada_interval"):
        ada.augment_setting(c)
    with pytest.raises(ValueError, match="unknown pipe 'bgcx'"):
        augment.ada_augment(jax.random.PRNGKey(0), _images(), 0.5, "bgcx")


@pytest.mark.parametrize("mode", ["none", "fixed", "ada"])
def test_recipe_state_holds_p_only_with_ada(mode):
    c = sg2_config.get_config("photos")
    c.augment = mode
    recipe = stylegan.make_recipe(c, _tiny_networks())
    shapes = jax.eval_shape(lambda k: recipe.init_state(k, c), jax.random.PRNGKey(0)).scalars
    ada_keys = {"ada_p", "ada_signs", "ada_count"}
    assert (ada_keys <= set(shapes)) == (mode == "ada"), shapes
    assert (recipe.post_step is not None) == (mode == "ada")


def _tiny_networks():
    d = stylegan2.Discriminator(0, 32, channel_base=128, channel_max=8, mapping_layers=1)
    g = stylegan2.generator("config-f_test", img_resolution=32, z_dim=8, w_dim=8,
                            mapping_layers=1, channel_base=128, channel_max=8)
    return g, d


@pytest.fixture(scope="module")
def ada_run(tmp_path_factory):
    """A tiny StyleGAN2 run with ADA, 3 steps, and its checkpoint restored. ada_interval 2,
    target -2 (every move is up: +8·2 / 80 = 0.2), lazy R1 every 2 steps, no path length."""
    c = sg2_config.get_config("photos")
    c.augment = "ada"
    c.train.update(batch_size=8, num_steps=3, d_reg_interval=2, pl_weight=0.0, ada_interval=2,
                   ada_target=-2.0, ada_kimg=0.08)
    c.checkpoint.every_steps, c.checkpoint.use_async = 3, False
    c.log.every_steps, c.log.image_every_steps, c.log.grid_size = 1, 0, 4
    g, d = _tiny_networks()
    workdir = str(tmp_path_factory.mktemp("ada_run"))
    final, history = train.run(c, workdir, networks=(g, d))
    _, restored, _ = train_loop.restore_run(c, workdir, sharding.make_mesh(c.mesh), (g, d))
    return final, restored, history


@pytest.mark.slow  # one tiny StyleGAN2 run: ~54 CPU-s, mostly the step's compile
def test_run_counts_signs_restores_and_logs_p(ada_run):
    final, restored, history = ada_run
    f = {k: float(v) for k, v in final.scalars.items()}
    # Step 1 (batch_idx 2) moved p up once and reset the counts; step 2 counted its D-main 8
    # reals and R1's 8 (official: the R1 phase's real signs count too).
    assert (int(final.step), f["ada_count"], f["ada_p"]) == (3, 16.0, pytest.approx(0.2))
    assert abs(f["ada_signs"]) <= 16 and f["ada_signs"] == round(f["ada_signs"])
    for k, v in final.scalars.items():  # what a resumed run starts from
        np.testing.assert_array_equal(restored.scalars[k], v, err_msg=k)
    logged = {step: m["d/augment_p"] for step, m in history}  # p each D step used
    assert (logged[1], logged[2]) == (0.0, 0.0) and logged[3] == pytest.approx(0.2), logged
