"""Lead names: the canonical 12-lead order, alias normalisation and derivation of the limb leads.

Canonical order: ``I, II, III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6``. Aliases (``AVR``, ``avr``, ``i``,
``v1``, ``MLII``...) are normalised once, at read time.

Einthoven / Goldberger identities, with all signals in mV at the same fs::

    III = II - I,  aVR = -(I + II) / 2,  aVL = I - II / 2,  aVF = II - I / 2
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .exceptions import LeadError

__all__ = [
    "CANONICAL_LEADS",
    "LIMB_DERIVED",
    "derive_limb_leads",
    "normalize_lead_name",
    "normalize_lead_names",
    "to_canonical_order",
]

CANONICAL_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: leads that can be computed from I and II
LIMB_DERIVED: tuple[str, ...] = ("III", "aVR", "aVL", "aVF")

_ALIASES: dict[str, str] = {name.upper(): name for name in CANONICAL_LEADS}
_ALIASES.update(
    {
        "MLI": "I",
        "MLII": "II",
        "MLIII": "III",
        "LEAD I": "I",
        "LEAD II": "II",
        "LEAD III": "III",
        "AVR": "aVR",
        "AVL": "aVL",
        "AVF": "aVF",
        "-AVR": "-aVR",
    }
)
_ALIASES.update({f"LEAD {n.upper()}": n for n in CANONICAL_LEADS})
_ALIASES.update({f"V{i}": f"V{i}" for i in range(1, 7)})


def normalize_lead_name(name: str) -> str:
    """Return the canonical spelling of a lead name.

    Parameters
    ----------
    name : str
        A lead name as written in a file, e.g. ``"AVR"``, ``"avr"``, ``"i"``, ``"v1"``, ``"Lead II"``.

    Returns
    -------
    str
        The canonical name (``"aVR"``, ``"I"``, ``"V1"``, ...), or the stripped input unchanged when it is not a
        12-lead name (e.g. ``"Vx"``); callers decide whether a non-standard lead is an error.
    """
    key = " ".join(str(name).strip().replace("_", " ").split()).upper()
    return _ALIASES.get(key, str(name).strip())


def normalize_lead_names(names: Sequence[str]) -> tuple[str, ...]:
    """Normalise a list of lead names; raise :class:`LeadError` on duplicates after normalisation."""
    key = tuple(names)
    if all(type(n) is str for n in key):  # the usual case: cached, as an archive repeats a few lead lists
        return _normalized_names(key)
    return _normalized_names.__wrapped__(key)


@lru_cache(maxsize=1024)
def _normalized_names(names: tuple[str, ...]) -> tuple[str, ...]:
    out = tuple(normalize_lead_name(n) for n in names)
    seen: set[str] = set()
    dup = [n for n in out if n in seen or seen.add(n)]
    if dup:
        raise LeadError(
            f"duplicate lead names after normalisation: {sorted(set(dup))} (from {list(names)}). "
            "Rename the leads so each appears once."
        )
    return out


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> dict[str, np.ndarray]:
    """Compute III, aVR, aVL and aVF from leads I and II.

    Parameters
    ----------
    lead_i, lead_ii : np.ndarray, shape (n_samples,) or (..., n_samples)
        Leads I and II in mV, same fs.

    Returns
    -------
    dict of str to np.ndarray
        ``{"III", "aVR", "aVL", "aVF"}``, same shape and dtype as the input.
    """
    lead_i = np.asarray(lead_i)
    lead_ii = np.asarray(lead_ii)
    return {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }


def to_canonical_order(
    signal: np.ndarray,
    leads: Sequence[str],
    target: Sequence[str] = CANONICAL_LEADS,
    derive: bool = True,
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Reorder a signal to ``target`` leads, deriving missing limb leads from I and II when allowed.

    Parameters
    ----------
    signal : np.ndarray, shape (n_leads, n_samples)
        Signal in mV.
    leads : sequence of str
        Lead names of ``signal``'s rows (any alias spelling).
    target : sequence of str
        Wanted lead names, canonical spelling. Default: the 12 standard leads.
    derive : bool
        Derive III, aVR, aVL, aVF from I and II when they are missing.

    Returns
    -------
    signal : np.ndarray, shape (len(target), n_samples), float32
    leads : tuple of str
        ``tuple(target)``.
    derived : tuple of str
        Names of the leads that were computed rather than read.

    Raises
    ------
    LeadError
        When a target lead is missing and cannot be derived.
    """
    names = normalize_lead_names(leads)
    index = {n: i for i, n in enumerate(names)}
    out = np.empty((len(target), signal.shape[-1]), dtype=np.float32)
    derived: list[str] = []
    cache: dict[str, np.ndarray] | None = None
    for row, name in enumerate(target):
        if name in index:
            out[row] = signal[index[name]]
            continue
        if derive and name in LIMB_DERIVED and "I" in index and "II" in index:
            if cache is None:
                cache = derive_limb_leads(signal[index["I"]], signal[index["II"]])
            out[row] = cache[name]
            derived.append(name)
            continue
        missing = [n for n in target if n not in index]
        raise LeadError(
            f"lead {name!r} is missing (record has {list(names)}; missing {missing}). "
            + (
                "III, aVR, aVL and aVF can be derived only when both I and II are present."
                if name in LIMB_DERIVED
                else "Provide a record with all the leads the model needs, or a model trained on fewer leads."
            )
        )
    return out, tuple(target), tuple(derived)
