"""Filtered leaky ReLU: StyleGAN3 §3.2 (alias-free nonlinearity), reference semantics, NHWC."""

from gan_zoo import checks
from gan_zoo.ops import dispatch
from gan_zoo.ops.bias_act import bias_act
from gan_zoo.ops.upfirdn2d import filter_size, upfirdn2d


def filtered_lrelu_output_size(in_h, in_w, fu_hw, fd_hw, up, down, padding):
    """(out_h, out_w) = ((in*up + p0 + p1 - (fu-1) - (fd-1) + (down-1)) // down) per axis."""
    x0, x1, y0, y1 = padding
    (fu_h, fu_w), (fd_h, fd_w) = fu_hw, fd_hw
    out_w = (in_w * up + (x0 + x1) - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down
    out_h = (in_h * up + (y0 + y1) - (fu_h - 1) - (fd_h - 1) + (down - 1)) // down
    return out_h, out_w


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=2**0.5, slope=0.2,
                   clamp=None, flip_filter=False, impl="auto"):
    """Bias, upsample, leaky ReLU, clamp, downsample (StyleGAN3 §3.2, App. D).

    Steps: 1. x + b (b: [C]); 2. upfirdn2d(fu, up, padding, gain=up^2) (negative padding crops);
    3. leaky ReLU with `slope`, times `gain`; 4. clamp to [-clamp, clamp];
    5. upfirdn2d(fd, down) with no padding.
    Steps 2 and 5 run polyphase (no zero-inserted or dropped sample is computed) and, for
    constant filters, back-propagate as the transposed upfirdn2d (see gan_zoo.ops.upfirdn2d);
    XLA fuses 1, 3 and 4 into the neighbouring FIR passes.
    Args:
      x: [N, H, W, C]. fu, fd: None, [k] (separable) or [k, k] filters. up, down: ints.
      padding: int, [px, py] or [x0, x1, y0, y1] (in the up-sampled domain).
    Returns: [N, out_h, out_w, C], see `filtered_lrelu_output_size`.
    """
    if dispatch.resolve_impl(impl, "filtered_lrelu") == "pallas":
        return dispatch.kernel("filtered_lrelu")(x, fu, fd, b, up, down, padding, gain, slope,
                                                 clamp, flip_filter)
    checks.check_rank("filtered_lrelu: x", x, 4, "[N, H, W, C]")
    for name, v in (("up", up), ("down", down)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"filtered_lrelu: {name} must be a positive int, got {v!r}")
    pad = checks.padding4("filtered_lrelu: padding", padding)
    fu_w, fu_h = filter_size(fu)
    fd_w, fd_h = filter_size(fd)
    out_h, out_w = filtered_lrelu_output_size(x.shape[1], x.shape[2], (fu_h, fu_w), (fd_h, fd_w),
                                              up, down, pad)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"filtered_lrelu: padding {padding} leaves no output for input "
                         f"{tuple(x.shape)} (up={up}, down={down})")
    if b is not None:
        x = bias_act(x, b, dim=-1, impl="xla")
    x = upfirdn2d(x, fu, up=up, padding=pad, gain=up**2, flip_filter=flip_filter, impl="xla")
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp, impl="xla")
    x = upfirdn2d(x, fd, down=down, flip_filter=flip_filter, impl="xla")
    assert x.shape[1:3] == (out_h, out_w), (x.shape, out_h, out_w)
    return x
