"""Readable failures and progress (issue #19 item 6): a failed async save is reported at once in
one line and stops the run with the last good checkpoint kept; progress lines and the config
summary are short."""

import logging
import time

import jax.numpy as jnp
import pytest
from ml_collections import ConfigDict

from gan_zoo.train import checkpoint, progress, save_watch


@pytest.fixture
def disk_full_at_step_2(monkeypatch):
    """Orbax's final rename of checkpoint 2 fails as on a full disk (in the async thread)."""
    from orbax.checkpoint._src.path import atomicity

    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def failing(self, *args, **kwargs):
        if "checkpoints/2" in str(self.get()):
            raise OSError(28, "No space left on device")
        return await finalize(self, *args, **kwargs)
    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", failing)


def test_failed_async_save_is_reported_at_once_in_one_line(tmp_path, disk_full_at_step_2, caplog):
    ckpt = checkpoint.Checkpointer(str(tmp_path), keep=3, use_async=True)
    state = {"w": jnp.ones(4)}
    ckpt.save(1, state, {})
    ckpt.wait()
    with caplog.at_level(logging.ERROR, logger="gan_zoo.train"):
        ckpt.save(2, state, {})
        deadline = time.monotonic() + 60
        while ckpt.watch.error is None and time.monotonic() < deadline:
            time.sleep(0.05)  # no further save or wait: the watcher reports it by itself
        lines = [r.getMessage() for r in caplog.records if r.name == "gan_zoo.train"]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "save at step 2 failed" in lines[0] and "No space left on device" in lines[0]
    assert "last good checkpoint (step 1)" in lines[0]
    with pytest.raises(save_watch.SaveFailed, match=r"step 2"):
        ckpt.check()  # the loop's check at the top of the next step
    ckpt.check()  # raised once only (no second report when the run shuts down)
    ckpt.wait()
    assert ckpt.latest_step() == 1
    ckpt.close()


def test_progress_line_has_step_speed_losses_and_eta():
    line = progress.progress_line(120, 250, 35.21, 65.0, {"d0/loss": 1.2345, "g/loss": 0.5,
                                                          "g/grad_norm": 9.0}, bar=False)
    assert line == "step 120/250 (48%) | 35.2 img/s | d0/loss 1.234 g/loss 0.5 | ETA 1m05s"
    bar = progress.progress_line(125, 250, 1.0, 3725.0, {}, bar=True)
    assert bar == "step 125/250 [##########----------] 50% | 1.0 img/s | ETA 1h02m"


def test_config_summary_is_a_few_lines():
    from configs import biggan

    text = progress.summarize(biggan.get_config("digits"), "/tmp/run")
    assert len(text.splitlines()) <= 5, text
    assert "2000 steps" in text and "batch 32" in text and "/tmp/run/config.json" in text
    assert "every: checkpoint 500 steps" in text and "eval off" in text
    assert progress.summarize(ConfigDict({"recipe": "x"})).startswith("x: x")


def test_closed_loop_errors_after_a_failed_save_become_one_line(monkeypatch, caplog):
    import asyncio
    import sys
    import threading

    import tensorstore as ts

    passed = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: passed.append(repr(u.exc_value)))
    progress.drop_closed_loop_noise()
    loop = asyncio.new_event_loop()
    pending = [ts.Promise.new() for _ in range(3)]  # writes still pending when the loop closes

    async def wait(future):
        await future
    for _, future in pending:
        loop.create_task(wait(future))
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    with caplog.at_level(logging.WARNING, logger="gan_zoo"):
        for promise, _ in pending:  # each finishing write hits the closed loop
            threading.Thread(target=promise.set_result, args=(1,)).start()
        time.sleep(0.5)
        sys.unraisablehook(type("U", (), {"exc_value": ValueError("other")})())
    assert passed == ["ValueError('other')"]  # other unraisable errors still shown
    assert len([r for r in caplog.records if "Event loop is closed" in r.getMessage()]) == 1
