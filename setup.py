"""gan_zoo: the landmark large-scale GANs in JAX/Flax, trained from one code base."""
import setuptools

INSTALL_REQUIRES = [
    "jax>=0.4.35",
    "flax>=0.10",
    "optax",
    "orbax-checkpoint",
    "tensorflow-datasets",
    "importlib_resources",  # tensorflow-datasets needs it to prepare (write) a dataset
    "tensorflow-cpu; platform_machine == 'x86_64' or platform_machine == 'AMD64'",
    "tensorflow; platform_machine != 'x86_64' and platform_machine != 'AMD64'",
    "ml-collections",
    "einops",
    "numpy",
    "scipy",
    "clu",
    "tensorboard",  # clu's TensorBoard writer imports it
    "pillow",
    "grain",  # data.loader='grain': the random-access input pipeline (gan_zoo/data/grain_source)
    "scikit-learn",  # the built-in `digits` dataset ships inside it
    "scikit-image",  # the built-in `photos` dataset ships inside it
    "safetensors",  # feature-net loaders read timm / open_clip .safetensors (numpy API, no torch)
    "ftfy",  # CLIP tokenizer text clean-up (feature_nets/clip_tokenizer.py)
    "regex",  # CLIP tokenizer pattern (Unicode classes)
]
EXTRAS_REQUIRE = {
    # jupytext .. matplotlib: tests/notebooks_test.py runs notebooks/ (matplotlib: their plots);
    # filelock: JAX's size-limited compilation cache, shared by the tests (tests/conftest.py)
    "test": ["pytest>=7", "pytest-xdist", "ruff", "jupytext", "nbclient", "nbformat", "ipykernel",
             "matplotlib", "filelock"],
}

setuptools.setup(
    name="gan_zoo",
    version="0.1.0",
    description="ProGAN, StyleGAN2/3, BigGAN(-deep), StyleGAN-XL and StyleGAN-T in JAX/Flax.",
    packages=setuptools.find_packages(include=["gan_zoo", "gan_zoo.*", "kernels_pallas",
                                               "kernels_pallas.*"]),
    # The CLIP BPE vocabulary and its licence notices (feature_nets/clip_tokenizer.py).
    package_data={"gan_zoo.feature_nets": ["data/*"]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
