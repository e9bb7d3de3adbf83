"""StyleGAN-XL training through the trainer on a tiny digits model (16^2 stem, then 32^2; 2
steps each at batch 8): the CLI trains both stages and samples class-conditionally; a run
interrupted mid-stem and at the stage boundary resumes bit-identically to the CLI's run; the
stem, mapping and frozen D parts stay unchanged while the head trains; growing keeps the stem's
activations bit for bit; warm starts from another run; 1 vs 8 devices agree. Slow (several
compiles)."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from configs import stylegan_xl as xl_config
from gan_zoo import train
from gan_zoo.models import projected_d as pd
from gan_zoo.models import stylegan_xl as xl
from gan_zoo.recipes.base import Stage
from gan_zoo.train import loop, sharding
from tests.conftest import REPO

pytestmark = pytest.mark.slow

# Tiny sizes on top of digits,smoke: G 8 channels, 3 stem + 3 head layers; D one ViT (width 16,
# 4 blocks, patch 8 on 32^2); BatchNorm groups of 4 samples (device-count independent).
OVERRIDES = {
    "model.z_dim": 8, "model.w_dim": 16, "model.channel_base": 128, "model.channel_max": 8,
    "model.stem_layers": 3, "model.head_layers": 3, "model.embed_dim": 8,
    "model.d_embed_dim": 8, "model.d_cmap_dim": 8, "model.d_vit_width": 16,
    "model.d_bn_group": "4", "train.pl_start_kimg": 0.0, "train.g_reg_interval": 2,
    "train.blur_fade_kimg": 0.032, "checkpoint.use_async": False,
    "checkpoint.every_steps": 100, "log.every_steps": 1, "matmul_precision": "highest",
}
STEPS = 4  # res16: steps 0-1, res32: steps 2-3


def _config():
    c = xl_config.get_config("digits,smoke")
    for key, value in OVERRIDES.items():
        *path, leaf = key.split(".")
        node = c
        for p in path:
            node = node[p]
        node[leaf] = value
    return c


def _cli(workdir, *extra):
    args = [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
    cmd = [sys.executable, str(REPO / "experiments" / "main.py"),
           "--config=configs/stylegan_xl.py:digits,smoke", f"--workdir={workdir}", *args, *extra]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """A CLI run of both stages (2 steps each)."""
    workdir = tmp_path_factory.mktemp("cli")
    _cli(workdir)
    return workdir


@pytest.fixture(scope="module")
def runs(cli, tmp_path_factory):
    """The uninterrupted CLI run's final state and an in-process chain stopped after step 1
    (mid-stem) and 2 (the boundary)."""
    chain = tmp_path_factory.mktemp("chain")
    mesh = sharding.make_mesh({"data": -1})
    full = loop.load_source_run(str(cli), mesh).state
    full = jax.tree.map(np.asarray, full)
    s1, _ = train.run(_config(), str(chain), stop_after=1)
    s1 = jax.tree.map(np.asarray, s1)
    src1 = loop.load_source_run(str(chain), mesh)  # for warm starts
    s2, _ = train.run(_config(), str(chain), stop_after=1)  # crosses into res32
    s2 = jax.tree.map(np.asarray, s2)
    s4, _ = train.run(_config(), str(chain))
    return dict(full=full, s1=s1, s2=s2, s4=s4, src1=src1)


def test_cli_trains_both_stages_and_samples_by_class(cli, tmp_path):
    assert sorted(os.listdir(cli / "checkpoints")) == [str(STEPS)]
    names = sorted(os.listdir(cli / "samples"))
    assert "00000002_end_res16.png" in names, names
    out = tmp_path / "s.npz"
    _cli(cli, "--mode=sample", "--num_samples=10", f"--sample_out={out}")
    with np.load(out) as f:
        images, labels = f["images"], f["labels"]
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.arange(10))  # spread over the 10 classes


def test_resume_mid_stem_and_at_the_stage_boundary_is_bit_identical(runs):
    full, s4 = runs["full"], runs["s4"]
    assert int(s4.step) == STEPS
    assert jax.tree.structure(full) == jax.tree.structure(s4)
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(s4)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _split(G, tree):
    flat = traverse_util.flatten_dict(tree)
    mask = traverse_util.flatten_dict(xl.stem_mask(G, tree))
    return ({k: v for k, v in flat.items() if mask[k]}, {k: v for k, v in flat.items()
                                                          if not mask[k]})


def test_stem_and_frozen_d_parts_unchanged_head_trained(runs):
    s2, s4 = runs["s2"], runs["s4"]  # s2: right after the transition to 32^2; s4: 2 steps later
    G32 = loop.make_run_recipe(_config()).stage_recipe(32).networks["g"]
    stem2, head2 = _split(G32, s2.params["g"])
    stem4, head4 = _split(G32, s4.params["g"])
    ema_stem4, _ = _split(G32, s4.ema_params)
    assert len(stem2) == len(stem4) > 0 and any(k[0] == "mapping" for k in stem2)
    for k in stem2:
        np.testing.assert_array_equal(stem4[k], stem2[k], err_msg=str(k))
        np.testing.assert_array_equal(ema_stem4[k], stem2[k], err_msg=str(k))
    assert any(not np.array_equal(head4[k], head2[k]) for k in head2)  # the head trains
    # Frozen D parts (feature net, random projections) are those of the first step.
    for a, b in zip(jax.tree.leaves(runs["s1"].collections["d"][pd.FROZEN_COLLECTION]),
                    jax.tree.leaves(s4.collections["d"][pd.FROZEN_COLLECTION])):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(s2.params["d"]),
                                                         jax.tree.leaves(s4.params["d"])))


def _stem_activations(G, variables, names):
    z = jax.random.normal(jax.random.PRNGKey(7), (3, G.z_dim))
    c = jax.nn.one_hot(jnp.array([1, 4, 9]), G.c_dim)
    fn = jax.jit(lambda v: G.apply(v, z, c, capture_intermediates=True,
                                   mutable=["intermediates"])[1]["intermediates"])
    inter = fn(variables)["synthesis"]
    return {n: inter[n]["__call__"][0] for n in names + ("input",)}


def test_stage_start_keeps_the_stem_outputs_bit_identical(runs):
    s1 = runs["s1"]
    recipe = loop.make_run_recipe(_config())
    grown = recipe.stage_start(s1, Stage("res32", 32, 8, 32))
    G16 = recipe.stage_recipe(16).networks["g"]
    G32 = recipe.stage_recipe(32).networks["g"]
    stem = xl.stem_layer_names(G32)
    a16 = _stem_activations(G16, {"params": s1.ema_params, **s1.collections["g"]}, stem)
    a32 = _stem_activations(G32, {"params": grown.params["g"], **grown.collections["g"]}, stem)
    for name in a16:
        np.testing.assert_array_equal(a32[name], a16[name], err_msg=name)
    assert int(grown.step) == int(s1.step)


def test_warm_start_from_a_16_run_and_errors(runs):
    src = runs["src1"]
    config = _config()
    config.init_from = str(src.workdir)  # trains the 32^2 stage only
    recipe = loop.make_run_recipe(config)
    assert recipe.num_steps == 2
    mesh = sharding.make_mesh({"data": 1})
    fresh = loop.state_layout(recipe.stage_recipe(32), config, mesh).init()
    state = recipe.warm_start(fresh, src)
    G32 = recipe.stage_recipe(32).networks["g"]
    stem, _ = _split(G32, state.params["g"])
    src_flat = traverse_util.flatten_dict(src.state.ema_params)
    for k, v in stem.items():
        np.testing.assert_array_equal(v, src_flat[k], err_msg=str(k))
    np.testing.assert_array_equal(state.params["d"][f"{pd.DEIT}_head0"]["cls"]["weight"],
                                  src.state.params["d"][f"{pd.DEIT}_head0"]["cls"]["weight"])
    wide = _config()
    wide.model.resolution, wide.train.stage_kimg = 64, {"64": 0.016}
    wide.init_from = str(src.workdir)  # a 64^2 stage needs a 32^2 source
    recipe64 = loop.make_run_recipe(wide)
    with pytest.raises(ValueError, match=r"init_from=.*resolution=32.*G at 16\^2.*resolution=64"):
        recipe64.warm_start(None, src)


def _stem_steps(n_devices: int, n_steps: int = 2):
    from gan_zoo import data as gdata  # noqa: PLC0415

    config = _config()
    mesh = sharding.make_mesh({"data": n_devices})
    recipe = loop.make_run_recipe(config)
    stage = recipe.stage_fn(0)
    r = recipe.stage_recipe(stage.key)
    layout = loop.state_layout(r, config, mesh)
    state = layout.init()
    data = gdata.Layout(r.real_batches_per_step, 1, stage.batch_size)
    batches = gdata.make_source(config.data, config.model.resolution, config.seed).batches(data)
    in_sharding = sharding.batch_sharding(mesh)
    step_fn = train.make_train_step(r, 1, layout.shardings, in_sharding)
    out = []
    for _ in range(n_steps):
        state, metrics = step_fn(state, jax.device_put(next(batches), in_sharding))
        out.append({k: float(v) for k, v in metrics.items() if "loss" in k or "pl_" in k})
    return out


def test_one_and_eight_devices_give_the_same_losses():
    one, eight = _stem_steps(1), _stem_steps(8)
    for a, b in zip(one, eight):
        assert a.keys() == b.keys()
        # float32 reduction order differs between 1 and 8 shards: on one 2-core box (2026-12-06)
        # one loss of 6.65 differed by 1.6e-4 relative after the steps, the same code that had
        # passed at 1e-4 elsewhere; a sharding bug (a per-shard mean, a missing all-reduce) moves
        # the losses by far more than 5e-4.
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=5e-4, atol=1e-5)
    assert one[0]["g_pl/loss"] > 0 and one[1]["g_pl/loss"] == 0  # lazy: every 2nd step
    assert all(np.isfinite(v) for m in one for v in m.values())


def test_eval_metrics_run_on_the_grown_generator(runs, tmp_path):
    """config.eval through the generic evaluation: EQ-T from the default W space (G's map,
    synthesize and Fourier-input transform); FID without an Inception file is skipped."""
    from gan_zoo.train import evaluation  # noqa: PLC0415

    config = _config()
    config.eval.metrics, config.eval.num_samples, config.eval.batch_size = "fid,eqt_int", 8, 4
    recipe = loop.make_run_recipe(config)
    state = jax.tree.map(jnp.asarray, runs["s4"])
    out = evaluation.evaluate_state(recipe.stage_recipe(32), state, config, str(tmp_path))
    assert set(out) == {"step", "eqt_int"} and np.isfinite(out["eqt_int"]), out
