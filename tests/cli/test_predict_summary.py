"""The summary ``ecglens predict`` prints after a run."""

from __future__ import annotations

import pandas as pd

from ecglens.cli.predict import _summary


def _table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=["record", "status", "message"])
    table.attrs.update(n_ok=int((table["status"] == "ok").sum()), n_error=int((table["status"] == "error").sum()),
                       model="age-sex", seconds=1.0, ecgs_per_s=3.0)
    return table


def test_summary_names_each_failed_file_once():
    table = _table([("a/one.xml", "ok", ""),
                    ("a/two.xml", "error", "a/two.xml: this XML file has leads ['II'], not a 12-lead ECG"),
                    ("a/rec", "error", "a/rec.hea: header file missing")])
    text = _summary(table, None)
    assert "3 input(s): 1 ok, 2 error" in text
    assert "  error a/two.xml: this XML file has leads ['II'], not a 12-lead ECG" in text  # the path once
    assert "  error a/rec: a/rec.hea: header file missing" in text  # another file than the record: kept


def test_summary_shows_the_first_errors_and_counts_the_rest():
    table = _table([(f"r{i}", "error", f"r{i}: unreadable") for i in range(12)])
    lines = _summary(table, None).splitlines()
    shown = [line for line in lines if line.startswith("  error ")]
    assert shown[0] == "  error r0: unreadable" and 0 < len(shown) < 12
    assert lines[-1] == f"  ... and {12 - len(shown)} more (see the status/message columns)"
