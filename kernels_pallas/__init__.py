"""Pallas kernels with the signatures of their `gan_zoo.ops` twins (selected with impl=)."""
