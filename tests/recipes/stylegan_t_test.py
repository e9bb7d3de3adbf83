"""StyleGAN-T recipe and configs (gan_zoo/recipes/stylegan_t.py, configs/stylegan_t.py) through
the trainer on the digits_text,smoke preset (stages primary 16^2 x 2 steps, text-encoder 16^2 x 1,
primary 32^2 x 2; batch 8): the CLI trains every stage (a checkpoint after every step); the text
encoder changes only in the text stage while G and D stay frozen there; runs resumed in-process
from the CLI's checkpoints at both stage boundaries end bit for bit where the CLI did; sampling
from the CLI's workdir by prompt ids, tokens and embeddings agrees; the paper presets' schedules
and weight-file errors. Slow: one CLI run (three stage compiles) and two in-process stage
compiles (text16, primary32), nothing compiled twice."""

import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import stylegan_t as t_config
from gan_zoo.recipes import stylegan_t as rt
from gan_zoo.recipes import stylegan_t_nets as nets_lib
from gan_zoo.train import loop, sharding
from tests.conftest import REPO

OVERRIDES = {"checkpoint.use_async": False, "checkpoint.every_steps": 1, "checkpoint.keep": 10,
             "log.every_steps": 1, "matmul_precision": "highest"}
STEPS = 5  # primary16: steps 0-1, text16: step 2, primary32: steps 3-4
PRESET = "digits_text,smoke"


def _config(**extra):
    c = t_config.get_config(PRESET)
    for key, value in {**OVERRIDES, **extra}.items():
        *path, leaf = key.split(".")
        node = c
        for p in path:
            node = node[p]
        node[leaf] = value
    return c


def _flat(tree) -> dict:
    """{path: numpy leaf} of any pytree (optimizer states included)."""
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}


def _same(a, b) -> bool:
    fa, fb = _flat(a), _flat(b)
    return fa.keys() == fb.keys() and all(np.array_equal(fa[k], fb[k]) for k in fa)


def _changed(before, after) -> list:
    """Leaves of `after` present in `before` with the same shape whose values differ."""
    fa, fb = _flat(before), _flat(after)
    return [k for k in fb if k in fa and fa[k].shape == fb[k].shape
            and not np.array_equal(fa[k], fb[k])]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sgt_cli")
    args = [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
    cmd = [sys.executable, str(REPO / "experiments" / "main.py"),
           f"--config=configs/stylegan_t.py:{PRESET}", f"--workdir={workdir}", *args]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir, out.stdout + out.stderr


@pytest.fixture(scope="module")
def cli_states(cli_run):
    """The CLI run's states after steps 1, 2, 3 and 5 (its checkpoints)."""
    workdir, _ = cli_run
    mesh = sharding.make_mesh(_config().mesh)
    return {s: loop.restore_run(_config(), str(workdir), mesh, step=s)[1] for s in (1, 2, 3, 5)}


@pytest.fixture(scope="module")
def resumed(cli_run, tmp_path_factory):
    """In-process: the CLI's step-2 checkpoint (end of primary16) resumed for 1 step (the text
    stage), stopped there, then resumed to the end: states at 3 and 5."""
    workdir, _ = cli_run
    chain = tmp_path_factory.mktemp("sgt_chain")
    shutil.copytree(workdir / "checkpoints" / "2", chain / "checkpoints" / "2")
    s3, _ = loop.run(_config(), str(chain), stop_after=1)
    s5, _ = loop.run(_config(), str(chain))
    return s3, s5


@pytest.mark.slow
def test_cli_trains_every_stage(cli_run):
    workdir, log = cli_run
    assert "RANDOM init (no weight file" in log  # digits_text: random towers, logged
    assert "fit contrastively on config.data.name='digits_captions'" in log  # clip_fit_steps
    for name in ("00000002_end_primary16.png", "00000003_end_text16.png"):
        assert (workdir / "samples" / name).is_file(), sorted(os.listdir(workdir / "samples"))
    assert (workdir / "checkpoints" / str(STEPS)).is_dir()


@pytest.mark.slow
def test_resume_is_bit_identical(cli_states, resumed):
    for want, got in zip((cli_states[3], cli_states[5]), resumed):
        assert int(got.step) == int(want.step)
        assert _same(want.params, got.params)
        assert _same(want.ema_params, got.ema_params)
        assert _same(want.opt_state, got.opt_state)
        assert _same(want.collections, got.collections)


@pytest.mark.slow
def test_only_the_text_encoder_trains_in_the_text_stage(cli_states):
    s1, s2, s3, s5 = (cli_states[k] for k in (1, 2, 3, 5))
    text = lambda s: s.params["g"]["text"]  # noqa: E731
    # G's encoder is the frozen CLIP's (after the fit) and stays so in the primary stages.
    assert _same(text(s2), s2.collections["clip"]["params"]["text"])
    assert _same(text(s1), text(s2)) and _same(text(s3), text(s5))
    assert _changed(text(s2), text(s3))  # trained in the text stage
    # G's synthesis/mapping and D: trained in primary stages, frozen in the text stage.
    assert _changed(s1.params["g"]["G"], s2.params["g"]["G"])
    assert _changed(s1.params["d"], s2.params["d"])
    assert not _changed(s2.params["g"]["G"], s3.params["g"]["G"])  # (32^2 grown, 16^2 kept)
    assert _same(s2.params["d"], s3.params["d"])
    assert _changed(s3.params["g"]["G"], s5.params["g"]["G"])
    # The original CLIP (D's and the CLIP loss's conditioning) never changes.
    assert _same(s1.collections["clip"], s5.collections["clip"])


@pytest.mark.slow
def test_sampling_by_prompt_id_tokens_and_embedding_agree(cli_run):
    workdir, _ = cli_run
    config = _config()
    recipe, state, step = loop.restore_run(config, str(workdir), sharding.make_mesh({"data": 1}))
    assert step == STEPS
    prompts = list(config.sample.prompts)
    c = rt.encode_prompts(recipe, state, prompts[3:5])
    assert c.shape == (2, recipe.networks["g"].G.c_dim)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(c), axis=1), 1.0, rtol=1e-5)
    TG = recipe.networks["g"]
    tokens = rt.nets_lib.tokenize(prompts[3:5], TG.text.context_length)
    key, cols = jax.random.PRNGKey(3), state.collections["g"]
    fn = recipe.sample_fn  # eager: three input kinds would be three compiles of G
    by_id = fn(state, key, np.array([3, 4], np.int32), 1.0, cols)
    by_tokens = fn(state, key, tokens, 1.0, cols)
    by_embed = fn(state, key, c, 1.0, cols)
    assert by_id.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(np.asarray(by_id), np.asarray(by_tokens))
    np.testing.assert_allclose(np.asarray(by_id), np.asarray(by_embed), atol=1e-5)
    other = fn(state, key, np.array([5, 6], np.int32), 1.0, cols)
    assert not np.allclose(np.asarray(by_id), np.asarray(other))  # the prompt changes the image


