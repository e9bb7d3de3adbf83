"""The golden harness over every public op case, and its reporting contract."""

import io
import json

import numpy as np
import pytest

from gan_zoo.tools import golden as harness


def test_every_op_case_passes(golden):
    cases = sorted(golden.glob("op_*.json"))
    assert len(cases) >= 40
    out = io.StringIO()
    passed, failed = harness.run(cases, impl="xla", out=out)
    assert failed == 0, out.getvalue()
    assert passed == len(cases)
    assert out.getvalue().splitlines()[-1] == f"{len(cases)} passed, 0 failed"


def _write_case(tmp_path, name, meta, arrays):
    (tmp_path / f"{name}.json").write_text(json.dumps(meta))
    np.savez(tmp_path / f"{name}.npz", **arrays)


def _bias_case(out_scale=1.0):
    rng = np.random.default_rng(0)
    x = rng.standard_normal([2, 3, 4, 4]).astype(np.float32)
    b = rng.standard_normal([3]).astype(np.float32)
    out = (x + b[None, :, None, None]) * out_scale
    meta = {"kind": "op", "function": "torch_utils.ops.bias_act.bias_act",
            "args": {"dim": 1, "act": "linear"}}
    return meta, {"input/x": x, "input/b": b, "output/out": out.astype(np.float32)}


def test_wrong_output_is_a_fail_and_exit_status(tmp_path):
    meta, arrays = _bias_case(out_scale=1.001)  # 1e-3 relative error > 1e-5.
    _write_case(tmp_path, "op_bad", meta, arrays)
    meta, arrays = _bias_case()
    _write_case(tmp_path, "op_good", meta, arrays)
    out = io.StringIO()
    assert harness.run([tmp_path], out=out) == (1, 1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("FAIL op_bad") and lines[1].startswith("PASS op_good")
    assert harness.main([str(tmp_path)]) == 1
    assert harness.main([str(tmp_path / "op_good.json")]) == 0


def test_unsupported_family_is_a_fail_not_a_skip(tmp_path):
    meta = {"kind": "network", "class_name": "SomeFutureGAN.Generator", "family": "future"}
    _write_case(tmp_path, "net_future", meta, {"output/y": np.zeros([1], np.float32)})
    out = io.StringIO()
    assert harness.run([tmp_path], out=out) == (0, 1)
    assert "FAIL net_future" in out.getvalue() and "does not support" in out.getvalue()


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no case or folder"):
        harness.find_cases([tmp_path / "nope"])
    assert harness.main([str(tmp_path / "nope")]) == 2
