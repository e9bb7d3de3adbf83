"""The StyleGAN2 projector (gan_zoo.tools.projector) and its CLI (gan_zoo.tools.project) on a tiny
random StyleGAN2: schedules, noise regulariser, and recovery of a generated image's w."""

import json

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_zoo.convert import stylegan2 as sg2_convert
from gan_zoo.tools import generate, project, projector
from gan_zoo.train import writers
from tests.tools.generate_test import KWARGS, tiny_generator


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """(G, variables, exported .npz path); w_avg and (small, |s| < 0.05) noise strengths
    non-zero, so the noise maps matter but do not dominate the 16x16 images."""
    G, variables = tiny_generator()
    flat = flax.traverse_util.flatten_dict(variables)
    variables = flax.traverse_util.unflatten_dict(
        {k: 0.1 * v if k[-1] == "noise_strength" else v for k, v in flat.items()})
    d = tmp_path_factory.mktemp("net")
    np.savez(d / "G.npz", **sg2_convert.export_state_dict(variables))
    (d / "G.json").write_text(json.dumps(KWARGS))
    return G, variables, str(d / "G.npz")


def _target(G, variables, seed):
    """(w [w_dim], image float [H, W, C] in [0, 255]) of seed, noise 'const'."""
    z = np.random.RandomState(seed).randn(1, G.z_dim).astype(np.float32)
    ws = G.apply(variables, jnp.asarray(z), None, method="map")
    img, _ = G.apply(variables, ws, noise_mode="const", method="synthesize")
    return np.asarray(ws[0, 0]), np.asarray(projector.to_feature_range(img[0]))


def test_learning_rate_and_latent_noise_ramps():
    cfg = projector.ProjectorConfig()
    lr = lambda i: float(projector.learning_rate(i, cfg))
    assert lr(0) == 0.0 and lr(1000) == pytest.approx(0.0, abs=1e-12)
    assert lr(25) == pytest.approx(0.05) and lr(50) == pytest.approx(0.1)
    assert lr(500) == pytest.approx(0.1) and lr(750) == pytest.approx(0.1)
    assert lr(875) == pytest.approx(0.05)  # half way down the cosine
    std = lambda i: float(projector.latent_noise_std(i, 2.0, cfg))
    assert std(0) == pytest.approx(0.1) and std(375) == pytest.approx(0.1 * 0.25)
    assert std(750) == 0.0 and std(900) == 0.0


def test_noise_regularizer_and_normalization():
    key = jax.random.PRNGKey(0)
    white = {("a",): jax.random.normal(key, (64, 64)), ("b",): jax.random.normal(key, (32, 32))}
    smooth = {k: jnp.repeat(jnp.repeat(v[::2, ::2], 2, 0), 2, 1) for k, v in white.items()}
    assert float(projector.noise_regularizer(white)) < 0.05
    assert float(projector.noise_regularizer(smooth)) > 10 * float(
        projector.noise_regularizer(white))
    # One 4x4 map, by hand: (mean n n_shift_x)^2 + (mean n n_shift_y)^2, wrap-around.
    n = jnp.arange(16.0).reshape(4, 4)
    ref = np.mean(n * np.roll(n, 1, 1)) ** 2 + np.mean(n * np.roll(n, 1, 0)) ** 2
    assert float(projector.noise_regularizer({("n",): n})) == pytest.approx(ref, rel=1e-6)
    # 16x16 has levels 16 and 8; the paper's x2 gain scales the 8x8 level's terms by 2^4.
    m = np.asarray(jax.random.normal(key, (16, 16)), np.float64)
    m8 = m.reshape(8, 2, 8, 2).mean(axis=(1, 3))
    t8 = np.mean(m8 * np.roll(m8, 1, 1)) ** 2 + np.mean(m8 * np.roll(m8, 1, 0)) ** 2
    reg1, reg2 = (float(projector.noise_regularizer({("m",): jnp.asarray(m)}, g)) for g in (1, 2))
    assert reg2 == pytest.approx(reg1 + 15 * t8, rel=1e-4)
    normed = projector.normalize_noise({k: 3.0 * v + 1.0 for k, v in white.items()})
    for v in normed.values():
        assert abs(float(v.mean())) < 1e-5 and float(jnp.mean(v**2)) == pytest.approx(1, 1e-5)


def test_w_stats_and_noise_split(net):
    G, variables, _ = net
    w_avg, w_std = projector.w_stats(G, variables, 500, batch=200)
    z = np.random.RandomState(123).randn(500, G.z_dim).astype(np.float32)
    ws = np.asarray(G.apply(variables, jnp.asarray(z), None, method="map"))[:, 0]
    np.testing.assert_allclose(w_avg[0, 0], ws.mean(0), rtol=1e-4, atol=1e-5)
    assert w_std == pytest.approx(np.sqrt(((ws - ws.mean(0)) ** 2).sum(1).mean()), rel=1e-4)
    noise, rest = projector.split_noise(variables)
    assert len(noise) == 5 and all(p[-1] == "noise_const" for p in noise)  # 4x4: 1, 8, 16: 2
    merged = projector.merge_noise(rest, noise)
    assert jax.tree.all(jax.tree.map(np.array_equal, merged, dict(variables)))


