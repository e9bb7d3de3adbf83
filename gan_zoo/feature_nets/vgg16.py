"""VGG16 (Simonyan & Zisserman 2015, configuration D) in Flax, NHWC, torchvision layout.

Used by the improved precision/recall metric (Kynkäänniemi et al. 2019: 4096-d fc2 features; spec
stylegan2_and_progan.md Part C) and, through `VGG16Trunk`, by LPIPS (`feature_nets.lpips`).
Weights: `gan_zoo.convert.vgg16.load_vgg16` (torchvision names `features.N.*`, `classifier.N.*`).

`VGG16` steps (torch-fidelity's FeatureExtractorVGG16 preprocessing):
  1. uint8 [N, H, W, 3] -> float, TF1-legacy bilinear resize to 224x224 (as the FID Inception);
  2. x / 255, then ImageNet normalisation (x - mean) / std;
  3. features: 13 conv3x3 + ReLU, 2x2 max-pool after relu1_2, 2_2, 3_3, 4_3, 5_3 -> [N, 7, 7, 512];
  4. flatten in torch's [C, 7, 7] order, fc1 + ReLU, fc2 (aux "fc2"), ReLU (aux "fc2_relu"), fc3.
Decision: precision/recall reads "fc2_relu" (torch-fidelity's `prc` default); "fc2" is exposed too.
"""

import flax.linen as nn
import jax.numpy as jnp

from gan_zoo.feature_nets.inception_v3 import tf1_resize_bilinear

RESOLUTION = 224
MEAN = (0.485, 0.456, 0.406)  # ImageNet RGB mean (torchvision)
STD = (0.229, 0.224, 0.225)  # ImageNet RGB std
# (torchvision features index, block) of the 13 convs; a block's last conv is followed by a pool.
CONVS = ((0, 0), (2, 0), (5, 1), (7, 1), (10, 2), (12, 2), (14, 2), (17, 3), (19, 3), (21, 3),
         (24, 4), (26, 4), (28, 4))
TAPS = {2: "relu1_2", 7: "relu2_2", 14: "relu3_3", 21: "relu4_3", 28: "relu5_3"}
WIDTHS = (64, 128, 256, 512, 512)  # channels per block
FC = (0, 3, 6)  # torchvision classifier indices of fc1, fc2, fc3


class VGG16Trunk(nn.Module):
    """VGG16 `features` (conv3x3 + ReLU, pools). x: [N, H, W, 3] normalised -> ([N, H/32, W/32,
    C5], {relu1_2, relu2_2, relu3_3, relu4_3, relu5_3})."""

    widths: tuple = WIDTHS  # channels of blocks 1-5 (smaller only in tests)
    pool_last: bool = True  # the 5th max-pool (features.30); LPIPS stops at relu5_3

    @nn.compact
    def __call__(self, x):
        taps = {}
        for idx, block in CONVS:
            x = nn.relu(nn.Conv(self.widths[block], (3, 3), padding=1, name=f"conv{idx}")(x))
            if idx in TAPS:
                taps[TAPS[idx]] = x
                if idx != 28 or self.pool_last:
                    x = nn.max_pool(x, (2, 2), (2, 2))  # [N, H/2, W/2, C]
        return x, taps


class VGG16(nn.Module):
    """VGG16 classifier network. images: uint8 [N, H, W, 3] -> (logits [N, 1000], aux with
    'fc2' and 'fc2_relu' [N, 4096] and the trunk taps)."""

    widths: tuple = WIDTHS  # channels of blocks 1-5
    hidden: int = 4096  # fc1 / fc2 width
    num_classes: int = 1000

    @nn.compact
    def __call__(self, images):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"VGG16: expected images [N, H, W, 3], got {images.shape}")
        # Resize + normalise.
        x = tf1_resize_bilinear(images.astype(jnp.float32), RESOLUTION) / 255.0
        x = (x - jnp.asarray(MEAN)) / jnp.asarray(STD)
        # Features.
        x, aux = VGG16Trunk(self.widths, name="features")(x)  # [N, 7, 7, 512]
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # torch flatten order [C,H,W]
        # Classifier (dropout is off at inference).
        h = nn.relu(nn.Dense(self.hidden, name=f"fc{FC[0]}")(x))
        aux["fc2"] = nn.Dense(self.hidden, name=f"fc{FC[1]}")(h)
        aux["fc2_relu"] = nn.relu(aux["fc2"])
        return nn.Dense(self.num_classes, name=f"fc{FC[2]}")(aux["fc2_relu"]), aux
