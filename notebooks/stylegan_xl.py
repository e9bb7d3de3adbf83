# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
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
# Status: the `digits` preset trains end to end but does not yet draw recognisable digits in its
# ~8 CPU minutes, and its feature networks are randomly initialised (no weight files needed;
# `--config.model.deit_weights` etc. take timm weights). See the README's status paragraph.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Setup: gan_zoo from this checkout, or cloned and installed (Colab)
import os
import pathlib
import subprocess
import sys

# Test mode (CI, tests/notebooks_test.py): tiny sizes and steps, and XLA's cheapest CPU
# compile (must be set before JAX starts). Colab TPU VMs need no TPU set-up call, and TensorFlow
# is not preinstalled there: the install below pulls in what gan_zoo needs.
TEST = os.environ.get("GAN_ZOO_NOTEBOOK_TEST") == "1"
if TEST:
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 "
                          "--xla_llvm_disable_expensive_passes=true")
REPO_URL = os.environ.get("GAN_ZOO_REPO", "https://github.com/ORG/gan_zoo")  # ORG: see README


def find_checkout():
    """The gan_zoo checkout holding this notebook (or the cwd), else None."""
    for d in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]:
        if (d / "configs").is_dir() and (d / "gan_zoo").is_dir():
            return d
    return None


REPO = find_checkout()
if REPO is None:  # Colab: clone, then install it with its dependencies
    subprocess.run(["git", "clone", "-q", "--depth=1", REPO_URL, "gan_zoo"], check=True)
    REPO = pathlib.Path("gan_zoo").resolve()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(REPO)], check=True)
os.chdir(REPO)  # the configs/ files import each other as the `configs` package
sys.path.insert(0, str(REPO))

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
