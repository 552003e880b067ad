"""Experiments: reproducible studies built on the public API, each returning tidy results tables.

- :mod:`ecglens.experiments.grid` -- the one experiment runner: a grid of runs into a resumable, shardable output
  folder (``experiment.yaml`` with the protocol fingerprint, ``results.csv``, ``failures.csv``), profiles and
  overrides of experiment configs, synthetic cohorts written as caches.
- :mod:`ecglens.experiments.compare`, :mod:`ecglens.experiments.transfer` -- the model comparison and the
  transfer-learning grid, thin definitions (axes, protocol, per-run function) on that runner.
- :mod:`ecglens.experiments.study` (settings in :mod:`~ecglens.experiments.study_config`, Cox analyses in
  :mod:`~ecglens.experiments.study_survival`, seeds as a grid in :mod:`~ecglens.experiments.study_grid`) -- the
  clinical studies: ECG-derived hemoglobin -> anemia -> survival, and the PTB-XL ECG-age gap.
- :mod:`ecglens.experiments.simulate` -- a seeded synthetic cohort (age, sex, true hemoglobin, one 12-lead ECG
  per patient whose features depend on hemoglobin in a stated way, a lab table with timing noise and mixed
  units, and outcomes with a known hazard ratio) for validating the hemoglobin + anemia + survival pipeline
  without public hemoglobin data.

Sub-modules are imported explicitly (``from ecglens.experiments.simulate import simulate_cohort``); this
package imports nothing heavy on its own.
"""
