"""gan_zoo.tools.generate / project with `--workdir` + `--config`: a tiny StyleGAN2 `photos` run
trained for two steps by the trainer (the tiny_sg2_run fixture of tests/tools/conftest.py, shared
with pti_test), then images, a projection and its re-rendering from the workdir's checkpoint,
checked against the EMA generator of the trained state applied directly."""

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_zoo.recipes import stylegan
from gan_zoo.tools import generate, project
from gan_zoo.train import writers


def _png(path):
    return np.asarray(Image.open(path), int)


@pytest.mark.slow
def test_generate_and_project_from_a_training_workdir(tiny_sg2_run, tmp_path):
    spec, config, workdir, state = (tiny_sg2_run.spec, tiny_sg2_run.config, tiny_sg2_run.workdir,
                                    tiny_sg2_run.state)
    assert int(state.step) == 2
    G, _ = stylegan.make_networks(config, "stylegan2")
    z = np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in (1, 2)])
    apply = lambda params: writers.to_uint8(G.apply(
        {"params": params, **state.collections["g"]}, jnp.asarray(z, jnp.float32), None,
        psi=0.7, noise_mode="const")[0])
    ema, raw = apply(state.ema_params), apply(state.params["g"])
    assert np.abs(ema.astype(int) - raw).max() > 8  # the EMA G is not the trained G

    # Images from seeds: the checkpoint's EMA G.
    net = [f"--workdir={workdir}", f"--config={spec}"]
    assert generate.main(net + ["--seeds=1-2", "--trunc=0.7", f"--outdir={tmp_path / 'gen'}"]) == 0
    for i, s in enumerate((1, 2)):
        assert np.abs(_png(tmp_path / "gen" / f"seed{s:04d}.png") - ema[i]).max() <= 1

    # Project one of them from the workdir; generate re-renders the projection (w + noise maps).
    out = tmp_path / "proj"
    assert project.main(net + [f"--target={tmp_path / 'gen' / 'seed0001.png'}", f"--outdir={out}",
                               "--num_steps=10", "--w_avg_samples=100"]) == 0
    with np.load(out / "projected_w.npz") as f:
        assert f["w"].shape == (1, G.num_ws, G.w_dim) and len(f.files) > 1  # w + noise maps
    assert generate.main(net + [f"--latents={out / 'projected_w.npz'}", f"--outdir={out}"]) == 0
    assert np.abs(_png(out / "latent0000.png") - _png(out / "proj.png")).max() <= 1
