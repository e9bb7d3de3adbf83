"""FID Inception-v3 weights: torch state dict -> `gan_zoo.feature_nets.inception_v3` variables.

The real weights are `pt_inception-2015-12-05-6726825d.pth` (pytorch-fid / torch-fidelity
releases; torch-fidelity names it `weights-inception-2015-12-05-6726825d.pth`). Either the `.pth`
(read with torch, imported lazily, only if installed) or the same state dict saved as `.npz` with
the state-dict names as keys. Golden-format files (`param/...`, `buffer/...` keys, e.g.
`feat_inception_fid.npz`) are accepted too.

Name map: `A.B.conv.weight` [O, I, kh, kw] -> params A/B/conv/kernel [kh, kw, I, O];
`bn.weight`/`bn.bias` -> params bn/scale, bn/bias; `bn.running_mean`/`running_var` -> batch_stats
bn/mean, bn/var; `fc.weight` [1008, 2048] -> params fc/kernel [2048, 1008]; `fc.bias` -> fc/bias.
"""

import functools
import hashlib
import pathlib

import flax
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.feature_nets import inception_v3

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
# Known names that the FID network does not use.
_IGNORED_SUFFIXES = (".num_batches_tracked",)
_IGNORED_PREFIXES = ("AuxLogits.",)
_BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def read_state_dict(path) -> dict:
    """{name: numpy array} from a `.pth`/`.pt` (needs torch) or `.npz` state dict."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights: no file at {path} (expected {WEIGHTS_FILENAME}"
                                " or the same state dict saved as .npz)")
    if path.suffix == ".npz":
        with np.load(path) as data:
            sd = {k: data[k] for k in data.files}
        if any(k.startswith(("param/", "buffer/")) for k in sd):  # golden-format file
            sd = {k.split("/", 1)[1]: v for k, v in sd.items()
                  if k.startswith(("param/", "buffer/"))}
        return sd
    try:
        import torch  # optional, lazy: never a runtime dependency
    except ImportError:
        raise ValueError(f"Inception weights {path}: reading {path.suffix} files needs torch, "
                         "which is not installed; save the state dict as .npz (np.savez(out, **{k: "
                         "v.numpy() for k, v in sd.items()})) and pass that instead") from None
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().numpy() for k, v in sd.items()}


def _torch_name(collection: str, path: tuple) -> str:
    """Flax variable path -> torch state-dict name."""
    if path[0] == "fc":
        return "fc." + path[1].replace("kernel", "weight")
    leaf = {("params", "kernel"): "conv.weight", ("params", "scale"): "bn.weight",
            ("params", "bias"): "bn.bias", ("batch_stats", "mean"): "bn.running_mean",
            ("batch_stats", "var"): "bn.running_var"}[(collection, path[-1])]
    return ".".join(path[:-2]) + "." + leaf


def _to_flax(name: str, value: np.ndarray) -> np.ndarray:
    if name == "fc.weight":
        return value.T  # [1008, 2048] -> [2048, 1008]
    if name.endswith("conv.weight"):
        return value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    return value


def convert_state_dict(state_dict: dict, source: str = "state dict") -> dict:
    """torch-named arrays -> {'params', 'batch_stats'}; raises ValueError on any missing,
    unexpected or mis-shaped name."""
    template = jax.eval_shape(inception_v3.init_variables)
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(template))
    wanted = {_torch_name(k[0], k[1:]): (k, v.shape) for k, v in flat.items()}
    given = {k: v for k, v in state_dict.items()
             if not (k.endswith(_IGNORED_SUFFIXES) or k.startswith(_IGNORED_PREFIXES))}
    missing, unexpected = sorted(set(wanted) - set(given)), sorted(set(given) - set(wanted))
    if missing or unexpected:
        raise ValueError(f"Inception weights ({source}): {len(missing)} missing names "
                         f"{missing[:5]}{'...' if len(missing) > 5 else ''}, {len(unexpected)} "
                         f"unexpected names {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    out = {}
    for name, (key, shape) in wanted.items():
        value = _to_flax(name, np.asarray(given[name], np.float32))
        if value.shape != tuple(shape):
            raise ValueError(f"Inception weights ({source}): {name} has shape "
                             f"{np.shape(given[name])}, expected the torch layout of {shape}")
        out[key] = jnp.asarray(value)
    return flax.traverse_util.unflatten_dict(out)


def load_inception(path) -> dict:
    """Variables of `InceptionV3` from a local weights file (.pth with torch, or .npz)."""
    return convert_state_dict(read_state_dict(path), source=str(path))


@functools.lru_cache(maxsize=2)
def rfid_variables(seed: int = 0) -> dict:
    """The randomly initialised Inception of rFID (StyleGAN-XL §4.1), fixed by `seed` (cached:
    initialising compiles the whole net)."""
    return inception_v3.init_variables(seed)


def to_state_dict(variables) -> dict:
    """`InceptionV3` variables -> torch-named numpy arrays (the inverse of convert_state_dict)."""
    sd = {}
    for (col, *path), v in flax.traverse_util.flatten_dict(flax.core.unfreeze(variables)).items():
        name = _torch_name(col, tuple(path))
        v = np.asarray(v, np.float32)
        sd[name] = v.T if name == "fc.weight" else (
            v.transpose(3, 2, 0, 1) if name.endswith("conv.weight") else v)  # HWIO -> OIHW
    return sd


def save_rfid_weights(path, seed: int = 0) -> str:
    """Saves rFID's random Inception (`rfid_variables(seed)`) as a torch-named .npz, the fixed
    file that `config.eval.rfid_weights` / `tools.fid --rfid=FILE` load (rFID values are only
    comparable with the same file). Returns the path."""
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"save_rfid_weights: path must end in .npz, got {path}")
    np.savez(path, **to_state_dict(rfid_variables(seed)))
    return str(path)


def state_dict_sha256(state_dict: dict) -> str:
    """The golden `state_dict_sha256`: sha256 over (name bytes + raw little-endian bytes) of every
    parameter, then every buffer (BN running stats, num_batches_tracked), names sorted in each."""
    is_buffer = lambda k: k.endswith(_BUFFER_SUFFIXES)
    names = sorted(k for k in state_dict if not is_buffer(k))
    names += sorted(k for k in state_dict if is_buffer(k))
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode())
        h.update(np.ascontiguousarray(state_dict[name]).tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# Golden harness.

def _golden_state_dict(case) -> dict:
    """The case's weights, else (params_by_reference) feat_inception_fid.npz beside it."""
    sd = {**case.prefixed("param"), **case.prefixed("buffer")}
    if sd:
        return sd
    ref = case.meta.get("params_by_reference")
    name = ref if isinstance(ref, str) and ref.endswith(".npz") else "feat_inception_fid.npz"
    if isinstance(ref, dict):
        name = next((v for v in ref.values() if isinstance(v, str) and v.endswith(".npz")), name)
    for folder in _case_folders(case):
        path = folder / pathlib.Path(name).name
        if path.is_file():
            sd = read_state_dict(path)
            want = case.meta.get("state_dict_sha256")
            if want and state_dict_sha256(sd) != want:
                raise ValueError(f"{case.name}: weights at {path} do not match state_dict_sha256")
            return sd
    raise FileNotFoundError(f"{case.name}: stores no weights and {name} (params_by_reference) was "
                            "not found beside it")


