"""Flat-memory regression tests for pytest, registered through the `pytest11` entry point
of the `diagnose-memory` wheel (installing the wheel is all it takes).

    import pytest

    @pytest.mark.flat_memory(repeats=8)
    def test_predict_keeps_nothing(model, batch):
        model.predict(batch)

    def test_step(flat_memory_check, model):      # set-up done once, a step repeated
        flat_memory_check(lambda: model.train_step(), repeats=8)

The test body (or the step) runs `repeats` times in the test's own process while the
bundled `diagnose` binary watches that process (`diagnose watch --pid`); after each
repeat (and a gc.collect()) an epoch end is marked, so repeats are compared as epochs
are: the first as warm-up, then a robust slope with its interval per series (main
process USS, the tree's PSS and RSS; with torch on CUDA the caching allocator). The
verdict is the binary's: the test fails when it says "growing", and the message gives
the growth per repeat with its interval; bounded growth (a cache that fills) passes and
says so. With python_objects=True each repeat also takes a census of the live Python
objects, and the message names the container that grows.

Tests without the marker are not touched. Under pytest-xdist every worker starts its
own watcher for its own process.
"""

import gc
import os
import re

import pytest

from diagnose_memory._watching import Watching, WatchError, human_bytes

# The binary counts the first fifth of the repeats (at least one) as warm-up and, today,
# needs 3 repeat ends after it to judge: 4 at the least; 8 leaves 7 points to fit, enough
# for an interval that one noisy repeat does not swing.
DEFAULT_REPEATS = 8
# Fewer cannot be compared at all; between this and 4 the binary answers "insufficient"
# (and the test fails saying so) unless it judges short runs.
MIN_REPEATS = 2

_RESULTS_KEY = "flat_memory"
# One line per checked test, for the terminal summary (in the controller under xdist).
_LINES = []


def pytest_addoption(parser):
    group = parser.getgroup("diagnose-memory", "flat-memory tests (diagnose-memory)")
    group.addoption("--diagnose-memory-out", metavar="DIR", default=None,
                    help="write each flat_memory test's report (summary.md, memory.png, report.html, timeline.csv) "
                         "under DIR/<test> (default: under pytest's basetemp)")
    group.addoption("--diagnose-memory-interval", metavar="DURATION", default="100ms",
                    help="time between the watcher's own samples besides the repeats' ends (default 100ms)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "flat_memory(repeats=8, python_objects=False): run the test body `repeats` times in this process while "
        "diagnose watches it; fail when memory grows from repeat to repeat (diagnose-memory)")
    del _LINES[:]


def _bad(message):
    """Bad input fails the test that holds it, with the message alone (no traceback)."""
    pytest.fail(message, pytrace=False)


def _options(repeats=DEFAULT_REPEATS, python_objects=False):
    if isinstance(repeats, bool) or not isinstance(repeats, int):
        _bad("flat_memory: repeats must be a whole number, not %r" % (repeats,))
    if repeats < MIN_REPEATS:
        _bad(
            "flat_memory: repeats=%d is too few: the first repeat is warm-up and growth is judged between the "
            "repeats after it (at least %d; %d by default)" % (repeats, MIN_REPEATS, DEFAULT_REPEATS))
    return repeats, bool(python_objects)


def _marker_options(marker):
    args, kwargs = list(marker.args), dict(marker.kwargs)
    unknown = set(kwargs) - {"repeats", "python_objects"}
    if unknown or len(args) > 1:
        _bad("flat_memory takes repeats=N and python_objects=True/False, not %s" % (
            ", ".join(sorted(unknown)) or "%d positional arguments" % len(args)))
    if args:
        kwargs["repeats"] = args[0]
    return _options(**kwargs)


