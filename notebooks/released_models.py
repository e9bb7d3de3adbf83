# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ORG/gan_zoo/blob/main/notebooks/released_models.ipynb)
#
# # Released models: official StyleGAN2/3 pickles and BigGAN checkpoints
#
# Load an official network file as it was released, without torch and without running any code
# from it (gan_zoo reads the pickle with a parser that imports nothing): NVlabs StyleGAN2
# (stylegan2-ada-pytorch or stylegan3) and StyleGAN3-T/-R `.pkl` files, or a BigGAN-PyTorch
# `G_ema.pth` / weights folder. Then generate, style-mix, interpolate, and project your own image
# into W. Upload the file below, or set `NETWORK` to a path on a mounted Google Drive.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Setup: gan_zoo from this checkout, or cloned and installed (Colab)
import os
import pathlib
import subprocess
import sys

# The checkout holding this notebook (or the cwd), else a clone with its dependencies
# installed (Colab; TensorFlow is not preinstalled on TPU VMs, which need no TPU set-up call).
cwd = pathlib.Path.cwd()
REPO = next((d for d in (cwd, *cwd.parents, cwd / "gan_zoo") if (d / "gan_zoo").is_dir()
             and (d / "configs").is_dir()), None)
if REPO is None:
    url = os.environ.get("GAN_ZOO_REPO", "https://github.com/ORG/gan_zoo")  # ORG: see README
    subprocess.run(["git", "clone", "-q", "--depth=1", url, "gan_zoo"], check=True)
    REPO = cwd / "gan_zoo"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(REPO)], check=True)
sys.path.insert(0, str(REPO))
from gan_zoo.tools import notebook  # noqa: E402

# Test mode (GAN_ZOO_NOTEBOOK_TEST=1, tests/notebooks_test.py): tiny sizes and steps, XLA's
# cheapest CPU compile; the cwd becomes the checkout (for the configs/ package).
TEST = notebook.setup(REPO)

# %%
import tempfile

import jax
import numpy as np
from IPython.display import display
from PIL import Image

from gan_zoo.convert import official
from gan_zoo.tools import generate_biggan, project, projector, sampling
from gan_zoo.train import writers

print("devices:", jax.devices())


def show(images, cols=0, size=96):
    """float [N, H, W, 3] in [-1, 1] as one grid, each image `size` pixels wide."""
    grid = writers.image_grid(images, cols)
    scale = size / images.shape[2]
    display(Image.fromarray(grid).resize((int(grid.shape[1] * scale),
                                          int(grid.shape[0] * scale)), Image.NEAREST))


# %% [markdown]
# ## The network file
# `NETWORK`: a StyleGAN `.pkl`, or a BigGAN `G_ema.pth` / checkpoint folder (its run settings
# come from the `state_dict.pth` beside it). Empty: upload one. In test mode: the small official
# files of the test suite.

# %%
NETWORK = ""  # e.g. "/content/drive/MyDrive/stylegan3-t-ffhqu-256x256.pkl"
BIGGAN = ""  # optional: a BigGAN-PyTorch G_ema.pth or weights folder
if TEST:
    OFFICIAL = pathlib.Path(os.environ["GAN_ZOO_OFFICIAL"])
    NETWORK, BIGGAN = str(OFFICIAL / "sg2ada_cifar_cond32.pkl"), str(OFFICIAL / "biggan_32")
elif not NETWORK:
    from google.colab import files  # noqa: F401 (Colab only)

    NETWORK = next(iter(files.upload()))
net = official.load_official(NETWORK)
G, variables = net.G, net.g_ema_variables
print(net.family, "resolution", G.img_resolution, "classes", G.c_dim, "num_ws", G.num_ws)

# %% [markdown]
# ## Generate
# The official latents: z of seed s is `RandomState(s).randn(z_dim)`; ψ pulls w toward the
# average w (truncation). A conditional network takes a class.

# %%
CLASS = 0 if G.c_dim else None
PSI = 0.7
seeds = list(range(8))
c = sampling.class_labels(G, CLASS, len(seeds))
ws = sampling.map_z(G, variables, sampling.seed_z(seeds, G.z_dim), c, psi=PSI)
images = sampling.synthesize(G, variables, ws)  # [8, R, R, C] in [-1, 1]
show(images, cols=8)

# %% [markdown]
# ## Style mixing
# Each row takes the coarse styles (the first half of the w's) from its column's seed.

# %%
row_ws, col_ws = ws[:3], ws[3:7]
styles = list(range(G.num_ws // 2))
mixed = sampling.mix_ws(row_ws, col_ws, styles)  # [rows, cols, num_ws, w_dim]
show(sampling.synthesize(G, variables, mixed.reshape(-1, *mixed.shape[2:])), cols=len(col_ws))

# %% [markdown]
# ## Interpolation in W

# %%
frames = sampling.interp_ws(np.asarray(ws[:3]), 5 if TEST else 9)
show(sampling.synthesize(G, variables, frames), cols=len(frames))

# %% [markdown]
# ## Project an image into W
# The StyleGAN2 projector (Karras et al. 2020, §5 and App. D): optimise one w (and the noise
# maps) so that G(w) matches the target. The official distance is LPIPS-VGG16 (`LPIPS`: a
# weights `.npz`, see `gan_zoo.convert.vgg16`); without it a pixel-pyramid distance stands in.
# `TARGET`: your image (cropped to a square); empty: upload one; test mode: a generated image.

# %%
TARGET = ""  # e.g. "/content/drive/MyDrive/me.jpg"
LPIPS = ""  # e.g. "/content/drive/MyDrive/lpips_vgg16.npz"
if TEST:
    TARGET = os.path.join(tempfile.mkdtemp(), "target.png")
    Image.fromarray(writers.to_uint8(images[0])).save(TARGET)  # seed 0's image
elif not TARGET:
    from google.colab import files  # noqa: F401 (Colab only)

    TARGET = next(iter(files.upload()))
target = project.load_target(TARGET, G.img_resolution, G.img_channels)
cfg = projector.ProjectorConfig(num_steps=10 if TEST else 1000,
                                w_avg_samples=256 if TEST else 10000)
feature_fn = project.lpips_feature_fn(LPIPS) if LPIPS else projector.pixel_pyramid_features
w_avg, w_std = projector.w_stats(G, variables, cfg.w_avg_samples,
                                 c=None if c is None else c[0])
out = projector.project(G, variables, target, feature_fn, jax.random.PRNGKey(0), cfg, w_avg,
                        w_std, chunk=cfg.num_steps // 10,
                        log=lambda step, dist, reg: print(f"step {step + 1}: dist {dist:.4g}"))
projected = projector.synthesize(G, variables, out["w"][-1], out["noise"])
show(np.concatenate([target[None] / 127.5 - 1.0, np.asarray(projected)]), size=128)
print("left: target, right: G(projected w)")

# %% [markdown]
# ## BigGAN
# A BigGAN-PyTorch checkpoint has no W space: images by class, truncated z (τ), and
# interpolation in z.

# %%
if BIGGAN:
    big = official.load_official(BIGGAN)
    z = generate_biggan.seed_z(range(8), big.G.dim_z, threshold=0.5)  # τ = 0.5
    y = np.arange(8) % big.G.n_classes
    zs = sampling.interp_ws(z[:2, None], 8)[:, 0]  # z of seed 0 -> seed 1, class y[0]
    out = generate_biggan.render(big.G, big.g_ema_variables, np.concatenate([z, zs]),
                                 np.concatenate([y, np.full(8, y[0])]))  # one compile
    show(out, cols=8)  # row 1: classes 0..7; row 2: interpolation
