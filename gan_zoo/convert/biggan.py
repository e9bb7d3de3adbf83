"""BigGAN-PyTorch state dicts <-> `gan_zoo.models.biggan` / `biggan_deep` variables, and the
golden-harness runners for `BigGAN.*` and `BigGANdeep.*` cases.

Names: torch `blocks.1.0.bn1.gain.weight` <-> flax `blocks_1_0/bn1/gain/weight` (list indices
join their parent with '_'). Collections by leaf: `u0`, `sv0` -> `spectral_norm`;
`stored_mean`, `stored_var` -> `batch_stats`; everything else -> `params`.
Layouts: conv weights OIHW <-> HWIO; linear weights [out, in] <-> [in, out]; embedding tables
(`shared`, D's `embed`, per-layer ccbn tables) [n_classes, C] unchanged; the rest unchanged.
The G linear layer keeps torch's column order: the model views its output C-major like torch.
"""

import pathlib
import re
import warnings
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.models import biggan, biggan_deep

_SN_LEAVES = ("u0", "sv0")
_BN_LEAVES = ("stored_mean", "stored_var")
_TABLES = ("shared", "embed")
_INDEX = re.compile(r"^(.*?)((?:_\d+)+)$")

# --- Torch constructor kwargs -> gan_zoo modules ------------------------------------------------

# Class defaults at the recorded commit (BigGAN.py / BigGANdeep.py) for what omitted kwargs mean.
_TORCH_DEFAULTS = {
    "BigGAN.Generator": dict(G_ch=64, dim_z=128, bottom_width=4, resolution=128, G_attn="64",
                             n_classes=1000, num_G_SVs=1, num_G_SV_itrs=1, G_shared=True,
                             shared_dim=0, hier=False, BN_eps=1e-5, SN_eps=1e-12),
    "BigGANdeep.Generator": dict(G_ch=128, G_depth=2, dim_z=128, bottom_width=4, resolution=512,
                                 G_attn="64", n_classes=1000, num_G_SVs=1, num_G_SV_itrs=1,
                                 G_shared=True, shared_dim=0, hier=True, BN_eps=1e-5,
                                 SN_eps=1e-12),
    "BigGAN.Discriminator": dict(D_ch=64, D_wide=True, resolution=128, D_attn="64",
                                 n_classes=1000, num_D_SVs=1, num_D_SV_itrs=1, SN_eps=1e-12),
    "BigGANdeep.Discriminator": dict(D_ch=64, D_wide=True, D_depth=2, resolution=128,
                                     D_attn="64", n_classes=1000, num_D_SVs=1, num_D_SV_itrs=1,
                                     SN_eps=1e-12),
}
# Accepted kwargs that do not change the forward (optimiser, init, logging; the kernel sizes are
# stored but never used by the reference, whose convs are always 3x3).
_IGNORED = {"G_init", "D_init", "skip_init", "no_optim", "G_lr", "D_lr", "G_B1", "G_B2", "D_B1",
            "D_B2", "adam_eps", "G_mixed_precision", "D_mixed_precision", "G_fp16", "D_fp16",
            "G_kernel_size", "D_kernel_size"}
# kwargs that must have exactly these values (other values select code paths not ported).
_REQUIRED = {"G_param": "SN", "D_param": "SN", "norm_style": "bn", "cross_replica": False,
             "mybn": False, "output_dim": 1}


def model_from_torch_kwargs(class_name: str, kwargs: Mapping, rgb_conv_channels: int = 3):
    """The gan_zoo module equivalent to BigGAN-PyTorch `class_name(**kwargs)`.

    class_name: 'BigGAN.Generator' | 'BigGAN.Discriminator' | 'BigGANdeep.Generator' |
    'BigGANdeep.Discriminator'. rgb_conv_channels: width of the deep G's output conv (3 at the
    golden commit, 128 in later BigGAN-PyTorch and the TF-Hub weights)."""
    if class_name not in _TORCH_DEFAULTS:
        raise ValueError(f"unknown BigGAN class {class_name!r}; expected one of "
                         f"{sorted(_TORCH_DEFAULTS)}")
    kw = {**_TORCH_DEFAULTS[class_name], **kwargs}
    for key, want in _REQUIRED.items():
        if key in kw and kw.pop(key) != want:
            raise ValueError(f"{class_name}: {key}={kwargs[key]!r} is not supported "
                             f"(only {want!r})")
    for key in _IGNORED:
        kw.pop(key, None)
    deep = class_name.startswith("BigGANdeep")
    if class_name.endswith("Generator"):
        kw["shared_dim"] = kw["shared_dim"] if kw["shared_dim"] > 0 else kw["dim_z"]
        # BigGAN rounds dim_z down to a multiple of the number of z chunks.
        slots = len(biggan.G_ARCH[kw["resolution"]][0]) + 1 \
            if kw["hier"] and not deep and kw["resolution"] in biggan.G_ARCH else 1
        kw["dim_z"] = kw["dim_z"] // slots * slots
        kw.update(out_bn_eps=1e-5, rgb_conv_channels=rgb_conv_channels)  # layers.bn default eps
        if deep:
            if not kw.pop("G_shared"):
                raise ValueError(f"{class_name}: G_shared=False is not supported")
        cls = biggan_deep.Generator if deep else biggan.Generator
    else:
        if deep:
            kw.pop("D_wide")  # unused by the deep D blocks
        cls = biggan_deep.Discriminator if deep else biggan.Discriminator
    unknown = sorted(set(kw) - set(cls.__dataclass_fields__))
    if unknown:  # The torch constructors swallow unknown kwargs (**kwargs); say so, then do too.
        warnings.warn(f"{class_name}: ignoring constructor kwargs {unknown} (BigGAN-PyTorch "
                      "ignores them too)", stacklevel=2)
    return cls(**{k: v for k, v in kw.items() if k not in unknown})


