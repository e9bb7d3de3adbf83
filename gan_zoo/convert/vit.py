"""timm ViT weights (DeiT distilled, DINO) -> `gan_zoo.feature_nets.vit` variables, without torch.

Files: the timm hub `model.safetensors` (read with safetensors' numpy API), or the same state dict
saved as `.npz` (`np.savez(out, **{k: v.numpy() for k, v in sd.items()})`); golden-format files
(`param/...` keys) are accepted too. Nothing is unpickled.

Name map (timm -> Flax): `patch_embed.proj.weight` [C, 3, p, p] -> patch_embed/kernel [p, p, 3, C];
`blocks.i.attn.qkv.weight` [3C, C] -> blocks_i/attn/qkv/kernel [C, 3C] (every Linear is transposed);
LayerNorm `weight` -> `scale`; `cls_token`, `dist_token`, `pos_embed`, `norm`, `head`, `head_dist`
keep their names. The helpers here (`read_state_dict`, `convert`) are shared with convert/clip.py.
"""

import pathlib
import re

import flax
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.feature_nets import vit

SUFFIXES = (".safetensors", ".npz")


# ----------------------------------------------------------------------------------------------
# Shared: reading files, and renaming + checking a whole tree.

def read_state_dict(path, what: str = "ViT weights") -> dict:
    """{name: numpy array} from a `.safetensors` or `.npz` state dict (golden `param/` keys too)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file at {path} (expected a state dict saved as "
                                f"{' or '.join(SUFFIXES)})")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file  # light; no torch

        return load_file(str(path))
    if path.suffix != ".npz":
        raise ValueError(f"{what}: {path} is not {' or '.join(SUFFIXES)}; .pth/.bin pickles are "
                         "not read (save the state dict with safetensors.torch.save_file)")
    with np.load(path, allow_pickle=False) as data:
        sd = {k: data[k] for k in data.files}
    if any(k.startswith(("param/", "buffer/")) for k in sd):  # golden-format file
        sd = {k.split("/", 1)[1]: v for k, v in sd.items() if k.startswith(("param/", "buffer/"))}
    return sd


def torch_shape(kind: str, flax_shape: tuple, torch_like: tuple | None = None) -> tuple:
    """The torch shape of a Flax variable converted with `kind`."""
    if kind == "dense":  # Linear [O, I] <-> [I, O]
        return tuple(reversed(flax_shape))
    if kind == "conv":  # OIHW <-> HWIO
        return (flax_shape[3], flax_shape[2], flax_shape[0], flax_shape[1])
    return torch_like if torch_like is not None else tuple(flax_shape)


def to_flax(kind: str, value: np.ndarray, flax_shape: tuple) -> np.ndarray:
    if kind == "dense":
        return value.T
    if kind == "conv":
        return value.transpose(2, 3, 1, 0)
    return value.reshape(flax_shape)  # "same" or a squeezed/expanded copy ("reshape")


def convert(template, name_fn, state_dict: dict, source: str, what: str) -> dict:
    """Renames torch arrays onto the Flax `template` (shapes) with `name_fn(path) -> (torch name,
    kind, torch shape or None)`; ValueError naming the file and the first missing, unexpected or
    mis-shaped name."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(template))
    wanted = {}
    for key, leaf in flat.items():
        name, kind, tshape = name_fn(key[1:])
        wanted[name] = (key, kind, tuple(leaf.shape), torch_shape(kind, leaf.shape, tshape))
    missing = sorted(set(wanted) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(wanted))
    if missing or unexpected:
        first = (f"first missing name {missing[0]!r}" if missing
                 else f"first unexpected name {unexpected[0]!r}")
        raise ValueError(f"{what} ({source}): {first} ({len(missing)} missing "
                         f"{missing[:4]}, {len(unexpected)} unexpected {unexpected[:4]})")
    out = {}
    for name, (key, kind, fshape, tshape) in wanted.items():
        value = np.asarray(state_dict[name])
        if value.shape != tshape:
            raise ValueError(f"{what} ({source}): {name} has shape {value.shape}, expected "
                             f"{tshape}")
        out[key] = jnp.asarray(to_flax(kind, value.astype(np.float32), fshape))
    return flax.traverse_util.unflatten_dict(out)


def block_name(sub: tuple, clip: bool) -> tuple[str, str]:
    """Block-relative Flax path (e.g. ('attn', 'qkv', 'kernel')) -> (torch suffix, kind)."""
    leaf = sub[-1]
    kind = "dense" if leaf == "kernel" else "same"
    if clip:  # torch MultiheadAttention / open_clip names
        mods = {("norm1",): "ln_1", ("norm2",): "ln_2", ("attn", "qkv"): "attn.in_proj_",
                ("attn", "proj"): "attn.out_proj", ("mlp", "fc1"): "mlp.c_fc",
                ("mlp", "fc2"): "mlp.c_proj"}
        mod = mods[tuple(sub[:-1])]
    else:
        mod = ".".join(sub[:-1])
    tleaf = {"kernel": "weight", "scale": "weight", "bias": "bias"}[leaf]
    if mod.endswith("_"):  # in_proj_weight / in_proj_bias
        return mod + tleaf, kind
    return f"{mod}.{tleaf}", kind


