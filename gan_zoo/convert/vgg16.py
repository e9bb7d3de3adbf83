"""VGG16 and LPIPS-VGG16 weights: torch state dicts saved as `.npz` -> Flax variables.

VGG16 (`load_vgg16`, for precision/recall): torchvision `vgg16` names
  features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight [O, I, 3, 3] / .bias [O]
  classifier.{0,3,6}.weight [out, in] / .bias [out]      (fc1, fc2, fc3)
-> params features/conv{i}/kernel [3, 3, I, O], bias; fc{j}/kernel [in, out], bias.
NVIDIA's `vgg16.pkl` is a TorchScript module: export its state dict under these names.

LPIPS (`load_lpips`, for PPL / projection): the lpips package's `LPIPS(net='vgg')` state dict,
  net.slice1.{0,2}.*, net.slice2.{5,7}.*, net.slice3.{10,12,14}.*, net.slice4.{17,19,21}.*,
  net.slice5.{24,26,28}.* (torchvision conv weights / biases, features index kept),
  lin{0..4}.model.1.weight [1, C, 1, 1] (the learned 1x1 weights), and optionally
  scaling_layer.shift / scaling_layer.scale [1, 3, 1, 1] (checked against the constants).
lpips' own `weights/v0.1/vgg.pth` holds only `lin*`: merge in torchvision's `features.N.*` under
the `net.sliceK.N.*` names first (`lpips_state_dict(lin_sd, vgg_sd)` does it).

Write either with torch, once, where it is installed:
`np.savez(out, **{k: v.numpy() for k, v in sd.items()})`.
"""

import pathlib

import numpy as np

from gan_zoo.feature_nets import lpips, vgg16

_SLICE = {idx: 1 + block for idx, block in vgg16.CONVS}  # features index -> lpips slice number


def read_npz(path, what: str) -> dict:
    """{name: array} from a state dict saved as .npz; FileNotFoundError / ValueError otherwise."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights: no file at {path} (expected a torch state "
                                "dict saved as .npz)")
    if path.suffix != ".npz":
        raise ValueError(f"{what} weights {path}: expected .npz (np.savez(out, **{{k: v.numpy() "
                         "for k, v in state_dict.items()}})); torch files are not read")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _check_names(given: dict, wanted: set, what: str) -> None:
    missing, unexpected = sorted(wanted - set(given)), sorted(set(given) - wanted)
    if missing or unexpected:
        raise ValueError(f"{what} weights: {len(missing)} missing names {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, {len(unexpected)} unexpected names "
                         f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")


def _conv(w, b) -> dict:
    return {"kernel": np.asarray(w, np.float32).transpose(2, 3, 1, 0),  # OIHW -> HWIO
            "bias": np.asarray(b, np.float32)}


def convert_vgg16(sd: dict, what: str = "VGG16") -> dict:
    """torchvision vgg16 state dict -> {'params': ...} of `feature_nets.vgg16.VGG16`."""
    wanted = {f"features.{i}.{p}" for i, _ in vgg16.CONVS for p in ("weight", "bias")}
    wanted |= {f"classifier.{j}.{p}" for j in vgg16.FC for p in ("weight", "bias")}
    _check_names(sd, wanted, what)
    feats = {f"conv{i}": _conv(sd[f"features.{i}.weight"], sd[f"features.{i}.bias"])
             for i, _ in vgg16.CONVS}
    params = {"features": feats}
    for j in vgg16.FC:
        params[f"fc{j}"] = {"kernel": np.asarray(sd[f"classifier.{j}.weight"], np.float32).T,
                            "bias": np.asarray(sd[f"classifier.{j}.bias"], np.float32)}
    return {"params": params}


def convert_lpips(sd: dict, what: str = "LPIPS") -> dict:
    """lpips LPIPS(net='vgg') state dict -> {'params': ...} of `feature_nets.lpips.LPIPS`."""
    sd = dict(sd)
    for name, const in (("shift", lpips.SHIFT), ("scale", lpips.SCALE)):
        value = sd.pop(f"scaling_layer.{name}", None)
        if value is not None and not np.allclose(np.ravel(value), const, atol=1e-6):
            raise ValueError(f"{what} weights: scaling_layer.{name} = {np.ravel(value)}, expected "
                             f"the lpips constants {const}")
    wanted = {f"net.slice{_SLICE[i]}.{i}.{p}" for i, _ in vgg16.CONVS for p in ("weight", "bias")}
    wanted |= {f"lin{k}.model.1.weight" for k in range(len(lpips.LAYERS))}
    _check_names(sd, wanted, what)
    net = {f"conv{i}": _conv(sd[f"net.slice{_SLICE[i]}.{i}.weight"],
                             sd[f"net.slice{_SLICE[i]}.{i}.bias"]) for i, _ in vgg16.CONVS}
    params = {"net": net}
    for k in range(len(lpips.LAYERS)):
        params[f"lin{k}"] = np.asarray(sd[f"lin{k}.model.1.weight"], np.float32).reshape(-1)
    return {"params": params}


def lpips_state_dict(lin_sd: dict, vgg_sd: dict) -> dict:
    """lpips' `vgg.pth` (lin* only) + torchvision vgg16 (features.N.*) -> a full LPIPS dict."""
    out = {k: v for k, v in lin_sd.items() if k.startswith(("lin", "scaling_layer."))}
    for i, _ in vgg16.CONVS:
        for p in ("weight", "bias"):
            out[f"net.slice{_SLICE[i]}.{i}.{p}"] = vgg_sd[f"features.{i}.{p}"]
    return out


