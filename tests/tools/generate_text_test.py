"""generate --prompt (issue #15 item 8, gan_zoo.tools.generate_text) on a StyleGAN-T workdir.

The workdir holds the digits_text,smoke preset's step-0 state (its first stage, 16^2), saved as
the trainer saves it: the assertions are about the tool (which z, which c, which ψ reach G), not
about trained digits, so no train step is compiled. All runs go through generate.main in-process.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from configs import stylegan_t as sgt_config
from gan_zoo.tools import generate, generate_text
from gan_zoo.train import checkpoint, loop, sharding

CONFIG = "configs/stylegan_t.py:digits_text,smoke"
PROMPTS = ["a handwritten digit seven", "a handwritten digit two"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    config = sgt_config.get_config("digits_text,smoke")
    mesh = sharding.make_mesh(config.mesh)
    layouts = loop.StageLayouts(loop.make_run_recipe(config), config, mesh)
    state = layouts.at_step(0).init()
    path = str(tmp_path_factory.mktemp("sgt_workdir"))
    ckpt = checkpoint.Checkpointer(path, 1, use_async=False)
    ckpt.save(0, state, json.loads(config.to_json_best_effort()))
    ckpt.close()
    return path


def _run(workdir, outdir, *flags) -> int:
    return generate.main([f"--workdir={workdir}", f"--config={CONFIG}", f"--outdir={outdir}",
                          *[f"--prompt={p}" for p in PROMPTS], *flags])


def _png(outdir, name) -> np.ndarray:
    return np.asarray(Image.open(os.path.join(outdir, name)), np.int32)


@pytest.mark.slow  # 3 generate runs on a StyleGAN-T workdir: ~1 min on the loaded 2-core box
def test_prompts_seeds_truncation_style_and_interpolation(workdir, tmp_path):
    out = tmp_path / "a"
    assert _run(workdir, out, "--seeds=3,4", "--grid") == 0
    a = {f"p{i}_seed{s}": _png(out, f"p{i}_seed{s}.png") for i in (0, 1) for s in (3, 4)}
    assert a["p0_seed3"].shape == (16, 16, 3)
    assert np.abs(a["p0_seed3"] - a["p0_seed4"]).max() > 0  # seeds differ
    assert np.abs(a["p0_seed3"] - a["p1_seed3"]).max() > 0  # prompts differ
    # The grid: one row per prompt, one column per seed, in that order.
    grid = _png(out, "grid.png")
    np.testing.assert_array_equal(grid[:16, 16:32], a["p0_seed4"])
    np.testing.assert_array_equal(grid[16:32, :16], a["p1_seed3"])
    # ψ = 0 pulls f(z) onto its average: every seed of a prompt draws the same image, the
    # prompt (c, untruncated) still decides it. The style suffix reaches the text encoder.
    low = tmp_path / "b"
    assert _run(workdir, low, "--seeds=3,4", "--trunc=0", "--style=, bold") == 0
    b = {f"p{i}_seed{s}": _png(low, f"p{i}_seed{s}.png") for i in (0, 1) for s in (3, 4)}
    np.testing.assert_array_equal(b["p0_seed3"], b["p0_seed4"])
    np.testing.assert_array_equal(b["p1_seed3"], b["p1_seed4"])
    assert np.abs(b["p0_seed3"] - b["p1_seed3"]).max() > 0
    assert (low / "prompts.txt").read_text() == "".join(
        f"p{i}\t{p}, bold\n" for i, p in enumerate(PROMPTS))


    # Prompt interpolation at z of seed 3: the endpoints are the two prompts' images at that z.
    mid = tmp_path / "i"
    assert _run(workdir, mid, "--mode=interp", "--seeds=3", "--frames=4", "--batch_size=3") == 0
    frames = [_png(mid, f"frame{i:04d}.png") for i in range(4)]
    np.testing.assert_allclose(frames[0], a["p0_seed3"], atol=1)
    np.testing.assert_allclose(frames[-1], a["p1_seed3"], atol=1)
    assert np.abs(frames[1] - frames[0]).max() > 0 and (mid / "strip.png").is_file()


def test_slerp_stays_on_the_unit_sphere():
    a, b = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    c = generate_text.interp_c(np.stack([a, b, a]), 5)
    assert c.shape == (9, 4)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(c[2], np.array([1, 1, 0, 0]) / np.sqrt(2), atol=1e-6)
    np.testing.assert_array_equal(c[[0, 4, 8]], np.stack([a, b, a]))


def test_errors(tmp_path, capsys):
    assert _run("w", tmp_path, "--mode=mix") == 2
    assert "supports images and interp" in capsys.readouterr().err
    assert generate.main(["--workdir=w", "--config=configs/stylegan2.py:photos",
                          f"--outdir={tmp_path}", "--prompt=x"]) == 2
    assert "'stylegan_t' run" in capsys.readouterr().err