def _case_folders(case) -> list:
    """Folders that may hold the referenced weights: the case's own folder, then $GAN_ZOO_GOLDEN
    and ../shared/golden."""
    import os

    folders = [case.path.parent] if getattr(case, "path", None) is not None else []
    if os.environ.get("GAN_ZOO_GOLDEN"):
        folders.append(pathlib.Path(os.environ["GAN_ZOO_GOLDEN"]))
    folders.append(pathlib.Path(__file__).resolve().parents[3] / "shared" / "golden")
    return folders


def golden_inception(case, impl: str = "xla") -> dict:
    """Runner for torch_fidelity FeatureExtractorInceptionV3 cases: every `output/<tag>_...`."""
    del impl  # no custom ops in this network
    variables = convert_state_dict(_golden_state_dict(case), source=case.name)
    apply = jax.jit(inception_v3.InceptionV3().apply)
    result = {}
    for key, images in case.prefixed("input").items():
        tag = key.removeprefix("img_")
        _, aux = apply(variables, jnp.asarray(images.transpose(0, 2, 3, 1)))  # NCHW -> NHWC
        first7 = np.asarray(aux["mixed6_conv"][..., :inception_v3.SFID_CHANNELS])
        result.update({
            f"output/{tag}_pool3_2048": np.asarray(aux["pool3"]),
            f"output/{tag}_logits": np.asarray(aux["logits"]),
            f"output/{tag}_logits_unbiased": np.asarray(aux["logits_unbiased"]),
            f"output/{tag}_feat_768": np.asarray(aux["feat_768"]),
            f"output/{tag}_feat_192": np.asarray(aux["feat_192"]),
            f"output/{tag}_feat_64": np.asarray(aux["feat_64"]),
            f"output/{tag}_mixed6_conv_first7": first7.transpose(0, 3, 1, 2),  # NHWC -> NCHW
            f"output/{tag}_sfid_spatial_2023": np.asarray(aux["sfid"]),
        })
    return result
