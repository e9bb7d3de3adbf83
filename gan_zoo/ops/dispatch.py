"""One switch between the jnp reference ops and the Pallas kernels: impl='auto'|'xla'|'pallas'."""

import importlib

import jax

IMPLS = ("auto", "xla", "pallas")
_default_impl = "auto"

# Backends on which each Pallas kernel has been compiled (not interpreted) and has passed
# tests/kernels_pallas; impl='auto' picks a kernel only there. Add a backend after running the
# kernel tests on it. Empty so far: no GPU/TPU was available when the kernels were written.
VERIFIED_BACKENDS = {
    "upfirdn2d": (),
    "filtered_lrelu": (),
    "modulated_conv2d": (),
    "bias_act": (),
}


def set_default_impl(impl: str) -> None:
    """Sets what impl='auto' means process-wide ('auto' restores the device-based choice)."""
    global _default_impl
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    _default_impl = impl


def resolve_impl(impl: str, op: str) -> str:
    """'auto' -> 'pallas' on a GPU/TPU backend listed in VERIFIED_BACKENDS[op], else 'xla'."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        impl = _default_impl
    if impl == "auto":
        backend = jax.default_backend()
        verified = backend in VERIFIED_BACKENDS.get(op, ()) and backend in ("gpu", "tpu")
        impl = "pallas" if verified and has_kernel(op) else "xla"
    return impl


def has_kernel(op: str) -> bool:
    try:
        importlib.import_module(f"kernels_pallas.{op}")
    except ModuleNotFoundError:
        return False
    return True


def kernel(op: str):
    """The Pallas twin of gan_zoo.ops.<op> (same signature, minus `impl`)."""
    try:
        module = importlib.import_module(f"kernels_pallas.{op}")
    except ModuleNotFoundError as e:
        raise NotImplementedError(f"impl='pallas': no Pallas kernel for {op} ({e})") from None
    return getattr(module, op)
