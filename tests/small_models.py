"""Small variants of every zoo model for fast tests (models not listed are used at their defaults).

Shared by ``tests/models/test_models.py`` and ``tests/test_export.py``.
"""

from __future__ import annotations

#: model name -> kwargs of ``create_model`` that make it small
SMALL: dict[str, dict] = {
    "cnn_baseline": {"channels": (8, 16)},
    "attia_cnn": {"filters": (4,) * 8, "spatial_filters": 8, "hidden": (16, 8)},
    "cnn_bigru": {"channels": (8, 16, 16), "hidden": 8},
    "bilstm": {"stem_channels": (8, 16, 16), "hidden": 8},
    "resnet1d_ribeiro": {"filters": (8, 16, 16, 24, 24)},
    "resnet_se_gustafsson": {"stem_channels": 8, "channels": (8, 16, 16, 24)},
    "xresnet1d50": {"width": 0.125, "head_hidden": 16},
    "xresnet1d101": {"width": 0.0625, "head_hidden": 16},
    "inception1d": {"filters": 8, "bottleneck": 8, "depth": 3, "head_hidden": 16},
    "s4": {"d_model": 16, "d_state": 8, "n_layers": 2, "stem_channels": 8},
}