def _slug(nodeid):
    """test_file.py_test_name[param] from a node id: its file's name, not its folders
    (another folder's test of the same name gets -2)."""
    path, _, rest = nodeid.partition("::")
    name = os.path.basename(path) + ("_" + rest if rest else "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150] or "test"


def _out_dir(config, nodeid, tmp_factory, suffix=""):
    base = config.getoption("--diagnose-memory-out")
    if base:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        base = os.path.join(base, worker) if worker else base
    else:
        base = str(tmp_factory.getbasetemp().joinpath("diagnose-memory"))
    path = os.path.join(base, _slug(nodeid) + suffix)
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(base, "%s%s-%d" % (_slug(nodeid), suffix, n))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


class FlatMemoryResult:
    """What one flat-memory check found: the binary's verdict and summary, the report
    folder, the message (why it failed, or what it saw)."""

    def __init__(self, watch, repeats):
        self.repeats = repeats
        self.out = watch.out
        self.summary = watch.summary
        self.verdict = watch.verdict
        self.watch = watch
        self.failed = self.verdict in ("growing", "insufficient")
        self.message = _message(watch.summary, repeats, watch.out)

    def __repr__(self):
        return "<FlatMemoryResult %s over %d repeats: %s>" % (self.verdict, self.repeats, self.out)


def _series_line(v):
    slope, iv = v.get("slope_bytes_per_epoch"), v.get("slope_interval")
    growth = "" if slope is None else "%s/repeat" % human_bytes(slope, sign=True)
    if iv:
        growth += " [90%% interval %s, %s]" % (human_bytes(iv[0], sign=True), human_bytes(iv[1], sign=True))
    cls = v.get("class", "")
    if cls == "growing" and v.get("growing_since") is not None:
        cls += " since repeat %d" % v["growing_since"]
    return "  %-26s %-26s %-52s %s -> %s" % (v.get("name", v.get("column")), cls, growth, human_bytes(v.get("first_bytes")), human_bytes(v.get("last_bytes")))


# The series a test is judged on, in the order the message names them (the binary's
# primary series for a watched process).
_JUDGED = ("main_uss_bytes", "tree_pss_bytes", "workers_uss_bytes", "gpu_allocated_bytes", "gpu_tree_used_bytes")
_SHOWN = _JUDGED + ("main_rss_bytes",)


# Ledger lines about the watch itself, true of every test: left out of the message (the
# report keeps them).
_NOT_FOR_TESTS = ("The watch was stopped at", "GPU columns are empty")


def _message(summary, repeats, out):
    series = {v.get("column"): v for v in summary.get("series", [])}
    verdict = summary.get("verdict")
    lines = []
    judged = [series[c] for c in _JUDGED if c in series]
    growing = [v for v in judged if v.get("class") == "growing"]
    bounded = [v for v in judged if v.get("class") == "bounded"]
    if verdict == "growing" and growing:
        g = growing[0]
        iv = g.get("slope_interval")
        within = " (90%% interval %s to %s)" % (human_bytes(iv[0], sign=True), human_bytes(iv[1], sign=True)) if iv else ""
        lines.append("memory grows by %s per repeat%s: %s, %s -> %s over %d repeats (diagnose's verdict: growing)" % (
            human_bytes(g.get("slope_bytes_per_epoch"), sign=True), within, g.get("name"),
            human_bytes(g.get("first_bytes")), human_bytes(g.get("last_bytes")), repeats))
    elif verdict == "insufficient":
        lines.append("diagnose could not judge growth from %d repeats (verdict: insufficient): pass more repeats (%d by default)" % (repeats, DEFAULT_REPEATS))
    elif bounded:
        b = bounded[0]
        lines.append("memory rose and levelled off (bounded, like a cache that fills: passes): %s %s -> %s" % (
            b.get("name"), human_bytes(b.get("first_bytes")), human_bytes(b.get("last_bytes"))))
    else:
        lines.append("memory is %s over %d repeats (diagnose's verdict)" % (verdict, repeats))
    warm = next((v.get("warmup_epochs") for v in judged if v.get("warmup_epochs") is not None), None)
    fitted = next((v.get("fitted") for v in judged if v.get("fitted")), None)
    if fitted:
        warm = list(warm or [])
        lines.append("%s; fitted over repeats %d-%d" % (
            "no warm-up" if not warm else "repeat %d is warm-up" % warm[0] if len(warm) == 1 else "repeats %d-%d are warm-up" % (warm[0], warm[-1]),
            fitted["first"], fitted["last"]))
    shown = [series[c] for c in _SHOWN if c in series]
    if shown:
        lines.append("per series (growth per repeat, 90 % interval; first -> last repeat end):")
        lines += [_series_line(v) for v in shown]
    objects = ((summary.get("censuses") or {}).get("objects")) or []
    grown = [o for o in objects if o.get("kind") != "type" and o.get("class") == "growing"]
    if grown:
        lines.append("Python objects that grow (census at each repeat end):")
        for o in grown[:5]:
            items = o.get("items_per_epoch")
            more = ", %+.0f items/repeat" % items if isinstance(items, (int, float)) else ""
            lines.append("  %s (%s): %s/repeat%s" % (o.get("name"), o.get("type_name", "?"), human_bytes(o.get("slope_bytes_per_epoch"), sign=True), more))
    ledger = [l for l in summary.get("ledger") or [] if not l.startswith(_NOT_FOR_TESTS)]
    if verdict == "growing" and not objects:
        # The binary's advice names the notebook API too; here the census is the marker's.
        ledger = [l.split(" To see which Python objects hold it")[0] for l in ledger]
        ledger.append("To name the Python container that holds it: flat_memory(repeats=%d, python_objects=True) "
                      "(or flat_memory_check(step, python_objects=True))." % repeats)
    if ledger and verdict in ("growing", "insufficient"):
        lines.append("diagnose says:")
        lines += ["  - " + l for l in ledger]
    lines.append("report: %s" % os.path.join(out, "summary.md"))
    return "\n".join(lines)


def _interval(config):
    try:
        return config.getoption("--diagnose-memory-interval")
    except (ValueError, AttributeError):
        return "100ms"


def run_repeats(step, repeats, python_objects, out, interval="100ms"):
    """Run `step()` `repeats` times under a watcher of this process, an epoch end after
    each; return the FlatMemoryResult. Exceptions of `step` propagate (the watcher is
    stopped first)."""
    watch = Watching(out=out, interval=interval, python_objects=python_objects)
    missing = None
    try:
        watch.start()
    except FileNotFoundError as e:
        missing = str(e)  # said outside the handler: one message, no chained traceback
    except WatchError as e:
        pytest.fail("flat_memory: could not watch this process: %s" % e, pytrace=False)
    if missing is not None:
        _bad("flat_memory: the diagnose binary is missing (%s): install the diagnose-memory wheel, "
             "or point DIAGNOSE_BIN at a diagnose binary" % missing)
    try:
        for r in range(repeats):
            step()
            gc.collect()
            watch.epoch_end(r)
    finally:
        watch.stop()
    return FlatMemoryResult(watch, repeats)


def _record(item, result):
    line = "%s: %s" % (item.nodeid, result.message.splitlines()[0])
    item.user_properties.append((_RESULTS_KEY, line))
    if not result.failed:  # a failure's message says it all already
        item.add_report_section("call", "flat memory", result.message)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    marker = pyfuncitem.get_closest_marker("flat_memory")
    if marker is None:
        return None
    repeats, python_objects = _marker_options(marker)
    func = pyfuncitem.obj
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    factory = pyfuncitem._request.getfixturevalue("tmp_path_factory")
    out = _out_dir(pyfuncitem.config, pyfuncitem.nodeid, factory)
    result = run_repeats(lambda: func(**kwargs), repeats, python_objects, out, _interval(pyfuncitem.config))
    _record(pyfuncitem, result)
    if result.failed:
        pytest.fail(result.message, pytrace=False)
    return True


@pytest.fixture
def flat_memory_check(request, tmp_path_factory):
    """`flat_memory_check(step, repeats=8, python_objects=False)`: call `step()` that many
    times while diagnose watches this process; fail the test when memory grows from
    repeat to repeat. Returns the FlatMemoryResult (verdict, summary, out, message)."""
    calls = [0]

    def check(step, repeats=DEFAULT_REPEATS, python_objects=False):
        if not callable(step):
            raise TypeError("flat_memory_check(step, ...): step must be callable, not %r" % (step,))
        repeats, python_objects = _options(repeats, python_objects)
        calls[0] += 1
        out = _out_dir(request.config, request.node.nodeid, tmp_path_factory, "" if calls[0] == 1 else "-check%d" % calls[0])
        result = run_repeats(step, repeats, python_objects, out, _interval(request.config))
        _record(request.node, result)
        if result.failed:
            pytest.fail(result.message, pytrace=False)
        return result

    return check


def pytest_runtest_logreport(report):
    # In the controller too (pytest-xdist ships user_properties with each report).
    if report.when != "call":
        return
    for key, line in getattr(report, "user_properties", ()):
        if key == _RESULTS_KEY:
            _LINES.append(line)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if _LINES:
        terminalreporter.write_sep("-", "flat memory (diagnose)")
        for line in _LINES:
            terminalreporter.write_line(line)
