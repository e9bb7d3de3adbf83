"""benchmarks/feature_nets.py with the tiny configurations: argument errors, one table row per
net, and the sharded jitted call equal to the plain unsharded apply."""

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from tests.benchmarks import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("feature_nets")


def test_argument_errors(bench):
    with pytest.raises(ValueError, match="--nets: unknown \\['resnet'\\]"):
        bench.parse_args(["--nets", "dino_vits16,resnet"])
    with pytest.raises(ValueError, match="--rounds must be >= 1"):
        bench.parse_args(["--rounds", "0"])
    with pytest.raises(ValueError, match="--batch 3 must be a positive multiple of the device "
                                         "count 8"):
        bench.parse_args(["--batch", "3"])
    assert bench.parse_args(["--batch", "8"]).nets == list(bench.NETS)


def test_tiny_run_prints_one_row_per_net(bench, capsys):
    rows = bench.main(["--nets", "clip_l14_text", "--tiny", "--batch", "8", "--rounds", "2"])
    assert [r.split()[0] for r in rows] == ["clip_l14_text"]
    for row in rows:
        _, batch, ours, theirs, ratio = row.split()
        assert batch == "8" and float(ours) > 0 and theirs == ratio == "-"  # --tiny: no torch
    assert "jax img/s" in capsys.readouterr().out


def test_sharded_call_equals_plain_apply(bench):
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    fn, variables, x = bench.build_jax("deit_base", 8, mesh, tiny=True)
    assert x.sharding.spec == jax.sharding.PartitionSpec("data")
    _, plain_fn, _, _ = bench._module("deit_base", tiny=True)
    plain = jax.jit(plain_fn, device=jax.devices()[0])  # one device, no sharding
    want = plain(jax.device_get(variables), np.asarray(x))
    np.testing.assert_allclose(np.asarray(fn(variables, x)), np.asarray(want), rtol=1e-5,
                               atol=1e-5)
