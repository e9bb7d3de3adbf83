"""A restricted unpickler for PyTorch checkpoints and NVlabs network pickles: no torch, no imports,
nothing from the file is ever executed.

`find_class` imports nothing: it maps an allow-list of names (torch tensor/storage rebuilders,
`collections.OrderedDict`, `dnnlib.EasyDict`, numpy array/scalar/dtype reconstruction,
`torch_utils.persistence._reconstruct_persistent_obj`, inert stubs for `torch.nn.modules.*` objects)
to local functions that only build data, and raises `UnsafePickleError` naming any other global.
Storages become numpy arrays read from the zip's `data/<key>` entries or from the trailing records
of the pre-1.6 ("legacy") format; tensors are strided views of them, bounds-checked.

Formats (PyTorch `torch/serialization.py`, torch_utils/persistence.py of NVlabs/stylegan3):
- zip (torch >= 1.6): `<top>/data.pkl` with persistent ids ('storage', type, key, location, numel)
  resolved to `<top>/data/<key>`; `<top>/byteorder` says the data's byte order.
- legacy: pickled magic number 0x1950a86a20f9469cfc6c, protocol 1001, sys_info, the object (ids
  ('storage', type, key, location, numel, view_metadata), and ('module', class, file, source) for
  pickled nn.Module objects: the class must be an allowed stub, the source is ignored), the list of
  storage keys, then per key an int64 element count and the raw data.
- NVlabs persistent objects: `_reconstruct_persistent_obj(meta)`, meta = dict(type='class',
  version=6, module_src, class_name, state=module.__dict__) -> `PersistentObject`.
"""

import collections
import dataclasses
import io
import os
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
PERSISTENCE_VERSIONS = (6,)


class UnsafePickleError(ValueError):
    """A pickle names a global (or a record) outside the allow-list of inert data builders."""


# ----------------------------------------------------------------------------------------------
# Inert records.

class EasyDict(dict):
    """Stand-in for dnnlib.EasyDict: a dict with attribute access."""

    def __getattr__(self, name):
        if name.startswith("__"):  # never look protocol hooks (__setstate__...) up in the items
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclasses.dataclass
class PersistentObject:
    """An NVlabs persistent network: class name, constructor arguments, tensors; `module_src` is
    kept as inert text (never executed)."""
    class_name: str
    init_args: tuple
    init_kwargs: dict
    state_dict: dict  # {torch name: np.ndarray}, like module.state_dict()
    modules: dict  # child name -> PersistentObject | ModuleStub
    attrs: dict  # the other plain attributes of the module's __dict__
    module_src: str
    version: int


def module_state_dict(state: dict, prefix: str = "") -> dict:
    """torch `Module.state_dict()` from a module `__dict__`: parameters, persistent buffers, then
    the children's, in order; None entries skipped."""
    out = {}
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for key in ("_parameters", "_buffers"):
        for name, v in (state.get(key) or {}).items():
            if v is not None and not (key == "_buffers" and name in skip):
                out[prefix + name] = v
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(_state_of(child), f"{prefix}{name}."))
    return out


def _state_of(child) -> dict:
    if isinstance(child, PersistentObject):
        return child._raw_state  # noqa: SLF001 (set at construction)
    if isinstance(child, ModuleStub):
        return child.state
    raise UnsafePickleError(f"module child of unexpected type {type(child).__name__}")


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnsafePickleError("persistent object record: expected meta dict with type='class'")
    if meta.get("version") not in PERSISTENCE_VERSIONS:
        raise ValueError(f"persistent object {meta.get('class_name')!r}: persistence version "
                         f"{meta.get('version')!r} is not supported "
                         f"(known: {PERSISTENCE_VERSIONS})")
    state = dict(meta.get("state") or {})
    obj = PersistentObject(
        class_name=str(meta.get("class_name")), init_args=tuple(state.get("_init_args") or ()),
        init_kwargs=_plain(state.get("_init_kwargs") or {}),
        state_dict=module_state_dict(state), modules=dict(state.get("_modules") or {}),
        attrs={k: v for k, v in state.items() if not k.startswith("_")},
        module_src=str(meta.get("module_src") or ""), version=meta["version"])
    obj._raw_state = state
    return obj


