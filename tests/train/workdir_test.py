"""One run per workdir (run.lock) and config compatibility on resume (issue #19 items 2, 3)."""

import json
import logging
import os
import socket
import subprocess
import time

import pytest

from gan_zoo import train
from gan_zoo.train import checkpoint, loop
from gan_zoo.train import workdir as wd
from tests.train._ckpt import copy_run, tiny_layout
from tests.train._tiny import tiny_config, tiny_networks


def _write_lock(workdir, **holder):
    path = os.path.join(workdir, wd.LOCK_NAME)
    with open(path, "w") as f:
        json.dump(holder, f)
    return path


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _holder(path) -> dict:
    with open(path) as f:
        return json.load(f)


def test_lock_written_with_holder_and_released(tmp_path):
    path = tmp_path / wd.LOCK_NAME
    with wd.RunLock(str(tmp_path)):
        holder = _holder(path)
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert holder["started"]
    assert not path.exists()


def test_lock_released_on_exception(tmp_path):
    with pytest.raises(KeyError), wd.RunLock(str(tmp_path)):
        raise KeyError("boom")
    assert not (tmp_path / wd.LOCK_NAME).exists()


def test_live_holder_on_this_host_refused_by_name(tmp_path):
    ppid = os.getppid()  # alive: it runs this test
    path = _write_lock(tmp_path, host=socket.gethostname(), pid=ppid, started="then",
                       proc_start=wd._proc_start(ppid))
    with pytest.raises(wd.WorkdirInUse, match=rf"in use .*pid {ppid} on host "
                                           rf"'{socket.gethostname()}'.*force_unlock"):
        wd.RunLock(str(tmp_path)).acquire()
    assert _holder(path)["pid"] == ppid  # untouched


def test_second_lock_in_same_process_refused(tmp_path):
    with wd.RunLock(str(tmp_path)), pytest.raises(wd.WorkdirInUse, match=f"pid {os.getpid()}"):
        wd.RunLock(str(tmp_path)).acquire()


@pytest.mark.parametrize("case", ["dead_pid", "reused_pid", "own_pid_earlier", "garbled"])
def test_stale_lock_on_this_host_taken_over(tmp_path, case):
    path = tmp_path / wd.LOCK_NAME
    if case == "garbled":
        path.write_text('{"host": "x", "pi')
    elif case == "dead_pid":
        _write_lock(tmp_path, host=socket.gethostname(), pid=_dead_pid(), started="then")
    else:  # a live pid whose process started at another time: the pid was reused (a restarted
        pid = os.getppid() if case == "reused_pid" else os.getpid()  # container: our own pid)
        _write_lock(tmp_path, host=socket.gethostname(), pid=pid, started="then",
                    proc_start=wd._proc_start(pid) - 1)
    with wd.RunLock(str(tmp_path)):
        assert _holder(path)["pid"] == os.getpid()
    assert not path.exists()


def test_other_host_lock_refused_while_fresh_taken_when_old(tmp_path):
    path = _write_lock(tmp_path, host="node-17", pid=4242, started="then")
    with pytest.raises(wd.WorkdirInUse, match=r"pid 4242 on host 'node-17'"):
        wd.RunLock(str(tmp_path)).acquire()
    old = time.time() - wd.STALE_AFTER_S - 60
    os.utime(path, (old, old))
    with wd.RunLock(str(tmp_path)):
        assert _holder(path)["pid"] == os.getpid()


def test_force_unlock_takes_a_live_lock(tmp_path):
    path = _write_lock(tmp_path, host="node-17", pid=4242, started="then")
    with wd.RunLock(str(tmp_path), force=True):
        assert _holder(path)["pid"] == os.getpid()


def test_release_leaves_a_lock_taken_by_another_run(tmp_path):
    lock = wd.RunLock(str(tmp_path))
    lock.acquire()
    path = _write_lock(tmp_path, host="node-17", pid=4242, started="then")  # forced by another
    lock.release()
    assert _holder(path)["pid"] == 4242


