"""StyleGAN-XL recipe (fast checks): losses against direct formulas, the classifier's input
preparation, the stage plan of the presets, the optimizer step skip, the recipe's phases and
learning rates, weight-file errors. The training runs are in stylegan_xl_run_test.py."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import stylegan_xl as xl_config
from gan_zoo import recipes
from gan_zoo.feature_nets import vit
from gan_zoo.recipes import stylegan_xl as xl_recipe
from gan_zoo.recipes import stylegan_xl_nets as xl_nets

RNG = np.random.default_rng(0)


def _random_config(arg="imagenet,res=64"):
    c = xl_config.get_config(arg)
    c.model.feature_nets = "random"
    return c


# ----- Losses -----

def test_hinge_over_heads_matches_the_formula():
    """L_D = Σ_l mean(relu(1 − D_l(x))) + mean(relu(1 + D_l(G(z)))), L_G = Σ_l mean(−D_l(G(z)))
    over heads of different sizes."""
    shapes = {"a/0": (3, 5, 5), "a/1": (3, 1, 1), "b/0": (3, 4, 4)}
    real = {k: RNG.normal(size=s).astype(np.float32) * 2 for k, s in shapes.items()}
    fake = {k: RNG.normal(size=s).astype(np.float32) * 2 for k, s in shapes.items()}
    want_real = sum(np.maximum(1 - real[k], 0).mean() for k in shapes)
    want_fake = sum(np.maximum(1 + fake[k], 0).mean() for k in shapes)
    loss, (lr, lf) = xl_recipe.hinge_d_heads(real, fake)
    np.testing.assert_allclose([loss, lr, lf], [want_real + want_fake, want_real, want_fake],
                               rtol=1e-6)
    np.testing.assert_allclose(xl_recipe.hinge_g_heads(fake),
                               sum(-fake[k].mean() for k in shapes), rtol=1e-6)


def test_mismatch_term_and_class_margin_match_their_formulas():
    """L_D + w · Σ_l mean(relu(1 + D_l(x, y'))) (GAN-CLS matching-aware term, hinge); w = 0 is
    hinge_d_heads exactly. Margin: s = Σ_l mean_hw D_l per sample, mean(s − s') and P(s > s')."""
    shapes = {"a/0": (4, 3, 3), "a/1": (4, 1, 1)}
    real, fake, alt = ({k: RNG.normal(size=s).astype(np.float32) * 2 for k, s in shapes.items()}
                       for _ in range(3))
    base, _ = xl_recipe.hinge_d_heads(real, fake)
    loss0, parts0 = xl_recipe.d_loss(real, fake, alt, 0.0)
    assert float(loss0) == float(base) and "loss_mismatch" not in parts0
    want_m = sum(np.maximum(1 + alt[k], 0).mean() for k in shapes)
    loss, parts = xl_recipe.d_loss(real, fake, alt, 0.5)
    np.testing.assert_allclose([loss, parts["loss_mismatch"]], [base + 0.5 * want_m, want_m],
                               rtol=1e-6)
    # The same term on fakes under wrong labels (train.mismatch_fake_weight), alone and with it.
    alt_f = {k: v[::-1] - 0.5 for k, v in alt.items()}
    want_f = sum(np.maximum(1 + alt_f[k], 0).mean() for k in shapes)
    loss, parts = xl_recipe.d_loss(real, fake, None, 0.0, alt_f, 2.0)
    np.testing.assert_allclose([loss, parts["loss_mismatch_fake"]], [base + 2 * want_f, want_f],
                               rtol=1e-6)
    assert "loss_mismatch" not in parts
    loss, _ = xl_recipe.d_loss(real, fake, alt, 0.5, alt_f, 2.0)
    np.testing.assert_allclose(loss, base + 0.5 * want_m + 2 * want_f, rtol=1e-6)
    s = sum(real[k].reshape(4, -1).mean(1) for k in shapes)
    s_alt = sum(alt[k].reshape(4, -1).mean(1) for k in shapes)
    margin, pairwise = xl_recipe.class_margin(real, alt)
    np.testing.assert_allclose([margin, pairwise], [(s - s_alt).mean(), (s > s_alt).mean()],
                               rtol=1e-5)


def test_classifier_guidance_is_cross_entropy_against_the_class():
    logits = RNG.normal(size=(4, 7)).astype(np.float32) * 3
    labels = np.array([0, 6, 3, 3])
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    want = -np.mean(np.log(p[np.arange(4), labels]))
    np.testing.assert_allclose(xl_recipe.classifier_guidance(jnp.asarray(logits), labels), want,
                               rtol=1e-5)


def test_classifier_input_is_unit_range_imagenet_normalised():
    """[-1, 1] -> [0, 1] -> (x − mean) / std (ImageNet), resized to the classifier's side."""
    net = vit.make("_test", image_size=16, patch=8, num_classes=5, depth=1)
    clf = xl_nets.Classifier(net, 16)
    img = jnp.asarray(RNG.uniform(-1, 1, size=(2, 16, 16, 3)), jnp.float32)
    v = jax.jit(net.init)(jax.random.PRNGKey(0), img)  # jitted: one compile, not op by op
    x = ((np.asarray(img) + 1) / 2 - np.array(vit.IMAGENET_MEAN)) / np.array(vit.IMAGENET_STD)
    got = jax.jit(clf.logits)(v, img)
    want = jax.jit(lambda v, x: net.apply(v, x)[0])(v, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ----- Stages -----

def test_stage_plan_of_the_presets():
    plan = xl_recipe.stage_plan(_random_config("imagenet,res=64"))
    # Spec §1.7 batches 2048, 2048, 256; 25,000 kimg each -> ceil(25e6 / batch) steps.
    assert [(s.res, s.stem, s.batch, s.start_step, s.steps) for s in plan] == [
        (16, True, 2048, 0, 12_208), (32, False, 2048, 12_208, 12_208),
        (64, False, 256, 24_416, 97_657)]
    digits = xl_recipe.stage_plan(xl_config.get_config("digits"))
    # 9.6 and 28.8 kimg at batch 16.
    assert [(s.res, s.batch, s.steps) for s in digits] == [(16, 16, 600), (32, 16, 1800)]
    stages = [xl_recipe.stage_at(digits, s) for s in (0, 599, 600, 2399, 10_000)]
    assert [(s.name, s.key, s.batch_size) for s in stages] == [
        ("res16", 16, 16), ("res16", 16, 16), ("res32", 32, 16), ("res32", 32, 16),
        ("res32", 32, 16)]
    warm = _random_config("imagenet,res=64")
    warm.init_from = "/some/run"  # a warm start trains the final stage only (official superres)
    assert [s.res for s in xl_recipe.stage_plan(warm)] == [64]


def test_recipe_phases_learning_rates_and_guidance_per_stage():
    config = _random_config("imagenet,res=64")
    recipe = recipes.make_recipe(config)
    assert recipe.num_steps == 12_208 * 2 + 97_657
    phases = {r: [(p.name, p.every) for p in recipe.stage_recipe(r).phases] for r in (16, 32, 64)}
    # Path length on the stem only (lazy, every 4); D has no regulariser phase.
    assert phases == {16: [("g", 1), ("g_pl", 4), ("d", 1)], 32: [("g", 1), ("d", 1)],
                      64: [("g", 1), ("d", 1)]}
    np.testing.assert_allclose(recipe.learning_rates["g"](0), 0.0025 * 4 / 5, rtol=1e-6)
    np.testing.assert_allclose(recipe.learning_rates["d"](0), 0.002 * 16 / 17, rtol=1e-6)
    nets = {r: recipe.stage_recipe(r).phases[0].loss_fn.args[0] for r in (16, 32, 64)}
    assert [nets[r].cls_weight for r in (16, 32, 64)] == [0.0, 0.0, 8.0]  # only above 32^2
    assert [nets[r].G.img_resolution for r in (16, 32, 64)] == [16, 32, 64]
    # A stem that ends before pl_start_kimg (digits: 600 steps of 16 < 1,000 kimg) has no g_pl
    # phase; it has one once the start falls inside the stem (the last step's images count).
    config = xl_config.get_config("digits")
    names = lambda c: [p.name for p in recipes.make_recipe(c).stage_recipe(16).phases]  # noqa: E731
    assert names(config) == ["g", "d"]
    config.train.pl_start_kimg = 599 * 16 / 1000
    assert names(config) == ["g", "g_pl", "d"]
    config.train.pl_start_kimg = 600 * 16 / 1000
    assert names(config) == ["g", "d"]


def test_missing_weight_file_names_the_field_and_timm_id():
    config = xl_config.get_config("imagenet,res=64")
    with pytest.raises(FileNotFoundError, match="config.model.effnet_weights.*"
                                                "tf_efficientnet_lite0"):
        recipes.make_recipe(config)
    config.model.effnet_weights = __file__  # exists
    with pytest.raises(FileNotFoundError, match="config.model.deit_weights.*"
                                                "deit_base_distilled_patch16_224"):
        recipes.make_recipe(config)
    config.model.deit_weights = "/nonexistent/w.safetensors"
    with pytest.raises(FileNotFoundError, match="config.model.deit_weights=/nonexistent"):
        recipes.make_recipe(config)
    config = xl_config.get_config("imagenet,res=64")
    config.model.deit_weights = config.model.effnet_weights = __file__  # exists
    with pytest.raises(FileNotFoundError, match="clf_weights.*deit_small_distilled_patch16_224"):
        recipes.make_recipe(config)
    config = xl_config.get_config("imagenet,res=32")  # no guidance stage: no classifier needed
    config.model.deit_weights = config.model.effnet_weights = __file__
    recipes.make_recipe(config)


def test_presets_build():
    for preset in ("imagenet", "ffhq", "pokemon", "cifar10", "digits", "digits,smoke"):
        c = xl_config.get_config(preset)
        plan = xl_recipe.stage_plan(c)
        assert plan[0].res == 16 and plan[-1].res == c.model.resolution, preset
    assert xl_config.get_config("imagenet,res=256").model.resolution == 256
    # The mapping's lr multiplier: the paper's 0.01 unless config.model sets it.
    config = xl_config.get_config("digits")
    assert xl_nets.make_generator(config).mapping_lr_multiplier == 0.01
    config.model.mapping_lr_multiplier = 1.0
    assert xl_nets.make_generator(config).mapping_lr_multiplier == 1.0
    # The D's DiffAugment: the official policy at fill 0 unless config.model sets it.
    d = xl_nets.make_discriminator(config, 1)
    assert (d.diffaug_policy, d.diffaug_fill) == ("color,translation,cutout", 0.0)
    config.model.d_diffaug_policy, config.model.d_diffaug_fill = "translation", -1.0
    d = xl_nets.make_discriminator(config, 1)
    assert (d.diffaug_policy, d.diffaug_fill) == ("translation", -1.0)
    config.model.d_diffaug_policy = "translation,flip"
    with pytest.raises(ValueError, match="config.model.d_diffaug_policy.*flip"):
        xl_nets.make_discriminator(config, 1)
    config = xl_config.get_config("ffhq,res=16")  # unconditional: no wrong labels to draw
    config.train.mismatch_fake_weight = 1.0
    with pytest.raises(ValueError, match="config.train.mismatch_fake_weight=1.0 needs labels"):
        recipes.make_recipe(config)
    config = xl_config.get_config("digits")
    config.train.mismatch_weight = -1.0
    with pytest.raises(ValueError, match="config.train.mismatch_weight must be a number >= 0"):
        recipes.make_recipe(config)
    with pytest.raises(ValueError, match="stage_kimg"):
        c = xl_config.get_config("digits")
        c.train.stage_kimg = {"16": 1.0}
        xl_recipe.stage_plan(c)


# ----- Optimizer -----

def test_zero_gradients_skip_the_adam_step():
    tx = xl_recipe.skip_zero_grads(optax.adam(0.1, b1=0.0, b2=0.99))
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    u, state = tx.update({"w": jnp.array([1.0, -2.0, 0.5])}, state)
    u0, state0 = tx.update({"w": jnp.zeros(3)}, state)
    np.testing.assert_array_equal(u0["w"], 0.0)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(state0)):  # count and moments kept
        np.testing.assert_array_equal(a, b)
    ref = optax.adam(0.1, b1=0.0, b2=0.99)
    s = ref.init(params)
    _, s = ref.update({"w": jnp.array([1.0, -2.0, 0.5])}, s)
    g = {"w": jnp.array([0.3, 0.1, -1.0])}
    np.testing.assert_allclose(tx.update(g, state0)[0]["w"], ref.update(g, s)[0]["w"],
                               rtol=1e-6)


# ----- Weight files -----

@pytest.mark.slow  # ~40 s on a loaded 2-core box: compiles the state init
def test_weight_files_are_loaded_after_init_into_the_frozen_d(tmp_path):
    """config.model.deit_weights (a timm-named .npz) ends up in the D's frozen ViT of a fresh
    state (Recipe.load_frozen, on the host after the jitted init); the classifier heads of the
    file are not used by the D."""
    from gan_zoo.convert import vit as vit_convert
    from gan_zoo.models import projected_d as pd
    from gan_zoo.train import loop, sharding

    config = xl_config.get_config("digits,smoke")
    overrides = dict(xl_nets.vit_overrides(config.model, "d_vit"))
    module = vit.make("deit_base_distilled_patch16_224", **overrides)
    x = jax.ShapeDtypeStruct((1, module.image_size, module.image_size, 3), jnp.float32)
    template = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)["params"]
    sd, want = {}, {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
        keys = tuple(k.key for k in path)
        name, kind, _ = vit_convert.timm_name(keys)
        sd[name] = RNG.standard_normal(vit_convert.torch_shape(kind, leaf.shape), np.float32)
        want[keys] = vit_convert.to_flax(kind, sd[name], leaf.shape)
    np.savez(tmp_path / "deit.npz", **sd)
    config.model.deit_weights = str(tmp_path / "deit.npz")
    recipe = recipes.make_recipe(config)
    stage = recipe.stage_fn(0)
    layout = loop.state_layout(recipe.stage_recipe(stage.key), config,
                               sharding.make_mesh({"data": 1}))
    frozen = layout.init().collections["d"][pd.FROZEN_COLLECTION][pd.DEIT + "_net"]["params"]
    got = {tuple(k.key for k in p): v
           for p, v in jax.tree_util.tree_flatten_with_path(frozen)[0]}
    assert set(got) == {k for k in want if k[0] not in ("head", "head_dist")}
    for k, v in got.items():
        np.testing.assert_array_equal(np.asarray(v), want[k], err_msg=str(k))
