"""StyleGAN2 configs A-D: progressive growing in the generic trainer (spec A6 [code]).

The schedule tables of the paper presets, and a tiny growing run (`ffhq1024_b,smoke`, 32^2 nets:
stab8 for 2 steps of 8 images, then fade16 at batch 4) crossing a stage boundary: resolution,
batch and α switch at the scheduled image counts, Adam restarts at the new phase, losses stay
finite, and a run stopped mid-fade resumes bit-identically (slow).
"""

import shutil

import jax
import numpy as np
import optax
import pytest

from configs import stylegan2 as sg2_config
from gan_zoo import train
from gan_zoo.recipes import growing, stylegan
from gan_zoo.train import inference

# ----- The paper presets (no network is built: modules and closures only) -----


@pytest.mark.parametrize("images,name,res,batch", [
    (0, "stab8", 8, 256), (599_999, "stab8", 8, 256), (600_000, "fade16", 16, 128),
    (1_200_000, "stab16", 16, 128), (1_800_000, "fade32", 32, 64), (3_000_000, "fade64", 64, 32),
    (4_200_000, "fade128", 128, 32), (8_400_000, "stab1024", 1024, 32),
    (24_000_000, "stab1024", 1024, 32)])
def test_paper_schedule_from_8_with_600k_phases(images, name, res, batch):
    config = sg2_config.get_config("ffhq1024_b")
    recipe, growth = stylegan.make_recipe(config), stylegan.growth_from_config(config)
    stage = growing.stage_at(images, growth)
    assert (stage.name, stage.key, stage.resolution, stage.batch_size) == (name, res, res, batch)
    # The trainer's host-side stage of a step: from the step number, via the image count.
    step = growing.steps_for_images(images, growth)
    assert recipe.stage_fn(step) == growing.stage_at(growing.images_at_step(step, growth), growth)
    assert recipe.stage_start is not None  # Adam reset at every phase start


