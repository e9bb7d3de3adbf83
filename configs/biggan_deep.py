"""BigGAN-deep (Brock, Donahue, Simonyan, ICLR 2019, App. B), spec biggan.md §2 and §7.

    python experiments/main.py --config=configs/biggan_deep.py:digits --workdir=/tmp/deep_digits

Args (after the colon): a preset name, then overrides such as `steps=2000`, `batch=32`, `smoke`.
"""

from configs import common
from configs.biggan import finish

# Paper settings (App. B-C, spec §2.2 / §7): ch = 128, z = 128 (skip-z, not hierarchical),
# batch 2048, LR G 5e-5 / D 2e-4 at 128 and 2.5e-5 / 2.5e-5 at 256 and 512; attention at 64.
PRESETS = {
    "imagenet128": dict(resolution=128, n_classes=1000, dim_z=128, shared_dim=128, ch=128,
                        depth=2, attn="64", data="imagenet2012", batch=2048, steps=500_000,
                        lr_g=5e-5, lr_d=2e-4),
    "imagenet256": dict(resolution=256, n_classes=1000, dim_z=128, shared_dim=128, ch=128,
                        depth=2, attn="64", data="imagenet2012", batch=2048, steps=500_000,
                        lr_g=2.5e-5, lr_d=2.5e-5),
    "imagenet512": dict(resolution=512, n_classes=1000, dim_z=128, shared_dim=128, ch=128,
                        depth=2, attn="64", data="imagenet2012", batch=2048, steps=500_000,
                        lr_g=2.5e-5, lr_d=2.5e-5),
    # 2-core CPU, 32x32, 10 classes: ~5.5 steps/s (ch=4), 2,500 steps in about 8-10 minutes.
    "digits": dict(resolution=32, n_classes=10, dim_z=64, shared_dim=32, ch=4, depth=2,
                   attn="0", data="digits", batch=32, steps=2500, lr_g=2e-4, lr_d=2e-4,
                   ema_start=500, ema_decay=0.999, standing_batches=8, ckpt_every=500,
                   log_every=50, image_every=250, sv_every=250, grid=100),
}


def get_config(arg=None):
    a = common.parse_arg(arg, preset="imagenet128", steps=0, batch=0, ch=0, res=0, smoke=False)
    p = dict(common.check_preset(a.preset, PRESETS))
    c = finish(p, a, "biggan_deep")
    c.model.hier = False  # BigGAN-deep: skip-z, the whole z goes to every CBN
    return c
