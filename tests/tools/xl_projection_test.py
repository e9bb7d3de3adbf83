"""StyleGAN-XL projection (gan_zoo.tools.projector with xl_config, gan_zoo.tools.project's class
inference) on a tiny random class-conditional StyleGAN-XL and a tiny random ViT / LPIPS net:
schedule values, classifier input, class draws, the w start, and recovery of a known w."""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.feature_nets import lpips, vit
from gan_zoo.tools import project, projector
from tests.tools.edit_test import tiny_xl


def _lr(step, total=1000, lr_max=0.1):
    """The official schedule written out: cosine down over the last 25%, linear up over 5%."""
    t = step / total
    down = 0.5 - 0.5 * np.cos(np.pi * min(1.0, (1.0 - t) / 0.25))
    return lr_max * down * min(1.0, t / 0.05)


def test_xl_schedule_and_no_latent_noise():
    cfg = projector.xl_config()
    assert (cfg.num_steps, cfg.w_avg_samples, cfg.initial_learning_rate) == (1000, 10000, 0.1)
    for step, value in ((0, 0.0), (25, 0.05), (50, 0.1), (600, 0.1), (750, 0.1), (875, 0.05),
                        (999, None)):
        got = float(projector.learning_rate(step, cfg))
        assert got == pytest.approx(_lr(step), abs=1e-7)  # float32 of 0.1
        if value is not None:
            assert got == pytest.approx(value, abs=1e-7)
    assert float(projector.latent_noise_std(0, 3.0, cfg)) == 0.0  # SG-XL: no latent noise
    assert cfg.regularize_noise_weight == 0.0


def test_classifier_input_is_nearest_resize_to_224_in_minus1_1():
    img = np.random.RandomState(0).randint(0, 256, (16, 16, 3)).astype(np.uint8)
    x = projector.classifier_input(img)
    assert x.shape == (1, 224, 224, 3)
    want = np.repeat(np.repeat(img.astype(np.float32) / 127.5 - 1, 14, 0), 14, 1)  # 224 / 16
    np.testing.assert_allclose(x[0], want, atol=1e-6)
    y = projector.classifier_input(np.zeros((448, 448, 3)))  # downsampling: every 2nd pixel
    assert y.shape == (1, 224, 224, 3) and float(y.max()) == -1.0


def test_sample_classes_follow_the_probabilities():
    p = np.array([0.5, 0.0, 0.3, 0.2])
    c = projector.sample_classes(p, 20000)
    assert c.shape == (20000, 4) and np.all(c.sum(1) == 1)
    np.testing.assert_allclose(c.mean(0), p, atol=0.015)


def _args(**kw):
    return argparse.Namespace(**{"class_idx": None, "classifier": None, **kw})


def test_start_labels_from_a_tiny_vit_and_errors(tmp_path):
    G, v = tiny_xl()
    net = vit.make("_test")  # 10 classes, as the tiny G
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    fn = jax.jit(lambda x: net.apply(params, x)[0])
    target = np.random.RandomState(1).randint(0, 256, (16, 16, 3))
    c = project.start_labels(_args(), G, target, fn, num_samples=4000)
    logits = np.asarray(fn(jnp.asarray(projector.classifier_input(target))), np.float64)[0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(c.mean(0), probs, atol=0.03)
    one = project.start_labels(_args(class_idx=4), G, target, fn)  # --class wins
    np.testing.assert_array_equal(one, np.eye(10)[4])
    with pytest.raises(ValueError, match="--classifier.*deit_base_distilled_patch16_224"):
        project.start_labels(_args(), G, target)
    with pytest.raises(FileNotFoundError, match="--classifier.*deit_base_distilled_patch16_224"):
        project.start_labels(_args(classifier=str(tmp_path / "none.safetensors")), G, target)
    with pytest.raises(ValueError, match="--classifier: predicts 3 classes.*c_dim=10"):
        project.start_labels(_args(), G, target, lambda x: jnp.zeros((1, 3)))


def test_xl_projection_recovers_a_generated_w():
    G, v = tiny_xl()
    z = np.random.RandomState(11).randn(1, G.z_dim).astype(np.float32)
    ws = G.apply(v, jnp.asarray(z), jnp.eye(G.c_dim)[3][None], method="map")
    w_true = np.asarray(ws[0, 0])
    img, _ = G.apply(v, ws, method="synthesize")
    target = np.asarray(projector.to_feature_range(img[0]))
    # w start: classes drawn from a classifier sure of class 3 -> the mean of f(z, 3).
    sure = lambda x: jnp.where(jnp.arange(G.c_dim) == 3, 30.0, 0.0)[None]
    c = project.start_labels(_args(), G, target, sure, num_samples=500)
    w_avg, w_std = projector.w_stats(G, v, 500, c=c, batch=500)
    zs = np.random.RandomState(123).randn(500, G.z_dim).astype(np.float32)
    direct = G.apply(v, jnp.asarray(zs), jnp.tile(jnp.eye(G.c_dim)[3], (500, 1)), method="map")
    np.testing.assert_allclose(w_avg[0, 0], np.asarray(direct[:, 0]).mean(0), atol=1e-5)
    # Projection with a tiny random LPIPS-VGG16 (same feature form as the real one).
    net = lpips.LPIPS(widths=(8, 8, 8, 8, 8))
    x = jnp.zeros((1, 16, 16, 3))
    features = lpips.lpips_features(net.init(jax.random.PRNGKey(0), x, x))
    cfg = projector.xl_config(num_steps=80)
    out = projector.project(G, v, target, features, jax.random.PRNGKey(0), cfg, w_avg, w_std)
    assert out["dist"][-1] < 0.01 * out["dist"][0]
    err0, err = (np.linalg.norm(w - w_true) for w in (w_avg[0, 0], out["w"][-1]))
    assert err < 0.1 * err0
    assert out["noise"] == {} and np.all(out["reg"] == 0)
