"""Test-wide setup: 8 simulated CPU devices and full-precision matmuls, before JAX starts."""
import os
import pathlib
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One persistent compilation cache for the whole run, shared by the xdist workers and the CLI runs
# they start (subprocesses inherit the environment): a resumed run, the second device count of a
# comparison and each CLI call of the same config then load the compiled step instead of
# compiling it again (a 3-run resume test: 202 s -> 113 s of CPU). Keys are the HLO, the flags and
# the JAX version, so an entry is never reused for a different program. GAN_ZOO_TEST_JAX_CACHE=0
# turns it off; another directory can be named in JAX_COMPILATION_CACHE_DIR.
if os.environ.get("GAN_ZOO_TEST_JAX_CACHE", "1") != "0":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
        tempfile.gettempdir(), f"gan_zoo_test_jax_cache_{os.getuid()}"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 << 30))  # LRU-evicted bytes

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
