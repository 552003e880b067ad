"""Signal processing for ECGs: pure functions, the ``Preprocess`` spec, quality checks and augmentations.

* :mod:`~ecglens.signal.functional` — ``resample``, ``crop_or_pad``, ``highpass``, ``notch``, ``normalize``,
  ``check_amplitude`` ... (numpy in, new numpy out; time on the last axis; ``fs`` always explicit).
* :mod:`~ecglens.signal.transforms` — :class:`Preprocess`, the serialisable chain stored in every checkpoint.
* :mod:`~ecglens.signal.quality` — :func:`assess_quality` (flat / noisy / saturated / NaN leads),
  :func:`check_usable`.
* :mod:`~ecglens.signal.augment` — train-only augmentations and the :class:`Augment` spec.
"""

from __future__ import annotations

from .augment import (
    Augment,
    amplitude_scale,
    baseline_wander,
    gaussian_noise,
    lead_dropout,
    random_crop,
    time_shift,
)
from .functional import (
    CROP_MODES,
    NORMALIZE_METHODS,
    bandpass,
    check_amplitude,
    crop_or_pad,
    guess_unit_scale,
    highpass,
    lowpass,
    normalize,
    notch,
    resample,
    robust_peak_to_peak,
)
from .quality import QualityReport, assess_quality, check_usable
from .transforms import Preprocess, fill_nans

__all__ = [
    "CROP_MODES",
    "NORMALIZE_METHODS",
    # augment
    "Augment",
    # transforms
    "Preprocess",
    # quality
    "QualityReport",
    "amplitude_scale",
    "assess_quality",
    "bandpass",
    "baseline_wander",
    "check_amplitude",
    "check_usable",
    "crop_or_pad",
    "fill_nans",
    "gaussian_noise",
    "guess_unit_scale",
    "highpass",
    "lead_dropout",
    "lowpass",
    "normalize",
    "notch",
    "random_crop",
    # functional
    "resample",
    "robust_peak_to_peak",
    "time_shift",
]