# --- Names and layouts ---------------------------------------------------------------------------

def flax_path(torch_name: str) -> tuple[str, tuple[str, ...]]:
    """'blocks.1.0.bn1.stored_mean' -> ('batch_stats', ('blocks_1_0', 'bn1', 'stored_mean'))."""
    parts = []
    for p in torch_name.split("."):
        if p.isdigit() and parts:
            parts[-1] += "_" + p
        else:
            parts.append(p)
    leaf = parts[-1]
    col = "spectral_norm" if leaf in _SN_LEAVES else "batch_stats" if leaf in _BN_LEAVES \
        else "params"
    return col, tuple(parts)


def torch_name(path: tuple[str, ...]) -> str:
    """('blocks_1_0', 'bn1', 'gain', 'weight') -> 'blocks.1.0.bn1.gain.weight'."""
    out = []
    for p in path:
        m = _INDEX.match(p)
        out.append(m.group(1) + m.group(2).replace("_", ".") if m else p)
    return ".".join(out)


def _is_table(path, model) -> bool:
    per_layer = not getattr(model, "G_shared", True) and len(path) >= 2 \
        and path[-2] in ("gain", "bias")
    return len(path) >= 2 and (path[-2] in _TABLES or per_layer)


def _to_flax(a: np.ndarray, path, model) -> np.ndarray:
    if path[-1] == "weight" and a.ndim == 4:
        return a.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if path[-1] == "weight" and a.ndim == 2 and not _is_table(path, model):
        return a.T  # [out, in] -> [in, out]
    return a


def _to_torch(a: np.ndarray, path, model) -> np.ndarray:
    if path[-1] == "weight" and a.ndim == 4:
        return a.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    if path[-1] == "weight" and a.ndim == 2 and not _is_table(path, model):
        return a.T
    return a


def template(model) -> dict:
    """{(collection, path): ShapeDtypeStruct} of every variable of `model` (no allocation)."""
    r = model.resolution
    if isinstance(model, (biggan.Generator, biggan_deep.Generator)):
        slots, chunk = model.z_chunks()
        args = (jnp.zeros((1, slots * chunk)), jnp.zeros((1,), jnp.int32))
    else:
        args = (jnp.zeros((1, r, r, 3)), jnp.zeros((1,), jnp.int32))
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *args, train=False))
    flat = {}
    for col, tree in shapes.items():
        for keys, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            flat[(col, tuple(k.key for k in keys))] = leaf
    return flat


def torch_to_flax(state_dict: Mapping, model) -> dict:
    """BigGAN-PyTorch state dict {name: array} -> {'params', 'batch_stats', 'spectral_norm'}.

    Keys may carry the golden prefixes 'param/' / 'buffer/'. Raises ValueError listing missing,
    unexpected and mis-shaped names."""
    want = template(model)
    got, unexpected = {}, []
    for name, value in state_dict.items():
        name = name.split("/", 1)[1] if name.startswith(("param/", "buffer/")) else name
        if name.endswith("num_batches_tracked"):
            continue
        col, path = flax_path(name)
        if (col, path) not in want:
            unexpected.append(name)
            continue
        got[(col, path)] = _to_flax(np.asarray(value), path, model)
    missing = [torch_name(p) for (c, p) in want if (c, p) not in got]
    shapes = [f"{torch_name(p)}: {a.shape} (as flax), expected {tuple(want[(c, p)].shape)}"
              for (c, p), a in got.items() if a.shape != tuple(want[(c, p)].shape)]
    if missing or unexpected or shapes:
        raise ValueError(f"BigGAN state dict does not match {type(model).__name__}: missing "
                         f"{sorted(missing)}; unexpected {sorted(unexpected)}; wrong shapes "
                         f"{shapes}")
    out: dict = {}
    for (col, path), a in got.items():
        node = out.setdefault(col, {})
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = jnp.asarray(a, want[(col, path)].dtype)
    return out


