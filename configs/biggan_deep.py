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
    # 2-core CPU, 32x32, 10 classes (not from the paper); same recipe changes as BigGAN's digits
    # preset (1 D step, G LR 1e-3 / D 4e-4, z 32). ch=8: at ch=4 the bottlenecks are 4 channels
    # wide and G collapsed to one shape for every class by 1,000 steps. Measured (2,000 steps):
    # an 8x8 LogisticRegression on 4x4-pooled EMA samples (1,000, labels spread evenly)
    # predicts the conditioning label 66% of the time (0, 1, 4, 6, 7 >= 90%; 5 and 9 ~0%, they
    # come out as other digits). CPU (extrapolated from timed 50- and 250-step runs: 90 and
    # 132 CPU-s, incl. compile): ~500 CPU-s for 2,000 steps, ~4.2 min uncontended on 2 cores.
    "digits": dict(resolution=32, n_classes=10, dim_z=32, shared_dim=32, ch=8, depth=2,
                   attn="0", data="digits", batch=32, steps=2000, lr_g=1e-3, lr_d=4e-4,
                   d_steps=1, ema_start=500, ema_decay=0.999, standing_batches=8,
                   ckpt_every=500, log_every=50, image_every=250, sv_every=250, grid=100),
}


def get_config(arg=None):
    a = common.parse_arg(arg, preset="imagenet128", steps=0, batch=0, ch=0, res=0, smoke=False)
    p = dict(common.check_preset(a.preset, PRESETS))
    c = finish(p, a, "biggan_deep")
    c.model.hier = False  # BigGAN-deep: skip-z, the whole z goes to every CBN
    return c
