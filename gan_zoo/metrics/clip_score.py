"""CLIP score (StyleGAN-T §4, "CLIP score"; spec stylegan_xl_and_t.md §3, §6).

As the official `metrics/clip_score.py` + `networks/clip.py` compute it (cs10k / cs10k_coco):

1. Generated images as uint8 (x * 127.5 + 128, clipped, truncated), then / 255.
2. Bicubic resize to the CLIP input size (torch, align_corners=False, no antialias), then the
   OpenAI mean/std (`feature_nets.clip.preprocess_images`).
3. Image embedding and the embedding of the sample's own prompt (CLIP BPE tokens, context 77),
   both L2-normalised.
4. score = mean over samples of <image_i, text_i>: the plain cosine, NOT x100 and NOT clipped at 0
   (unlike torchmetrics' CLIPScore; published SG-T values are on this scale).

The protocol model is open_clip ViT-g-14 (laion2b_s12b_b42k), deliberately not the conditioning
CLIP. Its weights are a local file (`config.eval.clip_weights`: the open_clip state dict as
.safetensors or .npz); the architecture is a `feature_nets.clip` variant name, a name in
OPEN_CLIP_CONFIGS, or an open_clip model-config .json. Both towers run as one jitted call with the
batch sharded over the mesh's 'data' axis.
"""

import functools
import json
import pathlib

import jax.numpy as jnp
import numpy as np

DEFAULT_MODEL = "ViT-g-14"  # StyleGAN-T's CLIP-score network (open_clip, laion2b_s12b_b42k)
# open_clip 3.3.0 model_configs (facts; built through convert.clip.model_from_config).
OPEN_CLIP_CONFIGS = {
    "ViT-g-14": {"embed_dim": 1024,
                 "vision_cfg": {"image_size": 224, "layers": 40, "width": 1408,
                                "head_width": 88, "mlp_ratio": 4.3637, "patch_size": 14},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024,
                              "heads": 16, "layers": 24}},
}


def clip_score(image_features, text_features) -> float:
    """mean_i <image_i, text_i> of L2-normalised [N, E] embeddings (StyleGAN-T: no x100, no
    clamp)."""
    img, txt = np.asarray(image_features, np.float64), np.asarray(text_features, np.float64)
    if img.ndim != 2 or img.shape != txt.shape:
        raise ValueError(f"clip_score: expected image and text features of one shape [N, E], "
                         f"got {img.shape} and {txt.shape}")
    return float(np.mean(np.sum(img * txt, axis=-1)))


@functools.lru_cache(maxsize=None)
def _image_fn(model):
    """(variables, uint8 [N, H, W, 3]) -> normalised image embeddings; one function per model."""
    from gan_zoo.feature_nets import clip  # noqa: PLC0415

    def fn(variables, images):
        x = images.astype(jnp.float32)
        x = x / 255.0 if images.dtype == jnp.uint8 else x  # StyleGAN-T div255
        x = clip.preprocess_images(x, model.visual.image_size)
        return model.apply(variables, x, normalize=True, method="encode_image")
    return fn


@functools.lru_cache(maxsize=None)
def _text_fn(model):
    """(variables, int tokens [P, 77]) -> normalised text embeddings; one function per model."""
    return lambda variables, tokens: model.apply(variables, tokens, normalize=True,
                                                 method="encode_text")


class ClipEmbedder:
    """L2-normalised CLIP embeddings of uint8 NHWC images (`images`) and of prompts (`texts`),
    each a jitted call with the batch sharded over 'data' (mesh None: all devices)."""

    def __init__(self, model, variables, mesh=None):
        from gan_zoo.metrics.features import sharded_batch_fn  # noqa: PLC0415

        self.model = model
        self._images = sharded_batch_fn(_image_fn(model), mesh, variables)
        self._texts = sharded_batch_fn(_text_fn(model), mesh, variables)

    def images(self, images) -> np.ndarray:
        """uint8 [N, H, W, 3] (0..255), or float in [0, 1] -> float32 [N, E]."""
        images = np.asarray(images)
        is_float = np.issubdtype(images.dtype, np.floating)
        if not (images.dtype == np.uint8 or is_float) or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"clip_score images: expected [N, H, W, 3] uint8 (0..255) or float "
                             f"in [0, 1] (NHWC), got {images.dtype} {images.shape}")
        return self._images(images.astype(np.float32) if is_float else images)

    def texts(self, prompts) -> np.ndarray:
        """list of N strings -> float32 [N, E] (CLIP BPE, context 77)."""
        from gan_zoo.feature_nets import clip_tokenizer  # noqa: PLC0415

        tokens = clip_tokenizer.tokenize(list(prompts), self.model.text.context_length)
        return self._texts(tokens)


def score_batches(embedder: ClipEmbedder, image_batches, prompt_batches) -> float:
    """CLIP score of generated batches: image batch b is scored against prompt list b."""
    image_batches, prompt_batches = list(image_batches), list(prompt_batches)
    if len(image_batches) != len(prompt_batches):
        raise ValueError(f"clip_score: {len(image_batches)} image batches but "
                         f"{len(prompt_batches)} prompt batches")
    img, txt = [], []
    for images, prompts in zip(image_batches, prompt_batches):
        if len(prompts) != len(images):
            raise ValueError(f"clip_score: a batch of {len(images)} images came with "
                             f"{len(prompts)} prompts")
        img.append(embedder.images(images))
        txt.append(embedder.texts(prompts))
    return clip_score(np.concatenate(img), np.concatenate(txt))


def make_model(model_config: str = DEFAULT_MODEL):
    """A `feature_nets.clip.CLIP` from a clip.VARIANTS name, an OPEN_CLIP_CONFIGS name or the
    path of an open_clip model-config .json."""
    from gan_zoo.convert import clip as clip_convert  # noqa: PLC0415
    from gan_zoo.feature_nets import clip  # noqa: PLC0415

    if model_config in clip.VARIANTS:
        return clip.make(model_config)
    if model_config in OPEN_CLIP_CONFIGS:
        return clip_convert.model_from_config(OPEN_CLIP_CONFIGS[model_config])
    path = pathlib.Path(model_config)
    if path.suffix == ".json" and path.is_file():
        return clip_convert.model_from_config(json.loads(path.read_text()))
    raise ValueError(f"clip_score: model {model_config!r} is neither a known name "
                     f"({sorted(clip.VARIANTS) + sorted(OPEN_CLIP_CONFIGS)}) nor an open_clip "
                     "model-config .json file")


def load_embedder(path, model_config: str = DEFAULT_MODEL, mesh=None) -> ClipEmbedder:
    """ClipEmbedder of the CLIP weights at `path` (open_clip state dict, .safetensors / .npz)."""
    from gan_zoo.convert import clip as clip_convert  # noqa: PLC0415

    model, variables = clip_convert.load_clip(path, model=make_model(model_config))
    return ClipEmbedder(model, variables, mesh)
