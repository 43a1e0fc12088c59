"""Copied as test_census.py: a cache that fills to its capacity and stays there (first:
before the census's leak has spread over the heap), and a leak the census names
(python_objects=True), and a second one in the same session, with torch graphs."""
import collections

import pytest

MIB = 1 << 20


CACHE = collections.OrderedDict()
CALL = [0]


CAPACITY = int(__import__("os").environ.get("FLAT_TEST_CACHE", "8"))


@pytest.mark.flat_memory(repeats=int(__import__("os").environ.get("FLAT_TEST_CACHE_REPEATS", "12")))
def test_cache_fills_then_holds():
    # An LRU cache of CAPACITY entries of 4 MiB: full after that many calls, then each
    # new entry evicts the oldest.
    CALL[0] += 1
    CACHE[CALL[0]] = b"\x01" * (4 * MIB)
    while len(CACHE) > CAPACITY:
        CACHE.popitem(last=False)


class Recorder:
    def __init__(self):
        self.history = []

    def record(self):
        # One call's outputs, kept: 3072 records of 2 KiB (6 MiB).
        self.history.extend(b"%06d" % i + b"\x01" * 2042 for i in range(3072))


RECORDER = Recorder()


@pytest.mark.flat_memory(repeats=6, python_objects=True)
def test_recorder_keeps_its_history():
    RECORDER.record()


class Tap:
    def __init__(self):
        self.outputs = []


TAP = Tap()


@pytest.mark.flat_memory(repeats=6, python_objects=True)
def test_outputs_kept_with_their_graphs():
    # A second census test in the session (each watch starts its censuses afresh), with
    # torch: each call keeps a layer's output and, through its graph, the input (8 MiB).
    import torch

    torch.manual_seed(0)
    layer = TAP.__dict__.setdefault("layer", torch.nn.Linear(256, 256))
    for _ in range(4):
        TAP.outputs.append(layer(torch.randn(1024, 256)))
