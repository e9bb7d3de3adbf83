"""Stop signals (issue #19 item 4): the checkpoint comes first, a second signal exits at once,
SIGINT is a SIGTERM the first time."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gan_zoo import train
from gan_zoo.train import checkpoint, loop, signals
from tests.train._tiny import tiny_config, tiny_networks


@pytest.mark.slow  # a tiny training run: ~20 s idle, minutes on a loaded box
def test_stop_signal_saves_before_any_grid_and_exits(tmp_path, monkeypatch):
    events = []
    make_step = loop.step.make_train_step

    def signalling_step(*args, **kwargs):  # SIGTERM arrives during the 3rd train step
        inner = make_step(*args, **kwargs)

        def run_step(state, batch):
            events.append(("step", len([e for e in events if e[0] == "step"]) + 1))
            if events[-1][1] == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return inner(state, batch)
        return run_step

    save = checkpoint.Checkpointer.save
    monkeypatch.setattr(loop.step, "make_train_step", signalling_step)
    monkeypatch.setattr(checkpoint.Checkpointer, "save",
                        lambda self, s, *a: (events.append(("save", s)), save(self, s, *a)))
    monkeypatch.setattr(loop, "_write_grid", lambda w, d, s, *a, **k: events.append(("grid", s)))
    config = tiny_config(**{"log.image_every_steps": 1, "checkpoint.every_steps": 2})
    before = signal.getsignal(signal.SIGTERM)
    state, _ = train.run(config, str(tmp_path), networks=tiny_networks(config))
    # Steps 1-2 as usual (the step-2 checkpoint before its grid); step 3 saves and stops.
    assert events == [("step", 1), ("grid", 1), ("step", 2), ("save", 2), ("grid", 2),
                      ("step", 3), ("save", 3)], events
    assert int(state.step) == 3
    assert signal.getsignal(signal.SIGTERM) is before  # handlers put back


def test_sigint_first_is_like_sigterm_and_a_second_signal_exits():
    codes, before = [], signal.getsignal(signal.SIGINT)
    handler = signals.StopSignal(exit_fn=codes.append)
    try:
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt
        time.sleep(0.05)
        assert handler.received and handler.name == "SIGINT" and codes == []
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert codes == [128 + signal.SIGTERM]
    finally:
        handler.restore()
    assert signal.getsignal(signal.SIGINT) is before


_BLOCKED_MAIN_THREAD = textwrap.dedent("""
    import ctypes, signal, sys
    from gan_zoo.train import signals
    handler = signals.StopSignal()
    # The main thread stuck in C code (as in an XLA compile) with the signals left to others:
    # its Python-level handler cannot run.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    print("ready", flush=True)
    ctypes.CDLL(None).sleep(60)
    sys.exit(3)
""")


def test_two_quick_signals_exit_at_once_while_the_main_thread_is_busy():
    proc = subprocess.Popen([sys.executable, "-c", _BLOCKED_MAIN_THREAD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        waited = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "saving a checkpoint" in err and "again: exiting now" in err, err
    assert waited < 10, waited
