"""A bounded, seeded attack campaign against the web service on 127.0.0.1 (issue #22 item 5), used by
``tests/serve/test_campaign.py`` (quick profile) and ``benchmarks/fuzz_server.py`` (long profile).

The app runs under uvicorn on a free loopback port, in a thread of this process. A case is ``(seed, index)``:
the index picks the family round robin (:data:`FAMILIES`), the seed and index its details, so every case can be
rebuilt from its two numbers. Cases are sent by ``concurrency`` threads at once (8 by default).

Families: ``malformed_multipart`` (random, truncated or boundary-less bodies, wrong content types, no file
field), ``oversized`` (declared and streamed bodies over the limit), ``zip_bomb`` (a member that unpacks past
the limit, too many entries, nested archives), ``traversal`` (``../`` and absolute upload names, archive members
with ``../``, absolute names and links), ``server_path`` (WFDB headers whose signal file names a server path:
a real secret file, ``/etc/passwd``, a missing path, ``../``), ``mutated`` (the files of a mutated fixture from
``tests/fuzzing.py``) and ``valid`` (a good record; it must be answered 2xx).

Outcome classes (:data:`OUTCOMES`): ``2xx``; ``4xx`` (with a JSON error body); ``bad_4xx`` (a 4xx without it),
``5xx``, ``down`` (no answer; the server is then checked with ``/health``), ``outside_write`` (a file written
outside the request's temporary folder, or a temporary folder left behind) and ``leak`` (a header naming an
existing server file is answered differently from one naming a missing file) are defects (:data:`DEFECTS`).
"""

from __future__ import annotations

import io
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OUTCOMES = ("2xx", "4xx", "bad_4xx", "5xx", "down", "outside_write", "leak")
DEFECTS = ("bad_4xx", "5xx", "down", "outside_write", "leak")
MARK = "ecglens-escape"  # every file name an attack tries to place outside the temporary folder contains it
MAX_MB = 1.0  # the served limits: small, so that oversized cases and bombs stay cheap
MAX_UNZIPPED_MB = 4.0


@dataclass(frozen=True)
class Request:
    """One HTTP request of the campaign: multipart ``files`` or a raw ``body`` with ``headers``."""

    family: str
    files: tuple[tuple[str, bytes], ...] = ()
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    expect_2xx: bool = False
    probe: str = ""  # server_path cases: the path the header names, for the leak comparison


@dataclass
class Target:
    """What the campaign attacks: the server's URL, its temporary folder and the folders watched for escapes."""

    url: str
    uploads: Path
    watched: tuple[Path, ...]
    secret: Path
    record: tuple[tuple[str, bytes], ...]  # a good WFDB record: (name, bytes) of its .hea and signal file

    @property
    def header(self) -> bytes:
        return next(data for name, data in self.record if name.endswith(".hea"))

    def escapes(self) -> list[Path]:
        """Files with :data:`MARK` in their name under the watched folders (the system's temporary folder and
        the current folder only at their top level)."""
        shallow = (Path(tempfile.gettempdir()), Path.cwd())
        return ([p for root in self.watched for p in root.rglob(f"*{MARK}*")]
                + [p for root in shallow for p in root.glob(f"*{MARK}*")])


# ------------------------------------------------------------------------------------------------ families
def _multipart(files: Iterable[tuple[str, bytes]], boundary: str = "campaignboundary") -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n".encode("latin-1") + data + b"\r\n"
             for name, data in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def malformed_multipart(t: Target, rng: np.random.Generator) -> Request:
    body = _multipart(t.record)
    how = int(rng.integers(0, 6))
    ctype = "multipart/form-data; boundary=campaignboundary"
    if how == 0:
        body = rng.bytes(int(rng.integers(0, 4096)))
    elif how == 1:
        body = body[: int(rng.integers(1, len(body)))]
    elif how == 2:
        ctype = "multipart/form-data"  # no boundary
    elif how == 3:
        ctype = str(rng.choice(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))
    elif how == 4:
        body = body.replace(b'name="file"', b'name="other"')
    else:
        body = _multipart([("empty.hea", b"")])
    return Request("malformed_multipart", body=body, headers=(("content-type", ctype),))


