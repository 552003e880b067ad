"""Experiments: reproducible studies built on the public API, each returning tidy results tables.

- :mod:`ecglens.experiments.simulate` -- a seeded synthetic cohort (age, sex, true hemoglobin, one 12-lead ECG
  per patient whose features depend on hemoglobin in a stated way, a lab table with timing noise and mixed
  units, and outcomes with a known hazard ratio) for validating the hemoglobin + anemia + survival pipeline
  without public hemoglobin data.

Sub-modules are imported explicitly (``from ecglens.experiments.simulate import simulate_cohort``); this
package imports nothing heavy on its own.
"""
