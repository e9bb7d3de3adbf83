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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ORG/gan_zoo/blob/main/notebooks/stylegan_xl.ipynb)
#
# # StyleGAN-XL: a stem, then a super-resolution stage
#
# StyleGAN-XL (Sauer, Schwarz, Geiger, SIGGRAPH 2022) trains a 16×16 stem first, then grows the
# generator one super-resolution stage at a time with the earlier layers frozen, against a
# Projected discriminator (frozen pretrained feature networks with small trained heads), with
# classifier guidance above 32×32. This notebook runs the CPU-sized `digits` preset (16² stem,
# then 32²) through the one trainer, then samples by class, mixes styles and interpolates.
#
# Status: the `digits` preset trains end to end (~10 minutes on 2 cores) and draws recognisable
# digits, in tinted greys (92% are recognised as their class, on two seeds).
# Its feature networks are tiny random ViTs; the discriminator's is first fitted on the digit
# labels at both stage resolutions as a stand-in for pretrained weights
# (`--config.model.deit_weights` etc. take timm weights). See the README.

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

from gan_zoo import train
from gan_zoo.config_file import load_config_file
from gan_zoo.tools import generate, sampling
from gan_zoo.train import sharding, writers

print("devices:", jax.devices())

# %% [markdown]
# ## Config
# `configs/stylegan_xl.py:digits` (`res=` sets the last stage). Test mode trains the 16² stem
# only, two steps of a tiny network.

# %%
config = load_config_file("configs/stylegan_xl.py:digits" + (",smoke" if TEST else ""))
if TEST:  # the stem only, tiny widths (as tests/recipes/stylegan_xl_run_test.py)
    config.model.resolution = 16
    config.model.update(z_dim=8, w_dim=16, channel_base=128, channel_max=8, stem_layers=3,
                        head_layers=3, embed_dim=8, d_embed_dim=8, d_cmap_dim=8, d_vit_width=16)
config.checkpoint.use_async = False
WORKDIR = tempfile.mkdtemp(prefix="sgxl_") if TEST else "/tmp/gan_zoo_stylegan_xl"
mesh = sharding.make_mesh(config.mesh)
print("mesh:", dict(mesh.shape), "final resolution", config.model.resolution)

# %% [markdown]
# ## Train every stage
# The run moves from the stem to each next stage by itself (each stage's length is
# `train.stage_kimg`); rerunning the cell resumes from the latest checkpoint.

# %%
state, history = train.run(config, WORKDIR)
for step, metrics in history[-3:]:
    print(step, {k: round(float(v), 4) for k, v in metrics.items() if k.endswith("loss")})

# %% [markdown]
# ## Samples by class (one class per column)
# The EMA generator of the latest checkpoint as a plain Flax module and its variables:
# `G.map` (z, one-hot class -> ws) and `G.synthesize` (ws -> image).

# %%
G, variables = generate.load_workdir(WORKDIR, config)
labels = np.tile(np.arange(G.c_dim), 2 if TEST else 5)
onehot = np.eye(G.c_dim, dtype=np.float32)[labels]
ws = sampling.map_z(G, variables, sampling.seed_z(range(len(labels)), G.z_dim), onehot)
grid = writers.image_grid(sampling.synthesize(G, variables, ws), cols=G.c_dim)
display(Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST))

# %% [markdown]
# ## Style mixing and interpolation in W
# Rows take the coarse styles (the first half of the w's) of each column's seed; then a walk
# in W between two seeds. All of digit 3, ψ = 0.7 toward that class's average w.

# %%
c = sampling.class_labels(G, 3, 6)
ws = np.asarray(sampling.map_z(G, variables, sampling.seed_z(range(6), G.z_dim), c, psi=0.7))
mixed = sampling.mix_ws(ws[:2], ws[2:6], list(range(G.num_ws // 2)))
images = sampling.synthesize(G, variables, mixed.reshape(-1, *mixed.shape[2:]))
display(Image.fromarray(writers.image_grid(images, cols=4)).resize((256, 128), Image.NEAREST))
frames = sampling.synthesize(G, variables, sampling.interp_ws(ws[:2], 8))
display(Image.fromarray(writers.image_grid(frames, cols=8)).resize((512, 64), Image.NEAREST))
