"""One module per GAN family; import the one you need: `from gan_zoo.models import biggan`."""
