"""Load the official released networks without torch and without executing anything from the file.

    nets = load_official("stylegan2-ffhq-1024x1024.pkl")   # NVlabs network pickle
    nets = load_official("weights/BigGAN_run/")              # BigGAN-PyTorch checkpoint folder
    img, _ = nets.G.apply(nets.g_ema_variables, z, c, psi=0.7, noise_mode="const")

(Work in progress: the API below is fixed; the implementation follows.)
"""

import dataclasses
from typing import Optional


class UnsafePickleError(ValueError):
    """A pickle names a global (or a call) outside the allow-list of inert data records."""


@dataclasses.dataclass
class OfficialNetworks:
    family: str  # "stylegan2" | "stylegan3" | "biggan" | "biggan_deep"
    path: str  # the file (or BigGAN checkpoint folder) read
    G: object  # gan_zoo flax module of the generator
    g_variables: Optional[dict]  # from the file's G (None if absent)
    g_ema_variables: Optional[dict]  # from G_ema (NVlabs) / G_ema.pth (BigGAN); None if absent
    D: object  # flax module of the discriminator, or None
    d_variables: Optional[dict]
    init_kwargs: dict  # {"G": official kwargs, "D": ...} as stored in the file / config
    extra: dict  # training_set_kwargs, augment_pipe p, BigGAN config, resolution, c_dim


def read_pickle(path) -> dict:
    """Safe NVlabs network pickle -> plain data (tensors as numpy arrays)."""
    raise NotImplementedError


def read_torch_checkpoint(path) -> dict:
    """Safe `.pth` / `.pt` (zip and pre-1.6 legacy) -> its object with numpy arrays."""
    raise NotImplementedError


def load_official(path, *, biggan_kwargs: Optional[dict] = None) -> OfficialNetworks:
    """Reads an official file and builds the matching gan_zoo networks."""
    raise NotImplementedError