def flax_to_torch(variables: Mapping, model) -> dict:
    """gan_zoo variables -> BigGAN-PyTorch state dict {name: numpy array} (the inverse)."""
    out = {}
    for col, tree in variables.items():
        for keys, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            path = tuple(k.key for k in keys)
            out[torch_name(path)] = _to_torch(np.asarray(leaf), path, model)
    return out


def read_state_dict(path) -> dict:
    """{name: numpy array} from a `.npz` (plain or golden-prefixed names) or a `.pth` / `.pt`
    (zip or pre-1.6 format, read without torch and without executing anything)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BigGAN weights: no file at {path}")
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {k: data[k] for k in data.files if k.startswith(("param/", "buffer/"))
                    or "/" not in k}
    from gan_zoo.convert.torch_pickle import read_torch_checkpoint  # noqa: PLC0415

    return {k: np.asarray(v) for k, v in read_torch_checkpoint(path).items()}


# --- Golden-harness runners ----------------------------------------------------------------------

_MUTABLE = ["batch_stats", "spectral_norm"]


def _build(case):
    meta = case.meta
    state = {**case.prefixed("param"), **case.prefixed("buffer")}
    rgb = state["output_layer.2.weight"].shape[0] if "output_layer.2.weight" in state else 3
    model = model_from_torch_kwargs(meta["class_name"], meta.get("constructor_kwargs", {}), rgb)
    return model, torch_to_flax(state, model)


def _buffers_after(variables, model, event: str) -> dict:
    state = flax_to_torch({k: v for k, v in variables.items() if k in _MUTABLE}, model)
    return {f"buffer_after_{event}/{k}": v for k, v in state.items()}


def _forwards(fn, variables, x, cot):
    """Eval forward + vjp w.r.t. x, train forward (with buffers after) and a second train forward.
    fn(variables, x, train) -> output (NHWC / [N]) or, with train=True, (output, new state).
    Runs eagerly: on CPU, compiling these small networks costs more than it saves."""
    out_eval, vjp = jax.vjp(lambda v: fn(variables, v, False), x)
    (grad,) = vjp(cot.astype(out_eval.dtype))
    out_train, new = fn(variables, x, True)
    after = {**variables, **new}
    out_train2, _ = fn(after, x, True)
    return out_eval, grad, out_train, out_train2, after


def golden_generator(case, impl: str = "xla") -> dict:
    """Runner for `BigGAN.Generator` / `BigGANdeep.Generator` golden cases (NCHW in and out)."""
    del impl  # BigGAN uses plain convs only
    G, variables = _build(case)
    z = jnp.asarray(case.arrays["input/z"])
    labels = jnp.asarray(case.arrays["input/y_class"])
    _, aux = G.apply(variables, z, labels, train=False)
    y = aux["y"]  # G.shared(labels) (the labels themselves without G_shared), as in the reference
    cond = dict(y=y) if getattr(G, "G_shared", True) else dict(labels=labels)

    def fn(v, z, train):
        if train:
            (img, _), new = G.apply(v, z, **cond, train=True, mutable=_MUTABLE)
            return img, new
        return G.apply(v, z, **cond, train=False)[0]

    cot = jnp.asarray(case.arrays["cotangent/R_img"].transpose(0, 2, 3, 1))
    img_eval, grad, img_train, img_train2, after = _forwards(fn, variables, z, cot)
    nchw = lambda a: np.asarray(a).transpose(0, 3, 1, 2)
    return {"output/y_shared": np.asarray(y), "output/img_eval": nchw(img_eval),
            "grad/z_eval": np.asarray(grad), "output/img_train": nchw(img_train),
            "output/img_train_step2": nchw(img_train2), **_buffers_after(after, G, "train")}


def golden_discriminator(case, impl: str = "xla") -> dict:
    """Runner for `BigGAN.Discriminator` / `BigGANdeep.Discriminator` golden cases."""
    del impl
    D, variables = _build(case)
    x = jnp.asarray(case.arrays["input/x"].transpose(0, 2, 3, 1))  # NCHW -> NHWC
    labels = jnp.asarray(case.arrays["input/y_class"])

    def fn(v, x, train):
        if train:
            (logits, _), new = D.apply(v, x, labels, train=True, mutable=["spectral_norm"])
            return logits, new
        return D.apply(v, x, labels, train=False)[0]

    cot = jnp.asarray(case.arrays["cotangent/R_logits"][:, 0])
    lg_eval, grad, lg_train, lg_train2, after = _forwards(fn, variables, x, cot)
    col = lambda a: np.asarray(a)[:, None]  # [N] -> [N, 1]
    return {"output/logits_eval": col(lg_eval),
            "grad/x_eval": np.asarray(grad).transpose(0, 3, 1, 2),
            "output/logits_train": col(lg_train), "output/logits_train_step2": col(lg_train2),
            **_buffers_after(after, D, "train")}
