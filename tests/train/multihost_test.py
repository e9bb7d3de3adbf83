"""Multi-host training: 2 local processes × 2 CPU devices, joined by jax.distributed over
loopback, train exactly like 1 process × 4 devices (same losses and parameters).

Each process goes through the trainer's own path: config.distributed + config.distributed_args
-> maybe_init_distributed -> jax.distributed.initialize, a 4-device global mesh, per-host data
shards (Layout.process_index) and cross-process collectives (gloo) for the global BN stats.
"""

import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
STEPS = 3

DRIVER = r"""
import sys
import numpy as np
import jax
from gan_zoo import train
from tests.train._tiny import tiny_config, tiny_networks

nproc, pid, port, workdir, out, steps = sys.argv[1:7]
nproc, pid = int(nproc), int(pid)
config = tiny_config(**{"train.num_steps": int(steps), "checkpoint.every_steps": 1000})
if nproc > 1:
    config.distributed = True
    config.distributed_args = {"coordinator_address": f"127.0.0.1:{port}",
                               "num_processes": nproc, "process_id": pid}
state, history = train.run(config, workdir, networks=tiny_networks(config))
assert jax.process_count() == nproc and jax.device_count() == 4, jax.devices()
assert jax.local_device_count() == 4 // nproc
# Replicated leaves: this host's first shard is the whole value.
flat = jax.tree_util.tree_flatten_with_path(state.params)[0]
names = ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in flat]
leaves = [np.asarray(x.addressable_shards[0].data) if isinstance(x, jax.Array) else np.asarray(x)
          for _, x in flat]
np.savez(out, *leaves, names=np.array(names), step=int(state.step),
         losses=np.array([[m[k] for k in sorted(m) if "loss" in k] for _, m in history]),
         loss_names=np.array(sorted(k for k in history[-1][1] if "loss" in k)))
jax.distributed.shutdown() if nproc > 1 else None
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(nproc: int, tmp_path: pathlib.Path, port: int, timeout: float = 240) -> list:
    """Runs the driver in nproc processes (4 // nproc CPU devices each); their .npz outputs."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={4 // nproc}",
               JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO),
               JAX_DEFAULT_MATMUL_PRECISION="highest")
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)  # gRPC to 127.0.0.1 must not go through a proxy
    workdir, outs, procs = tmp_path / f"run{nproc}", [], []
    for pid in range(nproc):
        outs.append(tmp_path / f"out{nproc}_{pid}.npz")
        log = open(tmp_path / f"log{nproc}_{pid}.txt", "w")  # noqa: SIM115 (closed below)
        procs.append((subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(nproc), str(pid), str(port), str(workdir),
             str(outs[-1]), str(STEPS)], cwd=REPO, env=env, stdout=log,
            stderr=subprocess.STDOUT), log))
    deadline = time.time() + timeout
    try:
        for proc, _ in procs:
            proc.wait(timeout=max(deadline - time.time(), 1))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    for pid, (proc, _) in enumerate(procs):
        text = (tmp_path / f"log{nproc}_{pid}.txt").read_text()
        assert proc.returncode == 0, (
            f"process {pid}/{nproc} exit {proc.returncode}:\n{text[-4000:]}")
    return [np.load(o) for o in outs]


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
    port = _free_port()
    (single,) = _launch(1, tmp_path, port)
    multi = _launch(2, tmp_path, port)
    assert int(single["step"]) == STEPS
    assert len(single["losses"]) == STEPS and single["loss_names"].size >= 2
    names = list(single["names"])
    # A conv bias right before a BatchNorm has an exactly-zero gradient (BN removes the batch
    # mean): what it gets is rounding noise, which Adam scales up to lr-sized steps, so it
    # depends on the reduction order. Only those leaves are left out of the 1-vs-2 comparison.
    ill_posed = {"g/SNConv_0/bias", "g/SNConv_1/bias"}
    assert ill_posed <= set(names), names
    for host in multi:
        assert int(host["step"]) == STEPS
        np.testing.assert_array_equal(host["loss_names"], single["loss_names"])
        np.testing.assert_array_equal(host["names"], single["names"])
        np.testing.assert_allclose(host["losses"], single["losses"], rtol=1e-5, atol=1e-6)
        for i, name in enumerate(names):
            if name in ill_posed:
                continue
            np.testing.assert_allclose(host[f"arr_{i}"], single[f"arr_{i}"], rtol=1e-5,
                                       atol=1e-6, err_msg=name)
    # Both hosts hold the same replicated parameters, bit for bit.
    for i, name in enumerate(names):
        np.testing.assert_array_equal(multi[0][f"arr_{i}"], multi[1][f"arr_{i}"], err_msg=name)
