"""Boundary markers for `diagnose watch`: one file, no dependencies.

    import diagnose_markers as dm
    for epoch in range(epochs):
        train_one_epoch()
        dm.validation_start(epoch)
        validate()
        dm.validation_end(epoch)
        dm.epoch_end(epoch)

Under `diagnose watch`, each call sends one short line to the watcher's socket (its path
is in the DIAGNOSE_MARKER_SOCKET environment variable), and the watcher samples the whole
process tree at that moment. Anywhere else every call does nothing. No call ever raises
into the training loop or blocks it: a line that cannot be sent is dropped.

Copy this file next to your script, or `pip install <checkout>/python`.
"""

import os
import re
import socket

__all__ = ["enabled", "epoch_end", "validation_start", "validation_end", "phase"]

_ENV = "DIAGNOSE_MARKER_SOCKET"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_state = {"pid": None, "sock": None}


def enabled():
    """True when running under `diagnose watch`."""
    return bool(os.environ.get(_ENV))


def _send(line):
    path = os.environ.get(_ENV)
    if not path:
        return False
    try:
        # A forked DataLoader worker gets a socket of its own.
        if _state["pid"] != os.getpid() or _state["sock"] is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.setblocking(False)
            _state["sock"], _state["pid"] = s, os.getpid()
        line += _gpu_fields()
        rank = os.environ.get("RANK", "")
        if rank.isdigit():
            line += " rank=" + rank
        _state["sock"].sendto(line.encode("ascii"), path)
        return True
    except Exception:  # never into the training loop
        return False


def _gpu_fields():
    """torch.cuda's caching-allocator figures for the current device, when the program
    imported torch and uses CUDA: what NVML cannot tell apart (allocated vs reserved)."""
    import sys

    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_initialized():
            return ""
        c = torch.cuda
        return " gpu_allocated=%d gpu_reserved=%d gpu_peak_allocated=%d gpu_peak_reserved=%d" % (
            c.memory_allocated(), c.memory_reserved(), c.max_memory_allocated(), c.max_memory_reserved())
    except Exception:
        return ""


def _index(value):
    try:
        v = int(value)
        return v if v >= 0 else None
    except Exception:
        return None


def epoch_end(epoch, census=False):
    """An epoch ended: the point where memory is compared from epoch to epoch. With
    census=True, also take a census of this process's live objects first, here in the
    calling thread (what `diagnose watch --python-objects` does at each epoch end), for
    the report's objects.csv: with or without --python-objects, not with --no-inject
    (said once on stderr)."""
    e = _index(epoch)
    if e is not None and os.environ.get(_ENV):
        # Garbage in reference cycles is freed first: the epoch end reads what the
        # program keeps, not when Python's cycle collector last ran.
        import gc

        gc.collect()
    if e is not None and census and os.environ.get("DIAGNOSE_CENSUS_OUT"):
        try:
            import diagnose_census  # injected by diagnose watch, unless --no-inject
        except Exception:
            diagnose_census = None
            if not _state.get("told"):
                _state["told"] = True
                try:
                    import sys
                    sys.stderr.write("diagnose_markers: epoch_end(census=True) takes no census: diagnose watch ran with --no-inject\n")
                except Exception:
                    pass
        if diagnose_census is not None:
            try:
                # Here, in the training loop's own thread: graphs can be walked safely.
                diagnose_census.census_to(e, os.environ["DIAGNOSE_CENSUS_OUT"], graphs="thread")
            except Exception:
                pass
    return e is not None and _send("epoch_end %d" % e)


def validation_start(epoch):
    """Validation is about to start."""
    e = _index(epoch)
    return e is not None and _send("validation_start %d" % e)


def validation_end(epoch):
    """Validation ended."""
    e = _index(epoch)
    return e is not None and _send("validation_end %d" % e)


def phase(name, epoch, step=None):
    """A phase of your own ended (name: letters, digits, _ . -)."""
    try:
        e = _index(epoch)
        if e is None or not isinstance(name, str) or not _NAME.match(name) or name in ("start", "finish", "sample"):
            return False
        if step is None:
            return _send("phase %s %d" % (name, e))
        s = _index(step)
        return s is not None and _send("phase %s %d %d" % (name, e, s))
    except Exception:
        return False
