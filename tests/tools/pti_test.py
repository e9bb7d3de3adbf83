"""Pivotal Tuning Inversion (gan_zoo.tools.pti) on tiny random generators: the locality sample's
distance from the pivot, the loss terms, reconstruction improving over the pivot, and the tuned G
written by `project --pti` read back by `generate`."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_zoo.convert import stylegan2 as sg2_convert
from gan_zoo.tools import generate, project, projector, pti, sampling
from tests.tools.edit_test import tiny_xl
from tests.tools.generate_test import KWARGS, tiny_generator


def test_morph_w_moves_alpha_from_the_pivot_toward_the_sample():
    rng = np.random.RandomState(0)
    pivot, w = rng.randn(1, 5, 4), rng.randn(1, 5, 4)
    out = np.asarray(pti.morph_w(jnp.asarray(w), jnp.asarray(pivot), 30.0), np.float64)
    d = (w - pivot).ravel()
    np.testing.assert_allclose(out.ravel(), pivot.ravel() + 30.0 * d / np.sqrt(d @ d), rtol=1e-5)
    assert np.linalg.norm(out - pivot) == pytest.approx(30.0, rel=1e-5)  # over all layers


def _target(G, variables, seed, cls):
    """(ws [num_ws, w_dim], image in [0, 255]) of (seed, class) under G directly."""
    z = np.random.RandomState(seed).randn(1, G.z_dim).astype(np.float32)
    ws = G.apply(variables, jnp.asarray(z), jnp.eye(G.c_dim)[cls][None], method="map")
    img, _ = G.apply(variables, ws, method="synthesize")
    return np.asarray(ws[0]), np.asarray(projector.to_feature_range(img[0]))


def test_pti_lowers_reconstruction_error_and_regularises_at_distance_30():
    G, v = tiny_xl()
    _, target = _target(G, v, 11, 3)
    pivot, pivot_img = _target(G, v, 12, 3)  # a pivot that does not render the target
    cfg = pti.PTIConfig(num_steps=12)
    tuned, log = pti.pivotal_tuning(G, v, pivot[0], target, projector.pixel_pyramid_features,
                                    jax.random.PRNGKey(0), cfg)
    mse_pivot = np.mean(np.square(target - pivot_img))
    assert log["mse"][0] == pytest.approx(mse_pivot, rel=1e-4)  # step 0 is the untuned G
    assert log["mse"][-1] < 0.6 * mse_pivot
    np.testing.assert_allclose(log["dist"], cfg.reg_alpha, rtol=1e-5)
    assert log["reg"][0] < 1e-8 < log["reg"][-1]  # G_t = G_o at step 0, then they drift
    img = np.asarray(projector.to_feature_range(pti.synthesize(G, tuned, pivot[0])[0]))
    assert np.mean(np.square(target - img)) < 0.6 * mse_pivot
    flat = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                                        tuned["params"]["synthesis"], v["params"]["synthesis"]))
    assert max(flat) > 0  # the synthesis parameters were tuned
    assert tuned["ema_stats"] is v["ema_stats"]  # w_avg (the collections) are not


def test_locality_sample_is_a_psi_half_sample_at_distance_alpha():
    G, v = tiny_xl()
    pivot = jnp.zeros((1, G.num_ws, G.w_dim))
    key = jax.random.PRNGKey(5)
    w_r = np.asarray(pti.locality_ws(G, v, pivot, key, pti.PTIConfig(reg_alpha=2.0)))
    # The documented draw: z ~ N(0, I) and a uniform class from split(key), mapped at psi 0.5.
    k_z, k_c = jax.random.split(key)
    c = jnp.eye(G.c_dim)[jax.random.randint(k_c, (1,), 0, G.c_dim)]
    w = np.asarray(G.apply(v, jax.random.normal(k_z, (1, G.z_dim)), c, psi=0.5, method="map"))
    np.testing.assert_allclose(w_r, 2.0 * w / np.linalg.norm(w), rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(w_r) == pytest.approx(2.0, rel=1e-5)


@pytest.fixture(scope="module")
def sg2_net(tmp_path_factory):
    G, variables = tiny_generator()
    d = tmp_path_factory.mktemp("pti_net")
    np.savez(d / "G.npz", **sg2_convert.export_state_dict(variables))
    (d / "G.json").write_text(json.dumps({"class_name": "training.networks_stylegan2.Generator",
                                          "init_kwargs": KWARGS}))
    return G, variables, str(d / "G.npz")


def _png(path):
    return np.asarray(Image.open(path), int)


@pytest.mark.slow
def test_project_pti_writes_a_generator_that_generate_reads(sg2_net, tmp_path):
    G, variables, path = sg2_net
    z = np.random.RandomState(3).randn(1, G.z_dim).astype(np.float32)
    img, _ = G.apply(variables, jnp.asarray(z), None, noise_mode="const")
    sampling.save_image(tmp_path / "t.png", np.asarray(
        jnp.clip(jnp.round(projector.to_feature_range(img[0])), 0, 255), np.uint8))
    out = tmp_path / "out"
    assert project.main([f"--network={path}", f"--target={tmp_path / 't.png'}",
                         f"--outdir={out}", "--num_steps=4", "--w_avg_samples=50", "--pti",
                         "--pti_steps=6", "--pti_learning_rate=3e-3", "--log_every=6"]) == 0
    with np.load(out / "pti_log.npz") as f:
        assert f["mse"].shape == (6,) and np.allclose(f["dist"], 30.0, rtol=1e-5)
    net = [f"--network={out / 'G_pti.npz'}", f"--latents={out / 'projected_w.npz'}"]
    assert generate.main(net + [f"--outdir={out / 'gen'}"]) == 0
    tuned = _png(out / "gen" / "latent0000.png")
    assert np.abs(tuned - _png(out / "proj_pti.png")).max() <= 1  # the tuned G, reloaded
    assert np.abs(tuned - _png(out / "proj.png")).max() > 4  # ... which is not the source G
    with open(out / "G_pti.json") as f:
        assert json.load(f)["init_kwargs"] == KWARGS


def test_pti_flags_errors(tmp_path, capsys):
    path = tmp_path / "never_read.npz"  # the flags are checked before the network is loaded
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "t.png")
    assert project.main([f"--network={path}", f"--target={tmp_path / 't.png'}",
                         f"--outdir={tmp_path}", "--num_steps=1", "--w_avg_samples=4",
                         "--pti", "--pti_steps=0"]) == 2
    assert "--pti_steps" in capsys.readouterr().err


@pytest.mark.slow
def test_project_pti_from_a_workdir_writes_a_workdir_generate_reads(tiny_sg2_run, tmp_path):
    spec = tiny_sg2_run.spec
    src = [f"--workdir={tiny_sg2_run.workdir}", f"--config={spec}"]
    assert generate.main(src + ["--seeds=1", f"--outdir={tmp_path / 'gen'}"]) == 0
    out = tmp_path / "out"
    assert project.main(src + [f"--target={tmp_path / 'gen' / 'seed0001.png'}", "--pti",
                               f"--outdir={out}", "--num_steps=3", "--w_avg_samples=20",
                               "--pti_steps=4", "--pti_learning_rate=3e-2"]) == 0
    latents = f"--latents={out / 'projected_w.npz'}"
    tuned = [f"--workdir={out / 'pti_workdir'}", f"--config={spec}"]
    assert generate.main(tuned + [latents, f"--outdir={out / 'tuned'}"]) == 0
    assert generate.main(src + [latents, f"--outdir={out / 'src'}"]) == 0
    img = _png(out / "tuned" / "latent0000.png")
    assert np.abs(img - _png(out / "proj_pti.png")).max() <= 1  # the tuned G, reloaded
    assert np.abs(_png(out / "src" / "latent0000.png") - _png(out / "proj.png")).max() <= 1
    assert np.abs(img - _png(out / "proj.png")).max() > 4  # source workdir left untouched
