"""SIGTERM during training saves a checkpoint and exits cleanly (the CLI, in a subprocess)."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _steps(workdir: pathlib.Path) -> list:
    return sorted(int(p.name) for p in workdir.glob("checkpoints/*") if p.name.isdigit())


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits(tmp_path):
    workdir = tmp_path / "run"
    env = dict(os.environ, XLA_FLAGS="", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    cmd = [sys.executable, str(REPO / "experiments" / "main.py"),
           "--config=" + str(REPO / "configs" / "biggan.py") + ":digits,smoke,steps=100000",
           f"--workdir={workdir}", "--config.checkpoint.every_steps=1000000",
           "--config.log.image_every_steps=0"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 600
        lines = []
        for line in proc.stdout:  # Wait until training has made progress.
            lines.append(line)
            if "img/s" in line or time.time() > deadline:  # a progress line
                break
        assert proc.poll() is None, "".join(lines[-30:])
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(lines) + out
    assert proc.returncode == 0, log[-3000:]
    assert "SIGTERM: saved a checkpoint" in log, log[-3000:]
    steps = _steps(workdir)
    assert steps and steps[-1] > 0, f"no checkpoint written: {list(workdir.rglob('*'))[:20]}"


def test_restore_puts_back_the_previous_handler_and_wakeup_fd():
    from gan_zoo.train import loop

    def previous(*a):
        return None

    old = signal.signal(signal.SIGTERM, previous)
    try:
        handler = loop._Sigterm()
        assert signal.getsignal(signal.SIGTERM) != previous
        handler.restore()
        assert signal.getsignal(signal.SIGTERM) is previous
        assert signal.set_wakeup_fd(-1) == -1  # none was set before
    finally:
        signal.signal(signal.SIGTERM, old)


def test_hosts_agree_on_the_step_to_stop(monkeypatch):
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    from gan_zoo.train import loop

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    gathered = []

    def allgather(x):  # this host has no signal, the other one has
        gathered.append(int(x))
        return np.array([int(x), 1])

    monkeypatch.setattr(multihost_utils, "process_allgather", allgather)
    handler = loop._Sigterm()
    try:
        assert not handler.received
        # Between sync points no host stops (no collective either); at one, all stop together.
        assert [handler.stop(s) for s in (1, 9, 10)] == [False, False, True]
        assert gathered == [0]
    finally:
        handler.restore()
