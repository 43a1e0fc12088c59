"""`diagnose_memory.watching()`: the bundled `diagnose` binary watching this very process.

    import diagnose_memory
    with diagnose_memory.watching(out="mem") as w:
        for epoch in range(8):
            train_one_epoch()
            w.validation_start(epoch)
            validate()
            w.epoch_end(epoch)
    print(w.verdict)          # "flat", "growing", ... (the binary's verdict)
    w                         # in Jupyter: the plot and the ledger

It starts `diagnose watch --pid <this pid> --marker-socket <private path>`; each mark is a
datagram on that socket, and the call returns once the watcher has written its row (so
the sample is of this moment, not of whatever the loop does next). On exit the watcher
is stopped and writes the usual report (timeline.csv, summary.json, summary.md,
memory.png, report.html) into `out`. Nothing here judges memory: the verdict, the
slopes and the ledger are the binary's, read from its summary.json.
"""

import base64
import csv
import gc
import html
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["watching", "Watching", "WatchError", "human_bytes"]

_ENV = "DIAGNOSE_MARKER_SOCKET"


class WatchError(RuntimeError):
    """The watcher could not be started, or failed."""


def human_bytes(n, sign=False):
    """1536 -> '1.5 KiB' (binary units, as the binary's reports write them)."""
    if n is None:
        return "?"
    value = float(n)
    prefix = ("+" if value >= 0 else "-") if sign else ("-" if value < 0 else "")
    value = abs(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return "%s%.0f %s" % (prefix, value, unit) if unit == "B" else "%s%.1f %s" % (prefix, value, unit)
        value /= 1024.0


def _binary(binary=None):
    if binary is None:
        binary = os.environ.get("DIAGNOSE_BIN") or None
    if binary is None:
        from diagnose_memory import find_diagnose_bin

        return find_diagnose_bin()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise FileNotFoundError("diagnose binary %r (from DIAGNOSE_BIN or binary=) does not exist or is not executable" % binary)
    return binary


def _default_out():
    return os.path.join("reports", "watching-%s-%d" % (time.strftime("%Y%m%d-%H%M%S"), os.getpid()))


class Watching:
    """The bundled `diagnose` watching this process; see the module's text.

    out: the report folder (default reports/watching-<time>-<pid>); it must not hold
    files unless force=True. interval: time between the watcher's own samples (RSS; the
    marks themselves are sampled in full: PSS, USS). python_objects: with each
    epoch_end, take a census of this process's live objects (diagnose_census, from the
    same wheel), so the report names the container that grows. binary: the `diagnose`
    to run (default: DIAGNOSE_BIN, else the wheel's). timeout: seconds to wait for the
    watcher to start, and for each mark to be recorded.
    """

    def __init__(self, out=None, interval="250ms", force=False, python_objects=False, binary=None, timeout=30.0, extra_args=()):
        self.out = os.path.abspath(out if out is not None else _default_out())
        self.interval = str(interval)
        self.force = bool(force)
        self.python_objects = bool(python_objects)
        self.timeout = float(timeout)
        self._binary_arg = binary
        self._extra = list(extra_args)
        self._proc = None
        self._private = None
        self._sock = None
        self._path = None
        self._log = None
        self._timeline = None
        self._buf = ""
        self._header = None
        self._env_before = None
        self._epochs = 0
        self.summary = None
        self.verdict = None
        self.text = ""
        self.returncode = None

    # -- starting and stopping -------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
            return False
        # The block's own error is the one to see; the report is written all the same.
        try:
            self.stop()
        except WatchError as e:
            sys.stderr.write("diagnose_memory: %s\n" % e)
        return False

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    @property
    def epochs(self):
        """Epoch ends recorded so far."""
        return self._epochs

    def start(self):
        if self._proc is not None:
            raise WatchError("this watch was already started")
        binary = _binary(self._binary_arg)
        self._private = tempfile.mkdtemp(prefix="diagnose-watching-")  # 0700
        self._path = os.path.join(self._private, "markers.sock")
        self._log = open(os.path.join(self._private, "watcher.log"), "w+b")
        args = [binary, "watch", "--pid", str(os.getpid()), "--out", self.out, "--interval", self.interval,
                "--auto-window", "0", "--marker-socket", self._path,
                # Repeats are short and every one's PSS counts: no page-walk budget.
                "--pss-budget", "off"]
        if self.force:
            args.append("--force")
        args += self._extra
        try:
            # A session of its own: a Ctrl-C meant for this program does not stop the
            # watcher before it has written the report; stop() does.
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            self._cleanup()
            raise WatchError("cannot start %s: %s" % (binary, e))
        deadline = time.monotonic() + self.timeout
        timeline = os.path.join(self.out, "timeline.csv")
        while True:
            if self._proc.poll() is not None:
                log, code = self._read_log(), self._proc.returncode
                self._proc = None
                self._cleanup()
                raise WatchError("diagnose watch exited at start (code %s):\n%s" % (code, log.strip()))
            if os.path.exists(self._path) and self._read_rows(timeline):
                break
            if time.monotonic() > deadline:
                self._kill()
                raise WatchError("diagnose watch did not start within %.0f s:\n%s" % (self.timeout, self._read_log().strip()))
            time.sleep(0.01)
        if self.python_objects:
            import diagnose_census

            # A new watch compares its own censuses: not the last watch's epochs (which
            # would make this one's census of epoch 0 "already taken") nor its baseline.
            diagnose_census.forget()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._env_before = os.environ.get(_ENV)
        # diagnose_markers calls made by the program itself reach this watcher too.
        os.environ[_ENV] = self._path
        return self

    def stop(self):
        """Stop watching; the watcher writes the report. Returns the verdict."""
        if self._proc is None:
            return self.verdict
        proc, self._proc = self._proc, None
        if self._env_before is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = self._env_before
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=max(60.0, self.timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.returncode = proc.returncode
        self.text = self._read_log()
        self._cleanup()
        path = os.path.join(self.out, "summary.json")
        try:
            with open(path) as f:
                self.summary = json.load(f)
        except (OSError, ValueError) as e:
            raise WatchError("diagnose watch wrote no readable %s (exit code %s): %s\n%s" % (path, proc.returncode, e, self.text.strip()))
        self.verdict = self.summary.get("verdict")
        return self.verdict

    def _kill(self):
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        self._cleanup()

    def _cleanup(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._timeline is not None:
            self._timeline.close()
            self._timeline = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    def _read_log(self):
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    # -- marks ---------------------------------------------------------------------------

    def _read_rows(self, path):
        """New complete rows of timeline.csv since the last call, as (phase, epoch)."""
        if self._timeline is None:
            try:
                self._timeline = open(path, "r", newline="")
            except OSError:
                return []
        self._buf += self._timeline.read()
        *lines, self._buf = self._buf.split("\n")
        rows = []
        for line in lines:
            if not line:
                continue
            fields = next(csv.reader([line]))
            if self._header is None:
                self._header = fields
                continue
            rec = dict(zip(self._header, fields))
            rows.append((rec.get("phase"), rec.get("epoch")))
        return rows

    def _mark(self, line, phase, epoch):
        if self._proc is None:
            raise WatchError("not watching: use `with diagnose_memory.watching(...) as w:` (or w.start())")
        try:
            import diagnose_markers

            line += diagnose_markers._gpu_fields()
        except Exception:
            pass
        try:
            self._sock.sendto(line.encode("ascii"), self._path)
        except OSError as e:
            raise WatchError("cannot send %r to the watcher: %s" % (line, e))
        # Back once the watcher has sampled this moment: what the loop does next is not
        # part of this boundary.
        deadline = time.monotonic() + self.timeout
        want = (phase, str(epoch))
        timeline = os.path.join(self.out, "timeline.csv")
        while True:
            rows = self._read_rows(timeline)
            if want in rows:
                if phase == "epoch_end":
                    self._epochs += 1
                return True
            if self._proc.poll() is not None:
                raise WatchError("the watcher ended:\n%s" % self._read_log().strip())
            if time.monotonic() > deadline:
                sys.stderr.write("diagnose_memory: %r was not recorded within %.0f s\n" % (line, self.timeout))
                return False
            time.sleep(0.002)

    @staticmethod
    def _index(epoch):
        try:
            e = int(epoch)
        except (TypeError, ValueError):
            raise ValueError("epoch must be a whole number >= 0, not %r" % (epoch,))
        if e < 0 or e != epoch:
            raise ValueError("epoch must be a whole number >= 0, not %r" % (epoch,))
        return e

    def epoch_end(self, epoch, census=None):
        """Epoch `epoch` ended: the point compared from epoch to epoch. With a census
        (census=True, or python_objects=True on the watch), this process's live objects
        are counted first, for the report's Python objects."""
        e = self._index(epoch)
        # Garbage in reference cycles is freed first: the epoch end reads what the
        # program keeps, not when Python's cycle collector last ran.
        gc.collect()
        if census if census is not None else self.python_objects:
            import diagnose_census

            # Taken here, in the caller's thread between two of its steps, where no
            # backward pass is in flight: graphs are walked without the autograd gate.
            diagnose_census.census_to(e, os.path.join(self.out, "objects"), graphs="thread")
        return self._mark("epoch_end %d" % e, "epoch_end", e)

    def validation_start(self, epoch):
        e = self._index(epoch)
        return self._mark("validation_start %d" % e, "validation_start", e)

    def validation_end(self, epoch):
        e = self._index(epoch)
        return self._mark("validation_end %d" % e, "validation_end", e)

    def phase(self, name, epoch, step=None):
        """A phase of your own ended (name: letters, digits, _ . -; at most 64)."""
        import re

        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name) or name in ("start", "finish", "sample", "epoch_end", "validation_start", "validation_end"):
            raise ValueError("bad phase name %r (letters, digits, _ . -; not a boundary of diagnose's own)" % (name,))
        e = self._index(epoch)
        if step is None:
            return self._mark("phase %s %d" % (name, e), name, e)
        return self._mark("phase %s %d %d" % (name, e, self._index(step)), name, e)

    # -- reading the verdict -------------------------------------------------------------

    def series(self, column):
        """The binary's verdict on one series (e.g. 'main_uss_bytes'), or None."""
        for s in (self.summary or {}).get("series", []):
            if s.get("column") == column:
                return s
        return None

    def __repr__(self):
        if self.summary is None:
            state = "watching" if self._proc is not None else "not started"
            return "<diagnose_memory.watching %s pid %d into %s: %d epoch ends>" % (state, os.getpid(), self.out, self._epochs)
        return "<diagnose_memory.watching verdict %s (%s epochs) in %s>" % (self.verdict, self.summary.get("epochs"), self.out)

    def _repr_html_(self):
        esc = html.escape
        if self.summary is None:
            return "<p><code>%s</code></p>" % esc(repr(self))
        s = self.summary
        parts = ['<div class="diagnose-memory">',
                 "<p><b>verdict: %s</b> (%s epoch ends) &mdash; report: <code>%s</code></p>" % (esc(str(self.verdict)), esc(str(s.get("epochs"))), esc(self.out))]
        png = os.path.join(self.out, "memory.png")
        if os.path.exists(png):
            with open(png, "rb") as f:
                data = base64.b64encode(f.read()).decode("ascii")
            parts.append('<img alt="memory over time" style="max-width:100%%" src="data:image/png;base64,%s"/>' % data)
        rows = []
        for v in s.get("series", []):
            slope, iv = v.get("slope_bytes_per_epoch"), v.get("slope_interval")
            slope_s = "" if slope is None else human_bytes(slope, sign=True) + "/epoch"
            if iv:
                slope_s += " [%s, %s]" % (human_bytes(iv[0], sign=True), human_bytes(iv[1], sign=True))
            rows.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s &rarr; %s</td></tr>" % (
                esc(v.get("name", v.get("column", ""))), esc(v.get("class", "")), esc(slope_s), esc(human_bytes(v.get("first_bytes"))), esc(human_bytes(v.get("last_bytes")))))
        if rows:
            parts.append("<table><tr><th>series</th><th>class</th><th>slope (90 %% interval)</th><th>first &rarr; last</th></tr>%s</table>" % "".join(rows))
        ledger = s.get("ledger") or []
        if ledger:
            parts.append("<ul>%s</ul>" % "".join("<li>%s</li>" % esc(l) for l in ledger))
        parts.append("</div>")
        return "\n".join(parts)


def watching(out=None, **kwargs):
    """Watch this process with the bundled `diagnose` (a context manager): see Watching."""
    return Watching(out=out, **kwargs)