def oversized(t: Target, rng: np.random.Generator) -> Request:
    size = int((MAX_MB + rng.uniform(0.01, 2.0)) * 2**20)
    return Request("oversized", files=(("big.dat", rng.bytes(size)), *t.record[:1]))


def _zip(members: Iterable[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def zip_bomb(t: Target, rng: np.random.Generator) -> Request:
    how = int(rng.integers(0, 3))
    if how == 0:
        members = [("rec.dat", bytes(int((MAX_UNZIPPED_MB + rng.uniform(1, 40)) * 2**20)))]
    elif how == 1:
        members = [(f"m{i}.xml", b"<a/>") for i in range(int(rng.integers(20, 400)))]
    else:
        members = [(f"inner{i}.zip", _zip([("rec.dat", bytes(2**20 * 3))])) for i in range(3)]
    return Request("zip_bomb", files=(("bomb.zip", _zip(members)),))


def _tar_with_link(name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        tar.addfile(info)
    return buf.getvalue()


def traversal(t: Target, rng: np.random.Generator) -> Request:
    escape = f"{MARK}-{int(rng.integers(1 << 30))}"
    names = [f"../../{escape}.hea", f"/tmp/{escape}.hea", f"..\\..\\{escape}.hea", f"{t.uploads}/{escape}.hea",
             f"....//....//{escape}.hea", f"%2e%2e%2f{escape}.hea"]
    how = int(rng.integers(0, 4))
    if how == 0:
        return Request("traversal", files=((str(rng.choice(names)), t.header),))
    if how == 1:
        return Request("traversal", files=(("x.zip", _zip([(str(rng.choice(names)), t.header)])),))
    if how == 2:
        return Request("traversal", files=(("x.tar.gz", _tar_with_link(f"{escape}.hea", str(t.secret))),))
    return Request("traversal", files=tuple((f"../{escape}-{name}", data) for name, data in t.record))


def server_path(t: Target, rng: np.random.Generator) -> Request:
    paths = [str(t.secret), f"{t.secret}.missing", "/etc/passwd", "/nonexistent/x.dat",
             "../" * 8 + str(t.secret).lstrip("/"), "/proc/self/environ", "/dev/zero"]
    probe = str(rng.choice(paths))
    lines = t.header.decode().splitlines()
    lines = [lines[0]] + [" ".join([probe, *ln.split()[1:]]) for ln in lines[1:] if ln.strip()]
    return Request("server_path", files=(("rec.hea", ("\n".join(lines) + "\n").encode()),), probe=probe)


def mutated(t: Target, rng: np.random.Generator, mutants: list[tuple[tuple[str, bytes], ...]]) -> Request:
    return Request("mutated", files=mutants[int(rng.integers(0, len(mutants)))])


def valid(t: Target, rng: np.random.Generator) -> Request:
    return Request("valid", files=t.record, expect_2xx=True)


FAMILIES: dict[str, Callable[..., Request]] = {
    "malformed_multipart": malformed_multipart, "oversized": oversized, "zip_bomb": zip_bomb,
    "traversal": traversal, "server_path": server_path, "mutated": mutated, "valid": valid,
}


def mutant_uploads(fixtures: Path, count: int, seed: int) -> list[tuple[tuple[str, bytes], ...]]:
    """The files of ``count`` mutated fixtures (``tests/fuzzing.py``), at most 4 files each."""
    import fuzzing

    out = []
    with tempfile.TemporaryDirectory() as work:
        srcs = fuzzing.sources(fixtures, fuzzing.default_cache())
        for index in range(count):
            folder = Path(work) / f"c{index}"
            folder.mkdir()
            fuzzing.build_case(srcs[index % len(srcs)], index, seed, folder)
            files = sorted(p for p in folder.iterdir() if p.is_file())[:4]
            out.append(tuple((p.name, p.read_bytes()) for p in files))
    return out


# ------------------------------------------------------------------------------------------------ running
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackServer:
    """``app`` served by uvicorn on ``127.0.0.1:PORT`` in a daemon thread (a context manager)."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error",
                                                    limit_concurrency=64))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the campaign's server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def classify(t: Target, client: object, req: Request) -> tuple[str, int, str]:
    """Send ``req``; returns (outcome class, HTTP status or 0, detail)."""
    import httpx

    try:
        if req.body is not None:
            r = client.post(f"{t.url}/predict", content=req.body, headers=dict(req.headers))
        else:
            r = client.post(f"{t.url}/predict", files=[("file", f) for f in req.files])
    except httpx.HTTPError as err:
        return "down", 0, f"{type(err).__name__}: {err}"
    try:
        body = r.json()
    except ValueError:
        body = None
    detail = body.get("error", "") if isinstance(body, dict) else r.text[:200]
    if r.status_code >= 500:
        return "5xx", r.status_code, str(body)[:300]
    if r.status_code >= 400:
        json_error = isinstance(body, dict) and "error" in body
        return ("4xx" if json_error and not req.expect_2xx else "bad_4xx"), r.status_code, str(detail)
    return "2xx", r.status_code, ""


def run_campaign(t: Target, indices: Iterable[int], seed: int = 0, concurrency: int = 8,
                 mutants: list[tuple[tuple[str, bytes], ...]] | None = None,
                 timeout: float = 60.0) -> list[dict[str, object]]:
    """Run the cases ``indices`` (``concurrency`` at a time); one dict per case: index, family, outcome,
    status, detail (the error code of a 4xx), probe, seconds. A ``valid`` case answered 4xx is ``bad_4xx``.
    Escaped files and leftover temporary folders add one ``outside_write`` row (and are removed)."""
    import httpx

    names = [n for n in FAMILIES if n != "mutated" or mutants]

    def one(index: int) -> dict[str, object]:
        rng = np.random.default_rng([seed, index])
        family = names[index % len(names)]
        args = (t, rng, mutants) if family == "mutated" else (t, rng)
        req = FAMILIES[family](*args)
        start = time.perf_counter()
        with httpx.Client(timeout=timeout) as client:
            outcome, status, detail = classify(t, client, req)
            if outcome == "down" and _healthy(t, client):
                outcome = "5xx"  # the connection broke but the server lives: an aborted answer
        return {"index": index, "family": family, "outcome": outcome, "status": status, "detail": detail,
                "probe": req.probe, "seconds": time.perf_counter() - start}

    with ThreadPoolExecutor(concurrency) as pool:
        rows = list(pool.map(one, indices))
    _check_escapes(t, rows)
    _check_leaks(rows)
    return rows


def _healthy(t: Target, client: object) -> bool:
    import httpx

    try:
        return client.get(f"{t.url}/health").status_code == 200
    except httpx.HTTPError:
        return False


def _check_escapes(t: Target, rows: list[dict[str, object]]) -> None:
    """Mark the campaign ``outside_write`` when a marked file escaped or a temporary folder was left behind."""
    escaped = t.escapes()
    left = [p for p in t.uploads.iterdir()] if t.uploads.is_dir() else []
    if escaped or left:
        rows.append({"index": -1, "family": "filesystem", "outcome": "outside_write", "status": 0,
                     "detail": f"escaped: {[str(p) for p in escaped][:5]}; left in uploads: {left[:5]}",
                     "probe": "", "seconds": 0.0})
        for p in escaped:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _check_leaks(rows: list[dict[str, object]]) -> None:
    """A header naming an existing server file must be answered like one naming a missing file."""
    probes = [r for r in rows if r["family"] == "server_path"]
    answers = {(r["status"], r["detail"]) for r in probes}
    if len(answers) > 1:
        for r in probes:
            r["outcome"], r["detail"] = "leak", f"{r['probe']}: {r['status']} {r['detail']} (answers {answers})"


def tally(rows: Iterable[dict[str, object]]) -> dict[str, Counter]:
    """family -> Counter of outcome classes."""
    out: dict[str, Counter] = {}
    for r in rows:
        out.setdefault(str(r["family"]), Counter())[str(r["outcome"])] += 1
    return out


def table(counts: dict[str, Counter]) -> str:
    """A markdown table: family x outcome class."""
    lines = ["| family | cases | " + " | ".join(OUTCOMES) + " |", "|---|---:|" + "---:|" * len(OUTCOMES)]
    total: Counter = Counter()
    for family in sorted(counts):
        row = counts[family]
        total.update(row)
        lines.append(f"| {family} | {sum(row.values())} | " + " | ".join(str(row[c]) for c in OUTCOMES) + " |")
    lines.append(f"| **all** | {sum(total.values())} | " + " | ".join(str(total[c]) for c in OUTCOMES) + " |")
    return "\n".join(lines)