def test_config_changes_flatten_and_list_keys():
    old = {"model": {"G_ch": 4, "D_ch": 4}, "train": {"num_steps": 6}, "seed": 0}
    new = {"model": {"G_ch": 8, "D_ch": 4}, "train": {"num_steps": 9}, "seed": 0, "x": 1}
    assert wd.config_changes(old, new) == [("model.G_ch", 4, 8), ("train.num_steps", 6, 9),
                                           ("x", None, 1)]


# ----- In the trainer: lock, shape check and config.json around train.run -----


def _run(config, workdir):
    return train.run(config, str(workdir), networks=tiny_networks(config))


def test_run_refused_while_another_holds_the_workdir(tmp_path):
    workdir = copy_run(tmp_path / "run")
    before = (workdir / "config.json").read_bytes()
    ppid = os.getppid()
    _write_lock(workdir, host=socket.gethostname(), pid=ppid, started="then",
                proc_start=wd._proc_start(ppid))
    with pytest.raises(wd.WorkdirInUse, match=f"in use by another training run .*pid {ppid}"):
        _run(tiny_config(), workdir)
    assert (workdir / "config.json").read_bytes() == before
    assert _holder(workdir / wd.LOCK_NAME)["pid"] == ppid


def test_shape_change_stops_naming_config_keys(tmp_path):
    workdir = copy_run(tmp_path / "run")
    before = (workdir / "config.json").read_bytes()
    config = tiny_config(**{"model.G_ch": 4, "model.D_ch": 4, "train.num_steps": 9})
    with pytest.raises(ValueError, match=r"(?s)config builds: params/d/.*saved \(.*8\) "
                                         r"float32, now \(.*4\) float32.*differ from the "
                                         r"checkpoint's: model\.D_ch: 8 -> 4, model\.G_ch: "
                                         r"8 -> 4\..*allow_reset") as err:
        _run(config, workdir)
    assert "num_steps" not in str(err.value)  # harmless keys are not blamed
    assert (workdir / "config.json").read_bytes() == before
    assert sorted(p.name for p in workdir.iterdir()) == ["checkpoints", "config.json",
                                                        "config_0.json"]
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]


def test_allow_reset_moves_checkpoints_aside_and_starts_fresh(tmp_path):
    workdir = copy_run(tmp_path / "run")
    config = tiny_config(**{"model.G_ch": 4, "allow_reset": True})
    abstract, _ = tiny_layout(config)
    ckpt = checkpoint.Checkpointer(str(workdir), 3, False)
    state = wd.restore_checked(lambda: loop.restore_or_init(ckpt, abstract, lambda: "fresh"),
                               config, ckpt)
    assert state == "fresh" and ckpt.latest_step() is None
    names = sorted(os.listdir(workdir / "checkpoints"))
    assert [n.split(".")[0] for n in names] == ["3", "6"]
    assert all(n.split(".")[1].startswith("reset-") for n in names)
    ckpt.close()


def test_harmless_change_resumes_and_keeps_each_config(tmp_path, caplog):
    workdir = copy_run(tmp_path / "run")
    config = tiny_config(**{"train.num_steps": 5, "log.every_steps": 2})  # 6 done: no steps
    with caplog.at_level(logging.INFO, logger="gan_zoo.train"):
        state, _ = _run(config, workdir)
    assert int(state.step) == 6
    changes = [r.getMessage() for r in caplog.records if "config changes" in r.getMessage()]
    assert len(changes) == 1
    assert "log.every_steps: 1 -> 2" in changes[0] and "train.num_steps: 6 -> 5" in changes[0]
    for name in ("config.json", "config_6.json"):
        saved = json.loads((workdir / name).read_text())
        assert saved["train"]["num_steps"] == 5 and saved["log"]["every_steps"] == 2
    assert json.loads((workdir / "config_0.json").read_text())["train"]["num_steps"] == 6
    assert not (workdir / wd.LOCK_NAME).exists()
