"""Test-wide setup: 8 simulated CPU devices and full-precision matmuls, before JAX starts."""
import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

REPO = pathlib.Path(__file__).resolve().parent.parent


def golden_dir() -> pathlib.Path:
    """The golden vectors: $GAN_ZOO_GOLDEN, else ../shared/golden beside the checkout."""
    return pathlib.Path(os.environ.get("GAN_ZOO_GOLDEN", REPO.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def golden():
    d = golden_dir()
    if not d.is_dir():
        pytest.fail(f"golden folder {d} not found (set GAN_ZOO_GOLDEN)")
    return d
