"""One module per GAN family; import the family you need, e.g. `from gan_zoo.models import biggan`."""
