"""Official PyTorch state dicts (torch names, NCHW/OIHW) -> gan_zoo Flax variables."""
