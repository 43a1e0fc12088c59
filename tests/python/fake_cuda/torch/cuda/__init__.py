"""Fake torch.cuda: see the package's docstring."""
from . import memory  # noqa: F401

_initialized = False
_queued_calls = []
fake_state = {"stats": {}, "snapshot": {"segments": [], "device_traces": [[]]}}


def is_initialized():
    return _initialized


def _lazy_call(callable, **kwargs):
    if _initialized:
        callable()
    else:
        _queued_calls.append(callable)


def _lazy_init():
    """What the first CUDA tensor does: init, then the queued calls."""
    global _initialized
    if _initialized:
        return
    _initialized = True
    for c in _queued_calls:
        c()


def current_device():
    return 0


def memory_stats(device=None):
    return dict(fake_state["stats"])
