"""`python -m gan_zoo.tools.golden <op cases> --impl pallas`: every op golden passes."""

import io

import pytest

from gan_zoo.tools import golden as harness


@pytest.mark.slow
def test_op_goldens_pass_with_pallas(golden):
    cases = sorted(golden.glob("op_*.json"))
    assert cases, f"no op_* cases in {golden}"
    out = io.StringIO()
    passed, failed = harness.run(cases, impl="pallas", out=out)
    assert failed == 0 and passed == len(cases), out.getvalue()