# ----------------------------------------------------------------------------------------------
# timm names.

def timm_name(path: tuple):
    """Flax path under 'params' -> (timm state-dict name, kind, torch shape or None)."""
    head = path[0]
    if head.startswith("blocks_"):
        suffix, kind = block_name(path[1:], clip=False)
        return f"blocks.{head.split('_')[1]}.{suffix}", kind, None
    if head == "patch_embed":
        leaf = {"kernel": "weight", "bias": "bias"}[path[1]]
        return f"patch_embed.proj.{leaf}", ("conv" if leaf == "weight" else "same"), None
    if head in ("norm", "head", "head_dist"):
        leaf = {"kernel": "weight", "scale": "weight", "bias": "bias"}[path[1]]
        return f"{head}.{leaf}", ("dense" if path[1] == "kernel" else "same"), None
    return head, "same", None  # cls_token, dist_token, pos_embed


def convert_state_dict(state_dict: dict, module: vit.VisionTransformer,
                       source: str = "state dict") -> dict:
    """timm-named arrays -> {'params': ...} of `module`; ValueError on a bad name or shape."""
    template = jax.eval_shape(module.init, jax.random.PRNGKey(0),
                              jax.ShapeDtypeStruct((1, module.image_size, module.image_size, 3),
                                                   jnp.float32))
    return convert(template, timm_name, state_dict, source, "timm ViT weights")


def load_vit(path, variant: str, **overrides) -> tuple:
    """(module, variables) of a timm ViT variant (vit.VARIANTS) from a local weights file."""
    module = vit.make(variant, **overrides)
    return module, convert_state_dict(read_state_dict(path), module, source=str(path))


# ----------------------------------------------------------------------------------------------
# Golden harness.

def square(size, what: str) -> int:
    """An int, or the side of a square [s, s]; ValueError for non-square sizes."""
    if isinstance(size, int):
        return size
    if len(size) != 2 or size[0] != size[1]:
        raise ValueError(f"ViT config: {what}={list(size)} is not square (only square patches "
                         "and trained grids are supported; inputs may have any size)")
    return int(size[0])


def module_from_arch(arch: dict) -> vit.VisionTransformer:
    """The VisionTransformer of a golden JSON `arch` (timm sizes)."""
    gelu = arch.get("gelu", {}).get("approximate", ["none"])
    if any(a != "none" for a in gelu):
        raise ValueError(f"timm ViT golden: only exact GELU is supported, got {gelu}")
    patch, grid = square(arch["patch_size"], "patch_size"), square(arch["grid_size"], "grid_size")
    return vit.VisionTransformer(
        width=arch["embed_dim"], depth=arch["depth"], heads=arch["num_heads"], patch=patch,
        image_size=patch * grid, num_prefix=arch["num_prefix_tokens"],
        num_classes=arch["num_classes"], mlp_ratio=arch["mlp_hidden"] / arch["embed_dim"],
        eps=arch["layernorm_eps"][0])


def golden_timm_vit(case, impl: str = "xla") -> dict:
    """Runner for timm VisionTransformer / VisionTransformerDistilled cases."""
    del impl  # no custom ops
    module = module_from_arch(case.meta["arch"])
    variables = convert_state_dict(case.prefixed("param"), module, source=case.name)
    x = jnp.asarray(case.arrays["input/x"].transpose(0, 2, 3, 1))  # NCHW -> NHWC
    out, aux = jax.jit(module.apply)(variables, x)
    result = {"output/tokens_after_pos_embed": aux["tokens_after_pos_embed"],
              "output/forward_features": aux["forward_features"],
              "output/pre_logits": aux["pre_logits"]}
    result.update({f"output/blocks.{i}": b for i, b in enumerate(aux["blocks"])})
    if module.num_classes:
        result["output/logits"] = out
        result["output/logits_cls_head"] = aux["logits_cls_head"]
        if "logits_dist_head" in aux:
            result["output/logits_dist_head"] = aux["logits_dist_head"]
    for key, cot in case.prefixed("cotangent").items():
        target = re.sub(r"^R_", "", key)  # R_forward_features -> forward_features
        fn = lambda x, t=target, r=jnp.asarray(cot): jnp.sum(module.apply(variables, x)[1][t] * r)
        grad = jax.jit(jax.grad(fn))(x)
        result["grad/x"] = np.asarray(grad).transpose(0, 3, 1, 2)  # NHWC -> NCHW
    return {k: np.asarray(v) for k, v in result.items()}
