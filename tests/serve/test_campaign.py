"""The quick profile of the server campaign (``tests/serve/campaign.py``; the long one is
``benchmarks/fuzz_server.py``): a few hundred seeded attacks on the web service at 127.0.0.1, 8 at a time, and
0 defects allowed (no 5xx, no 4xx without a JSON error, the server stays up, nothing written outside the
request's temporary folder, a header naming a server file answered like one naming a missing file).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

import campaign  # noqa: E402  (tests/serve/campaign.py)

from ecglens.serve import create_app  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_CASES = 280


@pytest.fixture(scope="module")
def target(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[campaign.Target]:
    root = tmp_path_factory.mktemp("campaign")
    secret = root / "secret" / "passwords.dat"
    secret.parent.mkdir()
    secret.write_bytes(b"root:x:0:0\n" * 40)
    uploads = root / "uploads"
    uploads.mkdir()
    record = tuple((p.name, p.read_bytes()) for p in sorted((fixtures_dir / "code15").glob("100003.*")))
    app = create_app("age-sex", max_upload_mb=campaign.MAX_MB, max_files=4, max_zip_entries=16,
                     max_unzipped_mb=campaign.MAX_UNZIPPED_MB, tmp_dir=uploads, plot_dpi=30)
    with campaign.LoopbackServer(app) as url:
        yield campaign.Target(url, uploads, (root,), secret, record)


def test_quick_campaign_finds_no_defect(target: campaign.Target, fixtures_dir: Path) -> None:
    mutants = campaign.mutant_uploads(fixtures_dir, 24, seed=5)
    rows = campaign.run_campaign(target, range(N_CASES), seed=0, concurrency=8, mutants=mutants)
    defects = [r for r in rows if r["outcome"] in campaign.DEFECTS]
    assert not defects, campaign.table(campaign.tally(rows)) + f"\n{defects[:5]}"
    counts = campaign.tally(rows)
    assert set(counts) == set(campaign.FAMILIES)
    assert counts["valid"]["2xx"] == sum(counts["valid"].values()) > 0
    assert counts["oversized"]["4xx"] == sum(counts["oversized"].values())
    assert httpx.get(f"{target.url}/health").status_code == 200


def test_a_planted_escape_and_a_leak_are_reported(target: campaign.Target) -> None:
    # the campaign's own checks see what they are meant to see
    planted = target.watched[0] / f"{campaign.MARK}-planted.hea"
    planted.write_text("x")
    rows = [{"index": i, "family": "server_path", "outcome": "4xx", "status": 422, "detail": code,
             "probe": probe, "seconds": 0.0}
            for i, (probe, code) in enumerate([("/etc/passwd", "unreadable_record"), ("/nope", "missing_file")])]
    campaign._check_escapes(target, rows)
    campaign._check_leaks(rows)
    assert [r["outcome"] for r in rows] == ["leak", "leak", "outside_write"] and not planted.exists()