def test_projector_recovers_generated_w(net):
    G, variables, _ = net
    w_true, target = _target(G, variables, seed=5)
    w_avg, w_std = projector.w_stats(G, variables, 2000)
    cfg = projector.ProjectorConfig(num_steps=300)
    out = projector.project(G, variables, target, projector.pixel_pyramid_features,
                            jax.random.PRNGKey(0), cfg, w_avg, w_std)
    assert out["w"].shape == (300, G.w_dim) and out["dist"].shape == (300,)
    start = np.linalg.norm(w_avg[0, 0] - w_true)
    end = np.linalg.norm(out["w"][-1] - w_true)
    assert end < 0.2 * start, (start, end)  # 0.07 here; 4e-5 with the noise strengths at 0
    # Reconstruction: the image distance at w_avg vs at the projection.
    feats = lambda x: projector.pixel_pyramid_features(jnp.asarray(x)[None])
    img = projector.to_feature_range(projector.synthesize(G, variables, out["w"][-1],
                                                          out["noise"]))
    d_end = float(jnp.sum((feats(target) - projector.pixel_pyramid_features(img)) ** 2))
    assert d_end < 0.02 * float(out["dist"][0]), (d_end, out["dist"][0])
    assert np.abs(np.asarray(img[0]) - target).mean() < 0.1 * 255
    for v in out["noise"].values():  # renormalised after every step
        assert abs(v.mean()) < 1e-4 and v.var() == pytest.approx(1.0, rel=1e-3)


def test_project_cli_writes_outputs(net, tmp_path, capsys):
    G, variables, npz = net
    _, target = _target(G, variables, seed=9)
    Image.fromarray(np.clip(np.rint(target), 0, 255).astype(np.uint8)).save(tmp_path / "t.png")
    out = tmp_path / "out"
    assert project.main([f"--network={npz}", f"--target={tmp_path / 't.png'}", f"--outdir={out}",
                         "--num_steps=100", "--w_avg_samples=500", "--log_every=50",
                         "--save_frames=50"]) == 0
    assert "step   100/100: dist" in capsys.readouterr().out
    with np.load(out / "projected_w.npz") as f:
        assert f["w"].shape == (1, G.num_ws, G.w_dim)
        assert "synthesis.b16.conv0.noise_const" in f.files and len(f.files) == 1 + 5
        w = f["w"]
        noise = {tuple(k.split(".")): f[k] for k in f.files if k != "w"}
    with np.load(out / "projection_log.npz") as f:
        assert f["dist"].shape == (100,) and f["dist"][-1] < 0.1 * f["dist"][0]
    proj = np.asarray(Image.open(out / "proj.png"))
    ref = writers.to_uint8(projector.synthesize(G, variables, w, noise))[0]
    assert np.abs(proj.astype(int) - ref).max() <= 1
    assert np.abs(proj.astype(int) - np.asarray(Image.open(tmp_path / "t.png"))).mean() < 30
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["step0000.png", "step0050.png"]


def test_project_cli_errors(net, tmp_path, capsys):
    _, _, npz = net
    weights = tmp_path / "lpips.npz"
    np.savez(weights, x=np.zeros(1))
    args = [f"--network={npz}", f"--outdir={tmp_path}", "--num_steps=2"]
    assert project.main(args + [f"--target={tmp_path / 'none.png'}"]) == 2
    assert "--target" in capsys.readouterr().err
    (tmp_path / "t.png").write_bytes(b"not an image")
    assert project.main(args + [f"--target={tmp_path / 't.png'}", f"--lpips={weights}"]) == 2
    assert "missing names" in capsys.readouterr().err  # The .npz is not LPIPS weights.
    assert project.main(args + [f"--target={tmp_path / 't.png'}"]) == 2
    assert "--target" in capsys.readouterr().err


def test_generate_from_projection_reproduces_proj_png(net, tmp_path):
    """generate --latents=projected_w.npz uses the optimised noise maps stored beside w."""
    G, variables, npz = net
    _, target = _target(G, variables, seed=11)
    Image.fromarray(np.clip(np.rint(target), 0, 255).astype(np.uint8)).save(tmp_path / "t.png")
    out = tmp_path / "out"
    assert project.main([f"--network={npz}", f"--target={tmp_path / 't.png'}", f"--outdir={out}",
                         "--num_steps=20", "--w_avg_samples=200"]) == 0
    assert generate.main([f"--network={npz}", f"--latents={out / 'projected_w.npz'}",
                          f"--outdir={out}"]) == 0
    proj, got = (np.asarray(Image.open(out / n), int) for n in ("proj.png", "latent0000.png"))
    assert np.abs(got - proj).max() <= 1
    # Without the noise maps (the network's own noise_const) the image is a different one.
    with np.load(out / "projected_w.npz") as f:
        np.save(out / "w_only.npy", f["w"])
    assert generate.main([f"--network={npz}", f"--latents={out / 'w_only.npy'}",
                          f"--outdir={out / 'w_only'}"]) == 0
    assert np.abs(np.asarray(Image.open(out / "w_only" / "latent0000.png"), int) - proj).max() > 4