def _plain(x):
    """EasyDicts/OrderedDicts -> dicts, recursively (kwargs as plain data)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    return x


# ----------------------------------------------------------------------------------------------
# Tensors and storages.

@dataclasses.dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype


def _bfloat16():
    import ml_dtypes  # noqa: PLC0415 (ships with jax)
    return np.dtype(ml_dtypes.bfloat16)


_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "BFloat16Storage": "bfloat16", "UntypedStorage": "uint8"}
_TORCH_DTYPES = {"float32": "float32", "float": "float32", "float64": "float64",
                 "double": "float64", "float16": "float16", "half": "float16",
                 "bfloat16": "bfloat16", "int64": "int64", "long": "int64", "int32": "int32",
                 "int": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8",
                 "bool": "bool"}


def _np_dtype_of(name: str) -> np.dtype:
    return _bfloat16() if name == "bfloat16" else np.dtype(name)


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    """A read-only strided view of `storage` (bounds-checked: a file cannot address outside it)."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise UnsafePickleError("_rebuild_tensor_v2: first argument is not a storage record")
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
    if len(size) != len(stride) or offset < 0 or min(size + stride, default=0) < 0:
        raise ValueError(f"tensor record: bad size/stride/offset {size} {stride} {offset}")
    if all(size):
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.size:
            raise ValueError(f"tensor record addresses element {last} of a storage of "
                             f"{storage.size} elements")
    base = storage[offset:] if storage.size > offset else storage[:0]
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(base, shape=size, strides=[s * item for s in stride],
                                           writeable=False)
    return view


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, *_rest):
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError("_rebuild_tensor_v3: dtype is not a torch dtype record")
    return _rebuild_tensor(storage.view(dtype), offset, size, stride)


def _rebuild_parameter(data, *_rest):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_parameter):
        raise UnsafePickleError("_rebuild_from_type_v2: function is not a tensor rebuilder")
    return func(*args)


# ----------------------------------------------------------------------------------------------
# numpy reconstruction (inert: only arrays, scalars and dtypes are built).

def _np_reconstruct(subtype, shape, dtype):
    if subtype is not _NDARRAY:
        raise UnsafePickleError("numpy _reconstruct: subtype is not numpy.ndarray")
    return np.empty((0,), np.int8)  # then BUILD -> ndarray.__setstate__ (data only)


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError("numpy scalar: first argument is not a dtype")
    if dtype.hasobject:
        return data
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _np_dtype(obj, align=False, copy=False):
    if not isinstance(obj, str):
        raise UnsafePickleError(f"numpy.dtype: argument of type {type(obj).__name__}")
    return np.dtype(obj, bool(align), bool(copy))


def _codecs_encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode: only latin1 text (protocol-2 bytes)")
    return text.encode("latin1")


def _torch_size(dims=()):
    return tuple(int(d) for d in dims)