def test_images_at_step_counts_like_the_device():
    """images_at_step == the running sum of count_images' batches (phase ends not multiples of
    the batch: 600k / 256 and 600k / 128 are not whole)."""
    growth = stylegan.growth_from_config(sg2_config.get_config("ffhq1024_b"))
    seen = 0
    for step in range(0, 40_000):
        if step % 997 == 0 or step in (2343, 2344, 2345, 7031, 7032):
            assert growing.images_at_step(step, growth) == seen, step
        seen += growth.batch_size(growth.resolutions[(growing.phase_index(seen, growth) + 1) // 2])


@pytest.mark.parametrize("preset,phases,d_ratio,g_ratio", [
    ("ffhq1024_a", ("g", "d"), 1.0, 1.0),  # R1 in every D step, no path length
    ("ffhq1024_b", ("g", "d"), 1.0, 1.0),
    ("ffhq1024_c", ("g", "d", "d_r1"), 16 / 17, 1.0),  # lazy R1 (k = 16)
    ("ffhq1024_d", ("g", "g_pl", "d", "d_r1"), 16 / 17, 4 / 5)])  # + lazy path length (k = 4)
def test_paper_lr_table_and_regularisers(preset, phases, d_ratio, g_ratio):
    recipe = stylegan.make_recipe(sg2_config.get_config(preset))
    for res, lr in {8: 1e-3, 64: 1e-3, 128: 1.5e-3, 256: 2e-3, 512: 3e-3, 1024: 3e-3}.items():
        r = recipe.stage_recipe(res)
        assert tuple(p.name for p in r.phases) == phases
        np.testing.assert_allclose(float(r.learning_rates["d"](0)), lr * d_ratio, rtol=1e-6)
        np.testing.assert_allclose(float(r.learning_rates["g"](0)), lr * g_ratio, rtol=1e-6)
    if preset == "ffhq1024_b":  # 25M images: steps until D has seen 25M, phase by phase
        sizes, seen, steps = {8: 256, 16: 128, 32: 64, 64: 32}, 0, 0
        while seen < 25_000_000:
            p = min(seen // 600_000, 14)  # 15 phases: stab8, fade16, ..., stab1024 (forever)
            seen += sizes.get(8 * 2 ** ((p + 1) // 2), 32)
            steps += 1
        assert recipe.num_steps == steps


def test_growing_needs_a_progressive_variant_and_total_kimg():
    c = sg2_config.get_config("ffhq1024_b")
    c.model.variant = "config-f"
    with pytest.raises(ValueError, match="progressive G and D"):
        stylegan.make_recipe(c)
    c = sg2_config.get_config("ffhq1024_b,steps=100")
    with pytest.raises(ValueError, match="total_kimg"):
        stylegan.make_recipe(c)


@pytest.mark.parametrize("preset,g,d", [("ffhq1024", 30.37, 29.01), ("ffhq1024_e", 24.90, 24.04)])
def test_summary_counts_of_e_and_f_unchanged(preset, g, d):
    """--mode=summary totals (spec A3.5: G_E 24.90M, D_E 24.04M, G_F 30.37M, D_F 29.01M)."""
    text = inference.summary(sg2_config.get_config(preset))
    totals = dict(line.split(" params: ") for line in text.splitlines() if " params: " in line)
    assert (round(int(totals["G"]) / 1e6, 2), round(int(totals["D"]) / 1e6, 2)) == (g, d)


# ----- A tiny growing run through the trainer -----

# After step s: (stage name, resolution, batch size, α, images seen); phases of 16 images.
EXPECTED = {1: ("stab8", 8, 8, 1.0, 8), 2: ("fade16", 16, 4, 0.0, 16),
            3: ("fade16", 16, 4, 0.25, 20), 4: ("fade16", 16, 4, 0.5, 24)}


def _config():
    c = sg2_config.get_config("ffhq1024_b,smoke")
    c.train.total_kimg = 0.024  # 32^2 nets; stops 2 steps into fade16 (smoke: 0.08)
    c.matmul_precision = "highest"
    c.mesh.data = 4  # batch 4 at 16^2 over 4 of the 8 test devices
    c.checkpoint.use_async, c.checkpoint.every_steps = False, 100  # saves: stop and end only
    return c


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("full")
    state, history = train.run(_config(), str(workdir))
    return workdir, state, dict(history)


def test_growing_run_switches_stage_at_scheduled_images(full):
    _, state, history = full
    assert int(state.step) == 4
    for s, (name, res, batch, alpha, seen) in EXPECTED.items():
        m = history[s]
        assert (m["stage/resolution"], m["stage/batch_size"]) == (res, batch), s
        assert (m["state/alpha"], m["state/images_seen"]) == (alpha, seen), s
        for key in ("g/loss", "d/loss", "d/r1"):
            assert np.isfinite(m[key]), (s, key)
    assert history[1]["d/r1"] > 0  # config B: R1 inside every D step


def test_adam_restarts_at_the_new_phase(full):
    """Steps 3-4 ran after the fade16 start: Adam's step count is 2, not 4, for G and D."""
    _, state, _ = full
    for group in ("g", "d"):
        counts = [s.count for s in jax.tree.leaves(
            state.opt_state[group], is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
            if isinstance(s, optax.ScaleByAdamState)]
        assert [int(c) for c in counts] == [2], group


@pytest.mark.slow
def test_resume_mid_fade_is_bit_identical(full, tmp_path):
    stopped, _ = train.run(_config(), str(tmp_path), stop_after=3)
    assert int(stopped.step) == 3 and float(stopped.scalars["alpha"]) == 0.25
    resumed, history = train.run(_config(), str(tmp_path))
    assert dict(history)[4]["stage/resolution"] == 16
    full_state = full[1]
    assert jax.tree.structure(full_state) == jax.tree.structure(resumed)
    for a, b in zip(jax.tree.leaves(full_state), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    shutil.rmtree(tmp_path)