def test_paper_presets():
    full = t_config.get_config("full512")
    plan = rt.parse_schedule(full.train.schedule, full.model.resolution)
    # App. A Table 5: 292k iterations of 2048 images; the text stage at 64^2 after the primary.
    assert sum(s.steps for s in plan) == 292_000 and full.train.batch_size == 2048
    assert [s.name for s in plan][2:5] == ["primary64", "text64", "primary128"]
    lite = t_config.get_config("lite64")
    assert (lite.train.lr_g, lite.train.lr_d, lite.train.b1, lite.train.b2) == \
        (0.002, 0.002, 0.0, 0.99)
    assert (lite.train.clip_weight, lite.train.clip_weight_text, lite.train.lr_text) == \
        (0.2, 50.0, 3e-6)
    with pytest.raises(FileNotFoundError, match="config.model.clip_weights"):
        rt.make_recipe(lite)
    # The D's DiffAugment: the official ops at fill 0 unless config.model sets them.
    clip_model = nets_lib.make_clip(lite)
    d = nets_lib.make_discriminator(lite, clip_model, 1)
    assert (d.diffaug_policy, d.diffaug_fill) == (("color", "translation", "cutout"), 0.0)
    lite.model.d_diffaug_policy, lite.model.d_diffaug_fill = "color,cutout", -1.0
    d = nets_lib.make_discriminator(lite, clip_model, 1)
    assert (d.diffaug_policy, d.diffaug_fill) == (("color", "cutout"), -1.0)
    lite.model.d_diffaug_policy = "color,flip"
    with pytest.raises(ValueError, match="config.model.d_diffaug_policy.*flip"):
        nets_lib.make_discriminator(lite, clip_model, 1)


@pytest.mark.parametrize("schedule,match", [
    ("primary@16:10", "must end at"), ("primary@32:5,primary@16:5", "shrinks"),
    ("prime@32:4", "bad stage"), ("primary@32", "bad stage")])
def test_schedule_errors(schedule, match):
    with pytest.raises(ValueError, match=match):
        rt.parse_schedule(schedule, 32)