class _Marker:
    """An inert named placeholder (e.g. torch.Tensor as a type argument); not callable."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<{self.name}>"


_NDARRAY = _Marker("numpy.ndarray")  # only an argument of _reconstruct, never constructed


# ----------------------------------------------------------------------------------------------
# The allow-list.

class ModuleStubBase:
    """Base of the inert stand-ins for `torch.nn.modules.*` classes (created, never run)."""
    class_name = "?"

    def __init__(self, *args, **kwargs):
        self.state = {"_args": args, "_kwargs": kwargs}

    def __setstate__(self, state):  # pickle BUILD
        self.state = dict(state) if isinstance(state, dict) else {"_state": state}

    def __repr__(self):
        return f"<inert {self.class_name}>"


_STUB_TYPES: dict = {}


def _module_stub_type(qualname: str) -> type:
    if qualname not in _STUB_TYPES:
        _STUB_TYPES[qualname] = type("ModuleStub", (ModuleStubBase,), {"class_name": qualname})
    return _STUB_TYPES[qualname]


ModuleStub = ModuleStubBase


def _allow_list() -> dict:
    table = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("dnnlib.util", "EasyDict"): EasyDict, ("dnnlib", "EasyDict"): EasyDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): _Marker("torch.Tensor"),
        ("torch.nn.parameter", "Parameter"): _Marker("torch.nn.Parameter"),
        ("torch", "Size"): _torch_size,
        ("torch.storage", "_load_from_bytes"): _load_from_bytes,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("numpy", "dtype"): _np_dtype, ("numpy", "ndarray"): _NDARRAY,
        ("builtins", "set"): set, ("__builtin__", "set"): set,
        ("builtins", "frozenset"): frozenset, ("__builtin__", "frozenset"): frozenset,
        ("_codecs", "encode"): _codecs_encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = _np_reconstruct
        table[(mod, "scalar")] = _np_scalar
    for name, dt in _STORAGE_DTYPES.items():
        table[("torch", name)] = _StorageType(name, dt)
    for name, dt in _TORCH_DTYPES.items():
        table[("torch", name)] = dt  # resolved to np.dtype on use (bfloat16 lazily)
    return table


_ALLOWED: dict = {}  # filled on first use (the builders are defined below)


def find_global(module: str, name: str):
    """The inert stand-in for `module.name`, or UnsafePickleError naming it."""
    if not _ALLOWED:
        _ALLOWED.update(_allow_list())
    key = (module, name)
    if key in _ALLOWED:
        v = _ALLOWED[key]
        if isinstance(v, _StorageType):
            return _StorageType(v.name, _np_dtype_of(v.dtype))
        return _np_dtype_of(v) if module == "torch" and name in _TORCH_DTYPES else v
    if module.startswith("torch.nn.modules.") and name.isidentifier():
        return _module_stub_type(f"{module}.{name}")
    raise UnsafePickleError(f"refusing to load global '{module}.{name}': not on the allow-list "
                            "of inert tensor/data records (the file may try to run code)")


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class imports nothing; `storage(type, key, numel, view)`
    resolves torch storage persistent ids (None: the stream has none)."""

    def __init__(self, file, storage=None):
        super().__init__(file)
        self._storage = storage

    def find_class(self, module, name):
        return find_global(module, name)

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module" and isinstance(
                pid[1], type) and issubclass(pid[1], ModuleStubBase):
            # Legacy torch.save records an nn.Module class with its source text: the class was
            # already resolved by find_class to an inert stub; the source is ignored.
            return pid[1]
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            what = pid[0] if isinstance(pid, tuple) and pid else pid
            what = what if isinstance(what, str) else type(what).__name__
            raise UnsafePickleError(f"refusing persistent record {what!r} (only 'storage')")
        if self._storage is None:
            raise UnsafePickleError("storage record outside a torch checkpoint")
        if not isinstance(pid[1], _StorageType):
            raise UnsafePickleError("storage record without a torch storage type")
        return self._storage(pid[1], str(pid[2]), int(pid[4]), pid[5] if len(pid) > 5 else None)


# ----------------------------------------------------------------------------------------------
# Containers.

