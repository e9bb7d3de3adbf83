"""Fault injection (issue #19 item 7): a training process killed with SIGKILL inside a checkpoint
save, its resumed process killed again at a random moment, and the run resumed to the end ends
bit-identical to an uninterrupted run. The uninterrupted run's console is also checked: no
third-party INFO lines, no traceback, one progress line per log step."""

import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
STEPS, EVERY = 24, 4  # train steps; checkpoint and log interval (6 saves, keep=3 prunes)
# When each run is killed; each covers its own path: "save" leaves a half-written (async)
# checkpoint whose temporary folder the resume must skip and then overwrite; "random" kills a
# process that itself resumed (mostly between saves: steps past the last checkpoint are redone
# from the restored state, data stream and keys). The resume after it finishes the run.
KILLS = ("save", "random")
RUN_TIMEOUT_S = 900


def _command(workdir) -> list:
    return [sys.executable, str(REPO / "experiments" / "main.py"),
            f"--config={REPO / 'configs' / 'biggan.py'}:digits,smoke",
            f"--workdir={workdir}", f"--config.train.num_steps={STEPS}",
            f"--config.checkpoint.every_steps={EVERY}",
            f"--config.log.every_steps={EVERY}", "--config.log.image_every_steps=0",
            "--config.log.sv_every_steps=0"]


def _env(cache) -> dict:
    # One persistent compilation cache for all runs: restarts skip the compile (the same
    # executables run in every process, so bit-identity is unaffected).
    return dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(cache),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def _start(workdir, cache, log_path):
    out = open(log_path, "w")
    return subprocess.Popen(_command(workdir), env=_env(cache), cwd=REPO, stdout=out,
                            stderr=subprocess.STDOUT), out


def _tmp_dirs(workdir) -> set:
    ckpts = workdir / "checkpoints"
    return {p.name for p in ckpts.iterdir() if "tmp" in p.name} if ckpts.is_dir() else set()


def _step_of(name: str) -> int:  # "12.orbax-checkpoint-tmp-..." -> 12
    head = name.split(".", 1)[0]
    return int(head) if head.isdigit() else -1


def _logged_step(log_path) -> int:
    """The newest step of the progress lines ("step 12/48 ...") so far."""
    return max((int(m) for m in re.findall(rf" step (\d+)/{STEPS} ", log_path.read_text())),
               default=0)


def _kill_when(proc, workdir, log_path, when: str, after: int, rng) -> str:
    """SIGKILLs proc, from train step `after` on: inside a save ("save": as soon as a new
    temporary checkpoint folder appears) or at a random moment ("random": up to 1 s after a
    progress line); returns what happened."""
    before, fire_at = _tmp_dirs(workdir), None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        if when == "save" and any(_step_of(n) >= after for n in _tmp_dirs(workdir) - before):
            proc.send_signal(signal.SIGKILL)
            return f"killed in the save of step >= {after}"
        if when == "random" and fire_at is None and _logged_step(log_path) >= after:
            fire_at = time.monotonic() + rng.uniform(0.0, 1.0)
        if fire_at is not None and time.monotonic() >= fire_at:
            proc.send_signal(signal.SIGKILL)
            return f"killed after step {after}"
        time.sleep(0.002)
    return "finished"


def _final_state(workdir) -> dict:
    import orbax.checkpoint as ocp

    path = workdir / "checkpoints" / str(STEPS) / "state"
    return ocp.StandardCheckpointer().restore(path)


@pytest.mark.slow  # 4 process starts (~1 min idle, with a shared compilation cache)
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    import jax

    cache, rng = tmp_path / "jax_cache", random.Random(19)
    # The uninterrupted run (it also fills the compilation cache).
    ref_log = tmp_path / "reference.log"
    proc, out = _start(tmp_path / "reference", cache, ref_log)
    assert proc.wait(timeout=RUN_TIMEOUT_S) == 0, ref_log.read_text()[-3000:]
    out.close()
    console = ref_log.read_text()
    assert "Traceback" not in console and "orbax" not in console.lower(), console[-3000:]
    progress = [line for line in console.splitlines() if f"/{STEPS} (" in line]
    assert len(progress) == STEPS // EVERY, console[-3000:]

    workdir, happened = tmp_path / "killed", []
    # Kill points spread over the run, in order (each resume starts before the next one).
    afters = sorted(rng.sample(range(EVERY, STEPS - EVERY), len(KILLS)))
    for i, (when, after) in enumerate(zip(KILLS, afters)):
        log_path = tmp_path / f"killed_{i}.log"
        proc, out = _start(workdir, cache, log_path)
        happened.append(_kill_when(proc, workdir, log_path, when, after, rng))
        proc.wait(timeout=60)
        out.close()
        if happened[-1] == "finished":
            break
    assert any("in the save" in h for h in happened), happened
    if happened[-1] != "finished":  # the resume that finishes the run
        proc, out = _start(workdir, cache, tmp_path / "final.log")
        assert proc.wait(timeout=RUN_TIMEOUT_S) == 0, (tmp_path / "final.log").read_text()[-3000:]
        out.close()

    ref, got = _final_state(tmp_path / "reference"), _final_state(workdir)
    ref_leaves, got_leaves = jax.tree.leaves_with_path(ref), jax.tree.leaves_with_path(got)
    assert [p for p, _ in ref_leaves] == [p for p, _ in got_leaves]
    for (path, a), (_, b) in zip(ref_leaves, got_leaves):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=str(path))
