"""Networks as data: the official constructor kwargs of a converted official file, so that a
config (config.networks) can rebuild exactly the file's G and D without the file.

    spec = network_spec.from_official(official.load_official("network-snapshot.pkl"))
    network_spec.save(spec, "workdir/networks.json")
    G, D = network_spec.load_networks("workdir/networks.json")

A spec is {"family": "stylegan2" | "stylegan3" | "biggan" | "biggan_deep", "G": kwargs,
"D": kwargs or None, "rgb_conv_channels": int (BigGAN-deep)}: the kwargs are the official ones
(StyleGAN: the Generator's with stylegan2-ada-pytorch's nested synthesis_kwargs flattened;
BigGAN: the BigGAN-PyTorch run config's Generator / Discriminator keys).
"""

import json

FAMILIES = ("stylegan2", "stylegan3", "biggan", "biggan_deep")


def _flat_g_kwargs(kwargs: dict) -> dict:
    """stylegan2-ada-pytorch nests the synthesis kwargs; the gan_zoo builders take them flat."""
    kw = dict(kwargs)
    return {**{k: v for k, v in kw.items() if k != "synthesis_kwargs"},
            **(kw.get("synthesis_kwargs") or {})}


def from_official(nets) -> dict:
    """The spec of a convert.official.OfficialNetworks."""
    kw = nets.init_kwargs
    spec = {"family": nets.family, "G": dict(kw["G"]), "D": dict(kw["D"]) if kw.get("D") else None}
    if nets.family in ("stylegan2", "stylegan3"):
        spec["G"] = _flat_g_kwargs(spec["G"])
    else:
        spec["rgb_conv_channels"] = int(getattr(nets.G, "rgb_conv_channels", 3))
    return json.loads(json.dumps(spec))  # plain JSON types (EasyDicts, numpy scalars checked)


def build(spec: dict, impl: str = "auto") -> tuple:
    """(G, D or None) gan_zoo modules of a spec."""
    from gan_zoo.convert import biggan, stylegan2, stylegan3  # noqa: PLC0415

    family = spec.get("family")
    if family not in FAMILIES:
        raise ValueError(f"network spec: family {family!r} is not one of {FAMILIES}")
    if family in ("stylegan2", "stylegan3"):
        conv = stylegan3 if family == "stylegan3" else stylegan2
        G = conv.generator_from_kwargs(spec["G"], impl=impl)
        D = stylegan2.discriminator_from_kwargs(spec["D"], impl=impl) if spec.get("D") else None
        return G, D
    model = "BigGANdeep" if family == "biggan_deep" else "BigGAN"
    G = biggan.model_from_torch_kwargs(f"{model}.Generator", spec["G"],
                                       spec.get("rgb_conv_channels", 3))
    D = biggan.model_from_torch_kwargs(f"{model}.Discriminator", spec["D"]) \
        if spec.get("D") else None
    return G, D


def save(spec: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(spec, f, indent=2, sort_keys=True)


def load_networks(path: str) -> tuple:
    """(G, D) of the spec in a networks.json (config.networks); D is required for training."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"config.networks={path}: cannot read the network spec ({e})") from None
    G, D = build(spec)
    if D is None:
        raise ValueError(f"config.networks={path}: the spec has no discriminator ('D'); the "
                         "trainer needs both networks")
    return G, D