def _read_legacy(f, total_bytes: int):
    """The pre-1.6 torch.save stream at `f` -> its object with storages filled."""
    roots: dict = {}

    def storage(stype, key, numel, view):
        if numel < 0 or numel * stype.dtype.itemsize > total_bytes:
            raise ValueError(f"legacy storage {key}: {numel} elements exceed the file size")
        root = roots.setdefault(key, np.zeros(numel, stype.dtype))
        if view is not None:
            _, off, size = view
            return root[int(off):int(off) + int(size)]
        return root

    load = lambda: RestrictedUnpickler(f, storage).load()
    if load() != LEGACY_MAGIC:
        raise ValueError("not a torch file (no legacy magic number, not a zip archive)")
    proto = load()
    if proto != LEGACY_PROTOCOL:
        raise ValueError(f"legacy torch file: protocol {proto!r} unsupported ({LEGACY_PROTOCOL})")
    sys_info = load()
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", True)):
        raise ValueError("legacy torch file: big-endian data is not supported")
    obj = load()
    keys = load()
    for key in keys:
        arr = roots.get(str(key))
        (count,) = struct.unpack("<q", f.read(8))
        if arr is None or count != arr.size:
            raise ValueError(f"legacy torch file: storage {key} has {count} elements, "
                             f"expected {None if arr is None else arr.size}")
        data = f.read(count * arr.itemsize)
        if len(data) != count * arr.itemsize:
            raise ValueError(f"legacy torch file: storage {key} is truncated")
        arr[:] = np.frombuffer(data, arr.dtype)
    unfilled = set(roots) - {str(k) for k in keys}
    if unfilled:
        raise ValueError(f"legacy torch file: storages without data {sorted(unfilled)}")
    return obj


def _load_from_bytes(data):
    """torch.storage._load_from_bytes: a legacy torch.save of one storage."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("_load_from_bytes: argument is not bytes")
    out = _read_legacy(io.BytesIO(data), len(data))
    if not isinstance(out, np.ndarray):
        raise UnsafePickleError("_load_from_bytes: the blob does not hold a storage")
    return out


def _read_zip(zf: zipfile.ZipFile, where: str):
    pkl = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise ValueError(f"{where}: not a torch zip checkpoint (no single <top>/data.pkl)")
    prefix = pkl[0][:-len("data.pkl")]
    order = "little"
    if prefix + "byteorder" in zf.namelist():
        order = zf.read(prefix + "byteorder").decode().strip()
    cache: dict = {}

    def storage(stype, key, numel, view):
        if key not in cache:
            dt = stype.dtype.newbyteorder("<" if order == "little" else ">")
            try:
                raw = zf.read(f"{prefix}data/{key}")
            except KeyError:
                raise ValueError(f"{where}: storage record data/{key} missing") from None
            cache[key] = np.frombuffer(raw, dt).astype(stype.dtype)
        arr = cache[key]
        if arr.size < numel:
            raise ValueError(f"{where}: storage data/{key} has {arr.size} < {numel} elements")
        return arr

    return RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), storage).load()


def load(path, allow_storages: bool = True):
    """Any torch.save file (zip or legacy) or plain pickle at `path`, read inertly."""
    path = str(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return _read_zip(zf, path)
    with open(path, "rb") as fh:
        data = fh.read()
    f = io.BytesIO(data)
    if not allow_storages:
        return RestrictedUnpickler(f).load()
    return _read_legacy(f, len(data))


def read_plain_pickle(path) -> object:
    """A plain pickle (an NVlabs network pickle) read inertly (storages via _load_from_bytes)."""
    with open(path, "rb") as fh:
        return RestrictedUnpickler(fh).load()


def read_torch_checkpoint(path) -> dict:
    """Safe `.pth` / `.pt` (zip and pre-1.6 legacy format) -> its dict (state dicts as
    {name: np.ndarray}; other objects as inert stubs)."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"torch checkpoint: no file at {path}")
    out = load(path)
    if not isinstance(out, dict):
        raise ValueError(f"{path}: expected a dict (state dict), found {type(out).__name__}")
    return out


__all__ = ["UnsafePickleError", "EasyDict", "ModuleStub", "PersistentObject", "find_global",
           "RestrictedUnpickler", "load", "read_plain_pickle", "module_state_dict",
           "read_torch_checkpoint"]
