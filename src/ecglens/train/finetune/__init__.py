"""Transfer learning: start from a pretrained checkpoint, put a new head on it and train it on a new task.

Every model of the zoo works the same way, through the model contract (``reset_head``, ``param_groups()`` from
input to head, ``first_conv`` + :func:`~ecglens.models.adapt_input_leads`). Strategies (:data:`STRATEGIES`):

``scratch``
    The checkpoint's architecture (same name and keyword arguments), randomly initialised; every layer trained
    with the same learning rate. The baseline a pretrained model must beat. Needs no checkpoint when
    ``config.model`` names the architecture.
``linear_probe``
    The pretrained backbone is frozen (``requires_grad=False``) and kept in eval mode (BatchNorm statistics
    and dropout fixed, ``freeze_bn``); only the new head is trained. By default (``probe_solver="lbfgs"``)
    the head is fitted to convergence on the frozen features by L-BFGS, with its L2 strength chosen on the
    validation split (:mod:`ecglens.train.probe`; no epochs, no augmentation, no Lightning checkpoints; the
    run's ``history.csv`` has one row per strength); a head with a hidden layer (``head_hidden``) is replaced
    by a linear one (``head_hidden=0`` in the new checkpoint's model kwargs), so the probe is linear for every
    model. ``probe_solver="sgd"`` trains the model's own head like ``finetune``.
``finetune``
    Every layer is trained, with discriminative learning rates: group ``i`` of ``n`` (``param_groups()``,
    input first, head last) gets ``lr * lr_decay ** (n - 1 - i)`` (``lr_decay=1`` gives one learning rate).
``gradual_unfreeze``
    ``finetune`` with ULMFiT-style gradual unfreezing: the head alone in the first ``unfreeze_every`` epochs,
    then one more group (from the head backwards) every ``unfreeze_every`` epochs; frozen groups are in eval
    mode.
``lp_ft``
    Linear probe, then fine-tune (Kumar et al. 2022, "Fine-tuning can distort pretrained features and
    underperform out-of-distribution"): the new head is first fitted to convergence on the frozen features
    exactly as the L-BFGS ``linear_probe`` fits it (a linear head, L2 strength from ``probe_l2`` chosen on the
    validation split), then every layer is trained as in ``finetune``, starting from that head instead of a zero
    one, so the first updates of the backbone follow a head that already fits the new task. ``finetune.yaml``
    records the probe's L2 strength and validation metrics (``probe_head``).

The new head of a pretrained start has its last linear layer at zero (``head_init="zeros"``, the default), so
that even a few optimiser steps (100 target ECGs) move it along the correlation of the pretrained features with
the new labels rather than leaving it near a random projection of them; ``"random"`` keeps the default init.

Fewer leads: ``leads=["I", "II", "V1", ..., "V6"]`` (or ``["II"]``) selects those leads from the cache and
rebuilds the model's first layer for them, keeping the pretrained weights of the kept leads
(``lead_init="keep"``) or spreading the summed weights evenly over the new leads (``"mean"``). The checkpoint
written then declares those leads in its input contract.

The package, by job: :mod:`.strategies` (:data:`STRATEGIES`), :mod:`.settings` (:class:`FinetuneConfig`, the
config file), :mod:`.surgery` (:func:`prepare_model`: head reset, lead adaptation), :mod:`.groups` (parameter
groups, freezing), :mod:`.module` (:class:`FinetuneModule`) and :mod:`.run` (:func:`finetune`). Cache views
(:class:`CacheView`) live in :mod:`ecglens.data.views`; the trainer setup is shared with ``ecglens train``
(:mod:`ecglens.train.loop`).

A fine-tuning run writes the same run folder as ``ecglens train`` (``config.yaml``, ``splits.csv``,
``model.safetensors`` with the new task, ``metrics.json``, ``history.csv``, ``curves.png``,
``val_predictions.csv``) plus ``finetune.yaml`` (strategy, options, the pretrained checkpoint and where it
came from); the checkpoint's stored config has ``finetune`` and ``pretrained`` entries too.

>>> from ecglens.train.finetune import finetune, load_finetune_config         # doctest: +SKIP
>>> config, settings = load_finetune_config("configs/finetune_mi.yaml", ["optim.lr=3e-4"])  # doctest: +SKIP
>>> result = finetune("runs/age_sex/model.safetensors", config, settings)     # doctest: +SKIP
"""

from __future__ import annotations

from ...data.views import CacheView, LeadSubset
from ..loop import without_curves
from .groups import discriminative_param_groups, freeze_frozen_modules, set_trainable_groups
from .module import FinetuneModule
from .run import finetune
from .settings import FinetuneConfig, finetune_settings_from_dict, load_finetune_config, read_yaml_mapping
from .strategies import STRATEGIES, Strategy, get_strategy
from .surgery import prepare_model

__all__ = ["STRATEGIES", "CacheView", "FinetuneConfig", "FinetuneModule", "LeadSubset", "Strategy",
           "discriminative_param_groups", "finetune", "finetune_settings_from_dict", "freeze_frozen_modules",
           "get_strategy", "load_finetune_config", "prepare_model", "read_yaml_mapping",
           "set_trainable_groups", "without_curves"]
