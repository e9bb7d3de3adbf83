"""Staged training (ProGAN progressive growing) in the generic trainer: stage switches at the
scheduled image counts with the right batch and α, one compiled step per stage, a sample grid at
every stage end, and a run interrupted mid-fade resuming bit-identically.

The `photos,smoke` preset: _test32 networks, phases of 16 images, batches {4: 8, 8: 8, 16: 4};
8 steps = stab4 (2 steps) fade8 (2) stab8 (2) fade16 (2 of 4, the run ends at α = 0.5).
"""

import os
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

from configs import progan as progan_config
from gan_zoo import recipes, train
from gan_zoo.recipes import growing
from gan_zoo.recipes import progan as progan_recipe
from gan_zoo.train import step as step_module

# After step s: (stage name, resolution, batch size, α, images seen).
EXPECTED = {1: ("stab4", 4, 8, 1.0, 8), 2: ("fade8", 8, 8, 0.0, 16),
            3: ("fade8", 8, 8, 0.5, 24), 4: ("stab8", 8, 8, 1.0, 32),
            5: ("stab8", 8, 8, 1.0, 40), 6: ("fade16", 16, 4, 0.0, 48),
            7: ("fade16", 16, 4, 0.25, 52), 8: ("fade16", 16, 4, 0.5, 56)}


def _config():
    c = progan_config.get_config("photos,smoke")
    c.matmul_precision = "highest"
    c.mesh.data = 4  # batch 4 at 16², sharded over 4 of the 8 test devices
    c.checkpoint.use_async, c.checkpoint.every_steps = False, 100  # saves: stop and end only
    return c


def _run(workdir, stop_after=0):
    """train.run, recording every jitted step the trainer builds."""
    built = []

    def recording(*args, **kwargs):
        built.append(make(*args, **kwargs))
        return built[-1]

    make = step_module.make_train_step
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(step_module, "make_train_step", recording)
        state, history = train.run(_config(), str(workdir), stop_after=stop_after)
    return state, dict(history), built


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("full")
    return (workdir,) + _run(workdir)


def test_stages_switch_at_scheduled_images_with_batch_and_alpha(full):
    _, state, history, _ = full
    assert int(state.step) == 8
    for s, (_, res, batch, alpha, seen) in EXPECTED.items():
        m = history[s]
        assert (m["stage/resolution"], m["stage/batch_size"]) == (res, batch), s
        assert (m["state/alpha"], m["state/images_seen"]) == (alpha, seen), s


def test_host_stage_math_equals_the_device_counter(full):
    """The trainer picks each step's stage from the step number (no device read): the host image
    count and stage agree with the device's images_seen and the logged stage at every step."""
    _, _, history, _ = full
    config = _config()
    recipe = recipes.make_recipe(config)
    growth = progan_recipe.growth_from_config(config)
    for s, (name, res, batch, _, seen) in EXPECTED.items():
        assert growing.images_at_step(s, growth) == history[s]["state/images_seen"] == seen, s
        stage = recipe.stage_fn(s)  # of the step after step s, as the loop computes it
        assert (stage.name, stage.resolution, stage.batch_size) == (name, res, batch), s


def test_one_compiled_step_per_stage(full):
    _, _, _, built = full
    assert len(built) == 3  # resolutions 4, 8, 16 (fade8 and stab8 share one step)
    # No retrace: at most one entry each. (_cache_size counts JAX's C++ fast-path cache, which
    # read 0 for one function in a long pytest worker: an entry can be dropped, never added.)
    assert all(fn._cache_size() <= 1 for fn in built)


def test_grid_at_every_stage_end(full):
    workdir = full[0]
    names = sorted(os.listdir(workdir / "samples"))
    assert names == ["00000002_end_stab4.png", "00000004_end_fade8.png",
                     "00000006_end_stab8.png"]
    # Grids come from the next stage's G at α = 0 (= the ended stage's output, upsampled).
    sides = [Image.open(workdir / "samples" / n).size for n in names]
    assert sides == [(16, 16), (16, 16), (32, 32)]  # 2 x 2 grids of 8², 8², 16²


@pytest.mark.slow
def test_resume_mid_fade_is_bit_identical(full, tmp_path):
    stopped, _, _ = _run(tmp_path, stop_after=3)
    assert int(stopped.step) == 3 and float(stopped.scalars["alpha"]) == 0.5  # mid fade8
    shutil.rmtree(tmp_path / "samples")  # the resumed run must not need them
    resumed, history, built = _run(tmp_path)
    assert len(built) == 2 and 4 in history and history[4]["stage/resolution"] == 8
    full_state = full[1]
    assert jax.tree.structure(full_state) == jax.tree.structure(resumed)
    for a, b in zip(jax.tree.leaves(full_state), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
