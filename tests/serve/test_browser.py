"""End-to-end test of the web page in headless Chromium.

The app (a tiny random checkpoint written here) runs under uvicorn on 127.0.0.1 in a thread, on a socket bound
to a free port. Debian's ``/usr/bin/chromium`` is driven through the Chrome DevTools Protocol over a pipe
(``--remote-debugging-pipe``: JSON messages separated by NUL bytes on file descriptors 3 and 4), so no driver
package, no browser download and no debugging port are needed. The test chooses a WFDB record (``.hea`` +
``.dat``) in the page's file input, presses *Predict*, waits for the result and checks the numbers the page shows
against ``Predictor.predict_file`` on the same files; then it uploads an unsupported file and checks that the
page shows the service's error. Every wait is bounded; the browser and the server are always stopped.

Set ``ECGLENS_SCREENSHOT=/path/page.png`` to keep a screenshot of the page after the upload.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not found at /usr/bin/chromium "
                       "(install it with `apt-get install chromium`)"),
]
uvicorn = pytest.importorskip("uvicorn")
wfdb = pytest.importorskip("wfdb")

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--remote-debugging-pipe")
TIMEOUT = 60.0  # seconds for any single wait


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, profile: Path, log: Path) -> None:
        r_in, self._w = os.pipe()  # we write commands -> Chromium reads fd 3
        self._r, w_out = os.pipe()  # Chromium writes fd 4 -> we read
        r_in, w_out = (self._high(fd) for fd in (r_in, w_out))
        script = f'exec 3<&{r_in} 4>&{w_out} {r_in}<&- {w_out}>&-; exec "$0" "$@"'
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(["/bin/bash", "-c", script, str(CHROMIUM), *FLAGS,
                                          f"--user-data-dir={profile}", "about:blank"],
                                         pass_fds=(r_in, w_out), stdout=subprocess.DEVNULL, stderr=err)
        os.close(r_in)
        os.close(w_out)
        self._buf, self._id, self.session = b"", 0, None

    @staticmethod
    def _high(fd: int) -> int:
        """Move ``fd`` to a number >= 10 so the shell's ``3<&N 4>&M`` cannot clobber it."""
        new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return new

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium in time")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, timeout: float = TIMEOUT,
             browser: bool = False) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 1000, "deviceScaleFactor": 1,
                                                         "mobile": False})
        self.send("Page.navigate", {"url": url})
        self.wait_for(f"location.href === {url!r} && document.readyState === 'complete'")

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = TIMEOUT) -> Any:
        """Poll ``expression`` until it is truthy (an exception, e.g. while the page loads, counts as false)."""
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(guarded)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout:g} s for {expression!r}")

    def choose_files(self, selector: str, paths: list[Path]) -> None:
        node = self.send("Runtime.evaluate", {"expression": f"document.querySelector({selector!r})"})["result"]
        self.send("DOM.setFileInputFiles", {"files": [str(p) for p in paths], "objectId": node["objectId"]})

    def screenshot(self) -> bytes:
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        return base64.b64decode(data)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5, browser=True)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            os.close(self._w)
            os.close(self._r)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[int]:
    """Run uvicorn with ``app`` in a thread on 127.0.0.1 and a free port; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def make_record(folder: Path) -> Path:
    """A synthetic 10 s 12-lead WFDB record at 500 Hz (mV sinusoids + noise, age 58, male)."""
    fs, n = 500, 5000
    t = np.arange(n) / fs
    rng = np.random.default_rng(7)
    sig = np.stack([0.7 * np.sin(2 * np.pi * 1.3 * t + k) + 0.04 * rng.standard_normal(n) for k in range(12)], 1)
    leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    wfdb.wrsamp("patient7", fs=fs, units=["mV"] * 12, sig_name=leads, p_signal=sig, fmt=["16"] * 12,
                comments=["Age: 58", "Sex: Male"], write_dir=str(folder))
    return folder / "patient7.hea"


_RESULT_JS = """JSON.stringify({
  status: document.getElementById('status').textContent,
  error: document.getElementById('error').style.display === 'block' ? document.getElementById('error').textContent : '',
  rows: Array.from(document.querySelectorAll('#outputs tbody tr'))
    .map(r => Array.from(r.cells).map(c => c.textContent)),
  record: Array.from(document.querySelectorAll('#record-info dd')).map(d => d.textContent),
  plot: document.getElementById('plot').naturalWidth,
  visible: document.getElementById('results').style.display
})"""


def upload(browser: DevTools, port: int, model_line: str, files: list[Path]) -> dict[str, Any]:
    """Open the page, wait until its model line starts with ``model_line``, upload ``files``; return what it shows.

    The dict holds ``status``, ``error`` (empty unless the error box is shown), ``rows`` (the outputs table),
    ``record`` (the record's facts), ``plot`` (the decoded plot's width in px) and ``visible`` (the results
    block's display style).
    """
    browser.open(f"http://127.0.0.1:{port}/")
    browser.wait_for("document.readyState === 'complete' && "
                     f"document.getElementById('model-line').textContent.startsWith({json.dumps(model_line)})")
    browser.choose_files("#file", files)
    assert browser.js("document.getElementById('file').files.length") == len(files)
    browser.js("document.getElementById('submit').click()")
    browser.wait_for("document.getElementById('status').textContent.startsWith('Done') || "
                     "document.getElementById('error').style.display === 'block'")
    return json.loads(browser.js(_RESULT_JS))


def test_upload_in_headless_chromium(tmp_path: Path) -> None:
    from ecglens.artifact import save_checkpoint
    from ecglens.artifact.calibration import binary_label
    from ecglens.data.targets import task_from_name
    from ecglens.models import create_model
    from ecglens.predict import Predictor
    from ecglens.serve import create_app
    from ecglens.signal.transforms import Preprocess

    rng = np.random.default_rng(0)
    task = task_from_name("age_sex").fit(np.c_[rng.uniform(20, 90, 64), rng.integers(0, 2, 64)])
    torch.manual_seed(1)
    model = create_model("cnn_baseline", num_outputs=task.num_outputs, channels=(8, 16))
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", model, task=task, preprocess=Preprocess())
    hea = make_record(tmp_path)
    expected = Predictor.from_pretrained(ckpt).predict_file(hea).outputs
    bogus = tmp_path / "holiday.png"
    bogus.write_bytes(b"\x89PNG not an ecg")

    with serving(create_app(ckpt, plot_dpi=80)) as port:
        browser = DevTools(tmp_path / "profile", tmp_path / "chromium.log")
        try:
            shown = upload(browser, port, "model tiny", [hea, hea.with_suffix(".dat")])
            png = browser.screenshot()

            browser.choose_files("#file", [bogus])
            browser.js("document.getElementById('submit').click()")
            browser.wait_for("document.getElementById('error').style.display === 'block'")
            error = browser.js("document.getElementById('error').textContent")
        finally:
            browser.close()

    assert shown["error"] == "" and shown["status"] == "Done: patient7" and shown["visible"] == "block"
    rows = {row[0]: row for row in shown["rows"]}
    assert set(rows) == {"age", "sex"}
    assert rows["age"][1] == f"{expected['age']:.1f} y"
    call = binary_label(expected["p_female"])  # "uncertain" inside the band, else female / male
    assert rows["sex"][1] == f"{call} ({100 * expected['p_female']:.1f} %)"
    assert "recorded 58 y" in rows["age"][2] and "± " in rows["age"][2] and "not calibrated" in rows["age"][2]
    assert "no age-bias correction" in rows["age"][2]
    assert "500 Hz, 10.0 s (5000 samples)" in shown["record"]
    assert shown["plot"] > 500  # the 12-lead PNG was decoded by the browser
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert error.startswith("Error 415") and "holiday.png" in error
    keep = os.environ.get("ECGLENS_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(png)
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_page_of_the_shipped_diagnosis_model_shows_its_probabilities_and_aurocs(tmp_path: Path) -> None:
    from ecglens.artifact import pretrained_aliases
    from ecglens.predict import Predictor
    from ecglens.serve import create_app

    if "mi" not in pretrained_aliases():
        pytest.skip("the superclass model (alias `mi`) is not shipped")
    hea = make_record(tmp_path)
    expected = Predictor.from_pretrained("mi").predict_file(hea).outputs
    with serving(create_app("mi", plot_dpi=80)) as port:
        browser = DevTools(tmp_path / "profile", tmp_path / "chromium.log")
        try:
            shown = upload(browser, port, "model ", [hea, hea.with_suffix(".dat")])
            metrics = browser.js("document.getElementById('model-metrics').textContent")
        finally:
            browser.close()
    assert shown["error"] == "" and shown["status"] == "Done: patient7"
    assert len(shown["rows"]) == 5 and all(np.isfinite(v) for v in expected.values())
    assert "MI AUROC 0.922" in metrics and "Calibrated on fold(s) 9" in metrics
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