def export_vgg16(variables) -> dict:
    """The inverse of `convert_vgg16` (torch names and layouts)."""
    p = variables["params"]
    sd = {}
    for i, _ in vgg16.CONVS:
        sd[f"features.{i}.weight"] = np.asarray(p["features"][f"conv{i}"]["kernel"]).transpose(
            3, 2, 0, 1)
        sd[f"features.{i}.bias"] = np.asarray(p["features"][f"conv{i}"]["bias"])
    for j in vgg16.FC:
        sd[f"classifier.{j}.weight"] = np.asarray(p[f"fc{j}"]["kernel"]).T
        sd[f"classifier.{j}.bias"] = np.asarray(p[f"fc{j}"]["bias"])
    return sd


def export_lpips(variables) -> dict:
    """The inverse of `convert_lpips` (without the scaling-layer buffers)."""
    p = variables["params"]
    sd = {}
    for i, _ in vgg16.CONVS:
        conv = p["net"][f"conv{i}"]
        sd[f"net.slice{_SLICE[i]}.{i}.weight"] = np.asarray(conv["kernel"]).transpose(3, 2, 0, 1)
        sd[f"net.slice{_SLICE[i]}.{i}.bias"] = np.asarray(conv["bias"])
    for k in range(len(lpips.LAYERS)):
        sd[f"lin{k}.model.1.weight"] = np.asarray(p[f"lin{k}"]).reshape(1, -1, 1, 1)
    return sd


def vgg16_module(variables) -> vgg16.VGG16:
    """The `VGG16` whose widths match `variables` (the standard net for the real weights)."""
    p = variables["params"]
    last = {block: i for i, block in vgg16.CONVS}  # block -> its last conv
    widths = tuple(int(p["features"][f"conv{last[b]}"]["kernel"].shape[-1]) for b in range(5))
    return vgg16.VGG16(widths, int(p[f"fc{vgg16.FC[0]}"]["kernel"].shape[1]),
                       int(p[f"fc{vgg16.FC[2]}"]["kernel"].shape[1]))


def lpips_module(variables) -> lpips.LPIPS:
    """The `LPIPS` whose widths match `variables`."""
    p = variables["params"]
    return lpips.LPIPS(tuple(int(p[f"lin{k}"].shape[0]) for k in range(len(lpips.LAYERS))))


def load_vgg16(path) -> dict:
    """Variables of `feature_nets.vgg16.VGG16` from a torchvision-named .npz."""
    return convert_vgg16(read_npz(path, "VGG16"), f"VGG16 ({path})")


def load_lpips(path) -> dict:
    """Variables of `feature_nets.lpips.LPIPS` from an lpips-named .npz."""
    return convert_lpips(read_npz(path, "LPIPS"), f"LPIPS ({path})")
