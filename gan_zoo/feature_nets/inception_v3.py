"""The FID Inception-v3: TF graph `inception-2015-12-05` as ported by pytorch-fid / torch-fidelity.

Szegedy et al. 2016 (Inception-v3), with the quirks of the 2015 TF graph that FID, sFID, IS, KID and
rFID are defined on (golden/README.md "Feature networks"; spec stylegan2_and_progan.md Part C,
stylegan_xl_and_t.md §3):

1. uint8 [N, H, W, 3] RGB -> float32, ALWAYS resized to 299x299 with TF1 legacy bilinear (source
   coordinate = dst * float32(in/out) in float32, no half-pixel offset; identity at 299).
2. x = (x - 128) / 128.
3. Convolutions without bias, BatchNorm eps 1e-3, ReLU after every BN.
4. Pool branches: 3x3/1 average pool NOT counting padding (Mixed_5b..7b); MAX pool in Mixed_7c.
5. pool3 = global average of Mixed_7c (2048); logits = pool3 @ fc (1008 classes), with and without
   the bias (`logits_unbiased` is what Inception Score uses).

Parameter names follow the torch state dict (`Mixed_5b/branch1x1/conv/kernel`), so the converter
in `gan_zoo.convert.inception` is a transpose per tensor.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

RESOLUTION = 299  # the graph's input size
BN_EPS = 1e-3  # TF 2015 graph
NUM_CLASSES = 1008  # 1000 ImageNet classes + unused ones of the 2015 graph
SFID_CHANNELS = 7  # sFID keeps mixed_6/conv[..., :7] (guided-diffusion evaluator)
FEATURE_DIMS = {"pool3": 2048, "logits": NUM_CLASSES, "logits_unbiased": NUM_CLASSES,
                "feat_768": 768, "feat_192": 192, "feat_64": 64,
                "sfid": 17 * 17 * SFID_CHANNELS}


# ----------------------------------------------------------------------------------------------
# Preprocessing.

def _tf1_axis(in_size: int, out_size: int):
    """Design-time taps of TF1 legacy bilinear along one axis: (lo, hi, frac), numpy."""
    ratio = np.float32(in_size / out_size)  # rounded to float32, as torch-fidelity computes it
    src = np.arange(out_size, dtype=np.float32) * ratio  # float32 coordinates
    lo = np.floor(src).astype(np.int32)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (src - lo.astype(np.float32)).astype(np.float32)


def tf1_resize_bilinear(x: jnp.ndarray, size: int = RESOLUTION) -> jnp.ndarray:
    """TF1.x legacy bilinear resize (align_corners=False, no half-pixel centres, no antialias).

    x: float32 [N, H, W, C] -> [N, size, size, C]. Interpolates along x first, then along y.
    """
    ylo, yhi, dy = _tf1_axis(x.shape[1], size)
    xlo, xhi, dx = _tf1_axis(x.shape[2], size)
    dx = jnp.asarray(dx)[None, None, :, None]
    dy = jnp.asarray(dy)[None, :, None, None]
    rows_lo, rows_hi = jnp.take(x, ylo, axis=1), jnp.take(x, yhi, axis=1)
    top = rows_lo[:, :, xlo] + (rows_lo[:, :, xhi] - rows_lo[:, :, xlo]) * dx
    bottom = rows_hi[:, :, xlo] + (rows_hi[:, :, xhi] - rows_hi[:, :, xlo]) * dx
    return top + (bottom - top) * dy


def preprocess(images: jnp.ndarray) -> jnp.ndarray:
    """uint8 [N, H, W, 3] -> the normalised float32 [N, 299, 299, 3] fed to Conv2d_1a."""
    check_images(images, "InceptionV3")
    x = tf1_resize_bilinear(images.astype(jnp.float32), RESOLUTION)
    return (x - 128.0) / 128.0


def check_images(images, name: str, channels: int = 3) -> None:
    """Raises ValueError unless images is uint8 [N, H, W, channels] with N, H, W >= 1."""
    shape, dtype = tuple(images.shape), images.dtype
    if dtype != jnp.uint8:
        raise ValueError(f"{name}: expected uint8 images in 0..255, got dtype {dtype}")
    if len(shape) != 4 or shape[-1] != channels or min(shape[:3]) < 1:
        raise ValueError(f"{name}: expected images [N, H, W, {channels}] (NHWC), got shape {shape}")


# ----------------------------------------------------------------------------------------------
# Pools (NHWC, 3x3 windows).

def max_pool(x, stride: int, pad: int = 0):
    """3x3 max pool; padding (if any) never wins the max."""
    p = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, stride, stride, 1), p)


def avg_pool_exclude_pad(x):
    """3x3/1 average pool, padding 1, dividing by the number of real pixels in each window
    (torch count_include_pad=False = TF 'SAME' average pool)."""
    p = ((0, 0), (1, 1), (1, 1), (0, 0))
    total = lax.reduce_window(x, 0.0, lax.add, (1, 3, 3, 1), (1, 1, 1, 1), p)
    ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    count = lax.reduce_window(ones, 0.0, lax.add, (1, 3, 3, 1), (1, 1, 1, 1), p)
    return total / count


# ----------------------------------------------------------------------------------------------
# Layers.

class _ConvKernel(nn.Module):
    """The bias-free conv kernel [kh, kw, I, O] (torch `conv.weight`), created like nn.Conv's."""
    features: int  # O
    kernel: tuple  # (kh, kw)
    kernel_init: object  # initializer of the [kh, kw, I, O] kernel

    @nn.compact
    def __call__(self, in_features: int):
        shape = tuple(self.kernel) + (in_features, self.features)
        return self.param("kernel", self.kernel_init, shape)


