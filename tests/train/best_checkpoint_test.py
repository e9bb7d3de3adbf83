"""Issue #17 item 5: config.checkpoint.best_metric keeps the best checkpoint beside the K newest,
and --step=best|latest|N picks the checkpoint for sampling and eval. States are written directly
(no training): each case costs a few small saves and one restore."""

import json
import os

import jax
import jax.numpy as jnp
import pytest

from gan_zoo.train import checkpoint, sharding
from gan_zoo.train.loop import restore_run
from tests.train._ckpt import filled, tiny_layout
from tests.train._tiny import tiny_config, tiny_networks

FIDS = {1: 5.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 6.0}  # step -> the eval's fid: best at step 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A workdir where 5 evaluated saves ran with keep=2 and best_metric=fid."""
    config = tiny_config()
    abstract, _ = tiny_layout(config)
    path = str(tmp_path_factory.mktemp("best_run"))
    ckpt = checkpoint.Checkpointer(path, 2, False)
    best = checkpoint.BestKeeper(path, "fid")
    state, kept = filled(abstract), []
    for step, fid in FIDS.items():
        s = state.replace(step=jnp.asarray(step, jnp.int32))
        ckpt.save(step, s, {})
        kept.append(best.update(step, s, {}, {"fid": fid, "kid": 0.1}))
    ckpt.close()
    best.close()
    return config, abstract, path, kept


def test_best_survives_the_rotation_of_newer_worse_ones(run):
    _, abstract, path, kept = run
    assert kept == [True, True, False, False, False]
    assert sorted(os.listdir(os.path.join(path, "checkpoints"))) == ["4", "5"]  # K = 2 newest
    best_dir = os.path.join(path, checkpoint.BEST_SUBDIR)
    assert sorted(os.listdir(best_dir)) == ["2", checkpoint.BEST_JSON]  # step 1's was replaced
    with open(os.path.join(best_dir, checkpoint.BEST_JSON)) as f:
        assert json.load(f) == {"metric": "fid", "mode": "min", "value": 2.0, "step": 2}
    ckpt, step = checkpoint.open_for_step(path, 2, "best")
    assert step == 2 and int(jax.device_get(ckpt.restore(abstract, step).step)) == 2
    ckpt.close()


def test_restore_run_picks_best_latest_or_a_step(run):
    config, _, path, _ = run
    mesh = sharding.make_mesh(config.mesh)
    for spec, want in (("best", 2), ("latest", 5), (None, 5), ("4", 4), (4, 4)):
        _, state, step = restore_run(config, path, mesh, tiny_networks(config), spec)
        assert step == want == int(jax.device_get(state.step)), spec
    with pytest.raises(ValueError, match="--step: expected 'latest', 'best' or a step"):
        restore_run(config, path, mesh, tiny_networks(config), "newest")
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 3"):
        restore_run(config, path, mesh, tiny_networks(config), 3)


def test_best_is_resume_safe_and_mode_follows_the_metric(run, tmp_path, caplog):
    _, abstract, path, _ = run
    again = checkpoint.BestKeeper(path, "fid")  # a resumed run reads best.json
    assert again.best["value"] == 2.0 and not again.better(2.5) and again.better(1.5)
    assert not again.better(float("nan"))
    again.close()
    assert checkpoint.best_mode("is") == "max" and checkpoint.best_mode("fid") == "min"
    assert checkpoint.best_mode("my_score", "max") == "max"
    with pytest.raises(ValueError, match="config.checkpoint.best_mode"):
        checkpoint.best_mode("my_score")
    fresh = checkpoint.BestKeeper(str(tmp_path), "fid")
    assert not fresh.update(1, filled(abstract), {}, {"kid": 0.1})  # fid not evaluated: logged
    assert "not among this eval's metrics" in caplog.text
    with pytest.raises(FileNotFoundError, match="--step=best: no best checkpoint"):
        checkpoint.open_for_step(str(tmp_path), 3, "best")
    fresh.close()


def test_trainer_keeps_the_best_periodic_eval_checkpoint(tmp_path):
    """A 4-step run, eval (swd) every 2 steps, keep=1: checkpoints_best holds the step whose swd
    (read from eval/metrics_<step>.json) was lower, and --step=best restores it."""
    from gan_zoo import train  # noqa: PLC0415

    config = tiny_config(**{"train.num_steps": 4, "checkpoint.every_steps": 2,
                            "checkpoint.keep": 1, "checkpoint.best_metric": "swd",
                            "eval.every": 2, "eval.metrics": "swd", "eval.num_samples": 8,
                            "eval.batch_size": 8})
    train.run(config, str(tmp_path), networks=tiny_networks(config))
    swd = {s: json.loads((tmp_path / "eval" / f"metrics_{s}.json").read_text())["swd"]
           for s in (2, 4)}
    best = min(swd, key=swd.get)
    assert os.listdir(tmp_path / "checkpoints") == ["4"]
    assert sorted(os.listdir(tmp_path / checkpoint.BEST_SUBDIR)) == [str(best),
                                                                     checkpoint.BEST_JSON]
    mesh = sharding.make_mesh(config.mesh)
    assert restore_run(config, str(tmp_path), mesh, tiny_networks(config), "best")[2] == best


def test_best_metric_without_periodic_eval_warns(tmp_path, caplog):
    from gan_zoo.train import loop  # noqa: PLC0415

    config = tiny_config(**{"checkpoint.best_metric": "fid"})
    assert loop._best_keeper(config, str(tmp_path), 0) is None
    assert "needs periodic evaluation: set config.eval.every" in caplog.text
    config.checkpoint.best_mode = "lowest"
    with pytest.raises(ValueError, match="config.checkpoint.best_mode"):
        loop._best_keeper(config, str(tmp_path), 10)  # at the start of the run, not at an eval


def test_a_reset_moves_the_best_checkpoint_aside_too(run, tmp_path):
    """config.allow_reset (workdir.reset_or_raise) moves every checkpoint aside: the old run's
    best must not outlive it (a new run would compare against an incompatible best)."""
    import shutil  # noqa: PLC0415

    path = tmp_path / "run"
    shutil.copytree(run[2], path)
    ckpt = checkpoint.Checkpointer(str(path), 2, False)
    moved = ckpt.move_all_aside("reset-x")
    ckpt.close()
    assert moved[-1] == str(path / f"{checkpoint.BEST_SUBDIR}.reset-x")
    assert not (path / checkpoint.BEST_SUBDIR).exists()
    with pytest.raises(FileNotFoundError, match="--step=best: no best checkpoint"):
        checkpoint.open_for_step(str(path), 2, "best")
    assert checkpoint.BestKeeper(str(path), "fid").best is None  # a new best starts
