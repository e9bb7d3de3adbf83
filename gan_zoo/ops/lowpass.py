"""Low-pass filter design for alias-free layers (StyleGAN3 §3.1, App. C; design time, NumPy)."""

import numpy as np
import scipy.signal
import scipy.special


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial=False):
    """StyleGAN3 `SynthesisLayer.design_lowpass_filter`.

    Separable: Kaiser-windowed sinc from `scipy.signal.firwin` -> [numtaps].
    Radial: jinc(2 f_c r) times the outer product of Kaiser windows, normalised to sum 1 ->
    [numtaps, numtaps]. numtaps == 1 is the identity, returned as None.
    Args: cutoff f_c and transition width in the units of the sampling rate fs.
    Returns: float32 array or None.
    """
    if not isinstance(numtaps, (int, np.integer)) or numtaps < 1:
        raise ValueError(f"design_lowpass_filter: numtaps must be a positive int, got {numtaps!r}")
    if numtaps == 1:
        return None
    if not radial:
        f = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        return np.asarray(f, np.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    f = np.where(r == 0, cutoff, f)  # The limit at r = 0 (odd numtaps only).
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    w = np.kaiser(numtaps, beta)
    f = f * np.outer(w, w)
    f = f / np.sum(f)
    return np.asarray(f, np.float32)
