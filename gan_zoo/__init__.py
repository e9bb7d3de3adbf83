"""gan_zoo: ProGAN, StyleGAN2/3, BigGAN(-deep), StyleGAN-XL and StyleGAN-T in JAX/Flax.

Importing this package stays light: it never imports TensorFlow, TFDS, clu writers or torch.
Sub-packages are imported explicitly, e.g. `from gan_zoo import ops` or
`from gan_zoo.models import biggan`.
"""

__version__ = "0.1.0"