class _BatchNormStats(nn.Module):
    """Inference BatchNorm variables, named as nn.BatchNorm names them: params scale (gamma),
    bias (beta); batch_stats mean, var (torch running_mean / running_var)."""
    features: int  # C

    @nn.compact
    def __call__(self):
        shape = (self.features,)
        mean = self.variable("batch_stats", "mean", jnp.zeros, shape).value
        var = self.variable("batch_stats", "var", jnp.ones, shape).value
        scale = self.param("scale", nn.initializers.ones_init(), shape)
        bias = self.param("bias", nn.initializers.zeros_init(), shape)
        return scale, bias, mean, var


def conv2d(x, kernel, stride=1, padding=(0, 0)):
    """NHWC x [N, H, W, I], HWIO kernel [kh, kw, I, O], symmetric zero padding (ph, pw)."""
    ph, pw = padding
    return lax.conv_general_dilated(x, kernel, (stride, stride), ((ph, ph), (pw, pw)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3, running stats) + ReLU, run as ONE conv with a bias:
    inference BN is affine per output channel, so it folds into the kernel (exact up to rounding).

    x: [N, H, W, I] -> [N, H', W', O].
    """
    features: int  # O
    kernel: tuple = (1, 1)  # [kh, kw]
    stride: int = 1
    padding: tuple = (0, 0)  # (ph, pw), symmetric
    kernel_init: object = nn.initializers.variance_scaling(2.0, "fan_in", "normal")  # rFID init

    def setup(self):
        self.conv = _ConvKernel(self.features, self.kernel, self.kernel_init)
        self.bn = _BatchNormStats(self.features)

    def folded(self, in_features: int):
        """(kernel [kh, kw, I, O], bias [O]) of conv + BN: BN(y) = (y - mean) * s + beta with
        s = gamma / sqrt(var + eps), so conv(x, W) -> BN equals conv(x, W * s) + beta - mean * s."""
        scale, beta, mean, var = self.bn()
        s = scale * lax.rsqrt(var + BN_EPS)  # [O]
        return self.conv(in_features) * s, beta - mean * s

    def __call__(self, x):
        kernel, bias = self.folded(x.shape[-1])
        return nn.relu(conv2d(x, kernel, self.stride, self.padding) + bias)


def _conv(features, kernel=1, stride=1, padding=0, name=None):
    """BasicConv2d with int-or-pair kernel and padding."""
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    return BasicConv2d(features, pair(kernel), stride, pair(padding), name=name)


def parallel_1x1(x, convs, pool_last: bool = False) -> list:
    """Several 1x1 BasicConv2ds that read the same x, run as ONE conv (kernels concatenated along
    O, output split back): one larger GEMM instead of several thin ones, same values up to
    rounding. pool_last: the last conv is a pool branch, relu(BN(conv(avg_pool(x)))); the 3x3
    average (weights summing to 1 in every window) commutes with the 1x1 conv and with the BN
    bias, so it is applied to that conv's few output channels instead of x's many input ones.

    x: [N, H, W, I] -> [[N, H, W, O_k] for each conv k].
    """
    kernels, biases = zip(*(c.folded(x.shape[-1]) for c in convs))
    y = conv2d(x, jnp.concatenate(kernels, axis=-1))  # [N, H, W, sum_k O_k]
    ys = jnp.split(y, np.cumsum([c.features for c in convs])[:-1], axis=-1)
    if pool_last:
        ys[-1] = avg_pool_exclude_pad(ys[-1])
    return [nn.relu(y + b) for y, b in zip(ys, biases)]


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b/c/d): [1x1 64, 5x5 64, 3x3dbl 96, avgpool->pool_features]."""
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1, b5, b3, bp = parallel_1x1(x, [
            _conv(64, name="branch1x1"), _conv(48, name="branch5x5_1"),
            _conv(64, name="branch3x3dbl_1"), _conv(self.pool_features, name="branch_pool")],
            pool_last=True)
        b5 = _conv(64, 5, padding=2, name="branch5x5_2")(b5)
        b3 = _conv(96, 3, padding=1, name="branch3x3dbl_2")(b3)
        b3 = _conv(96, 3, padding=1, name="branch3x3dbl_3")(b3)
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): [3x3/2 384, 3x3dbl/2 96, maxpool/2]."""

    @nn.compact
    def __call__(self, x):
        b3 = _conv(384, 3, stride=2, name="branch3x3")(x)
        bd = _conv(64, name="branch3x3dbl_1")(x)
        bd = _conv(96, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = _conv(96, 3, stride=2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, max_pool(x, 2)], axis=-1)


class InceptionC(nn.Module):
    """17x17 block (Mixed_6b..6e): [1x1 192, 7x7 192, 7x7dbl 192, avgpool->192]; aux = branch1x1."""
    channels_7x7: int  # c7

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        b1, b7, bd, bp = parallel_1x1(x, [
            _conv(192, name="branch1x1"), _conv(c7, name="branch7x7_1"),
            _conv(c7, name="branch7x7dbl_1"), _conv(192, name="branch_pool")], pool_last=True)
        b7 = _conv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = _conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = _conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = _conv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = _conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = _conv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        return jnp.concatenate([b1, b7, bd, bp], axis=-1), b1


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a): [3x3/2 320, 7x7x3/2 192, maxpool/2]."""

    @nn.compact
    def __call__(self, x):
        b3, b7 = parallel_1x1(x, [_conv(192, name="branch3x3_1"),
                                  _conv(192, name="branch7x7x3_1")])
        b3 = _conv(320, 3, stride=2, name="branch3x3_2")(b3)
        b7 = _conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = _conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = _conv(192, 3, stride=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, max_pool(x, 2)], axis=-1)


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b avg pool, Mixed_7c MAX pool: a quirk of the 2015 graph):
    [1x1 320, 3x3 2a 384, 3x3 2b 384, dbl 3a 384, dbl 3b 384, pool->192]."""
    pool: str  # "avg" | "max"

    @nn.compact
    def __call__(self, x):
        convs = [_conv(320, name="branch1x1"), _conv(384, name="branch3x3_1"),
                 _conv(448, name="branch3x3dbl_1")]
        pool = _conv(192, name="branch_pool")
        if self.pool == "avg":  # the average pool commutes with the 1x1 conv: fused
            b1, b3, bd, bp = parallel_1x1(x, convs + [pool], pool_last=True)
        else:  # a max pool does not
            (b1, b3, bd), bp = parallel_1x1(x, convs), pool(max_pool(x, 1, pad=1))
        b3a = _conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3)
        b3b = _conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)
        bd = _conv(384, 3, padding=1, name="branch3x3dbl_2")(bd)
        bda = _conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd)
        bdb = _conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)
        return jnp.concatenate([b1, b3a, b3b, bda, bdb, bp], axis=-1)


class Logits(nn.Module):
    """fc: pool3 [N, 2048] -> (pool3 @ W + b, pool3 @ W), each [N, classes]. The bias is a separate
    add, as in torch-fidelity, which computes `logits_unbiased` first."""
    classes: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.classes))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.classes,))
        unbiased = x @ kernel
        return unbiased + bias, unbiased


class InceptionV3(nn.Module):
    """FID Inception-v3. images: uint8 [N, H, W, 3] -> (pool3 [N, 2048], aux).

    aux: logits / logits_unbiased [N, 1008], feat_768 / feat_192 / feat_64 (global means after
    Mixed_6e / MaxPool_2 / MaxPool_1), mixed6_conv [N, 17, 17, 192] (TF `mixed_6/conv` =
    Mixed_6d.branch1x1), sfid [N, 2023] (its first 7 channels flattened H, W, C), and
    spatial_mean/<module> [N, C] for debugging.
    """

    @nn.compact
    def __call__(self, images):
        aux, means = {}, {}
        x = preprocess(images)  # [N, 299, 299, 3]

        # Stem.
        x = means["Conv2d_1a_3x3"] = _conv(32, 3, stride=2, name="Conv2d_1a_3x3")(x)
        x = means["Conv2d_2a_3x3"] = _conv(32, 3, name="Conv2d_2a_3x3")(x)
        x = means["Conv2d_2b_3x3"] = _conv(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
        x = means["MaxPool_1"] = max_pool(x, 2)
        x = means["Conv2d_3b_1x1"] = _conv(80, name="Conv2d_3b_1x1")(x)
        x = means["Conv2d_4a_3x3"] = _conv(192, 3, name="Conv2d_4a_3x3")(x)
        x = means["MaxPool_2"] = max_pool(x, 2)  # [N, 35, 35, 192]

        # 35x35 -> 17x17 -> 8x8.
        for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = means[name] = InceptionA(pool_features, name=name)(x)
        x = means["Mixed_6a"] = InceptionB(name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                         ("Mixed_6e", 192)):
            x, branch1x1 = InceptionC(c7, name=name)(x)
            means[name] = x
            if name == "Mixed_6d":
                aux["mixed6_conv"] = branch1x1  # [N, 17, 17, 192]
        x = means["Mixed_7a"] = InceptionD(name="Mixed_7a")(x)
        x = means["Mixed_7b"] = InceptionE("avg", name="Mixed_7b")(x)
        x = means["Mixed_7c"] = InceptionE("max", name="Mixed_7c")(x)  # [N, 8, 8, 2048]

        # Heads.
        pool3 = jnp.mean(x, axis=(1, 2))
        aux["logits"], aux["logits_unbiased"] = Logits(NUM_CLASSES, name="fc")(pool3)
        aux["pool3"] = pool3
        for k in ("feat_768", "feat_192", "feat_64"):
            src = {"feat_768": "Mixed_6e", "feat_192": "MaxPool_2", "feat_64": "MaxPool_1"}[k]
            aux[k] = jnp.mean(means[src], axis=(1, 2))
        n = x.shape[0]
        aux["sfid"] = aux["mixed6_conv"][..., :SFID_CHANNELS].reshape(n, -1)  # H, W, C order
        aux["spatial_mean"] = {k: jnp.mean(v, axis=(1, 2)) for k, v in means.items()}
        return pool3, aux


def init_variables(seed: int = 0, resolution: int = RESOLUTION) -> dict:
    """Random variables (He-normal convs, identity BN statistics, default Dense) from a fixed seed.

    This is the randomly initialised Inception of rFID (StyleGAN-XL §4.1). rFID values are only
    comparable between runs that use the same seed (StyleGAN-XL's own `inception_rand_full.pkl` is
    a different draw; convert it to the torch names and load it with `convert.inception` instead).
    """
    x = jnp.zeros((1, resolution, resolution, 3), jnp.uint8)
    return jax.jit(InceptionV3().init)(jax.random.PRNGKey(seed), x)
