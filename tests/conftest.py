"""Test-wide setup, before JAX starts: 8 simulated CPU devices, a cheap XLA compile, one
compilation cache and full-precision matmuls."""
import importlib.util
import os
import pathlib
import tempfile

from gan_zoo.tools import notebook  # imports no JAX: the flags below must precede it

# 8 simulated CPU devices (unless $XLA_FLAGS is set) and, unless GAN_ZOO_TEST_FAST_COMPILE=0,
# the notebooks' test-mode flags: XLA's cheapest CPU compile (LLVM -O0). Tests compile hundreds of
# small programs and run each a few times, so compile time is most of the suite: measured on the
# 2-core box, a StyleGAN2 model + train-step pair of test files took 108 s at the default level
# and 65 s with these (the whole suite: 49 -> 35 min wall). The goldens pass at both levels (no
# fast-math at either), but two differently shaped programs (1 vs 8 devices) can round apart by
# ~1e-4 relative; subprocesses (CLI runs) inherit the flags, so a CLI run and an in-process run
# of the same config stay equal bit for bit.
_flags = os.environ.get("XLA_FLAGS", "--xla_force_host_platform_device_count=8").split()
if os.environ.get("GAN_ZOO_TEST_FAST_COMPILE", "1") != "0":
    _flags += [f for f in notebook.TEST_XLA_FLAGS if f not in _flags]
os.environ["XLA_FLAGS"] = " ".join(_flags)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One persistent compilation cache for the whole run, shared by the xdist workers and the CLI runs
# they start (subprocesses inherit the environment): a resumed run, the second device count of a
# comparison and each CLI call of the same config then load the compiled step instead of
# compiling it again (a 3-run resume test: 202 s -> 113 s of CPU). Keys are the HLO, the flags and
# the JAX version, so an entry is never reused for a different program. GAN_ZOO_TEST_JAX_CACHE=0
# turns it off; another directory can be named in JAX_COMPILATION_CACHE_DIR.
if os.environ.get("GAN_ZOO_TEST_JAX_CACHE", "1") != "0":
    # Without filelock, JAX warns on every read of a size-limited cache and compiles everything
    # again (no test fails, every compile is paid again): stop at once instead.
    if importlib.util.find_spec("filelock") is None:
        raise ImportError("tests/conftest.py: the shared JAX compilation cache needs the "
                          "`filelock` package (pip install -e '.[test]'); or set "
                          "GAN_ZOO_TEST_JAX_CACHE=0 to run without the cache")
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
