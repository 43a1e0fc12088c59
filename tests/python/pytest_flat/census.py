"""Copied as test_census.py: a leak the census names (python_objects=True), and a cache
that fills to its capacity and stays there."""
import collections

import pytest

MIB = 1 << 20


class Recorder:
    def __init__(self):
        self.history = []

    def record(self):
        self.history.append([b"\x01" * (64 << 10) for _ in range(96)])  # 6 MiB in 96 items


RECORDER = Recorder()


@pytest.mark.flat_memory(repeats=6, python_objects=True)
def test_recorder_keeps_its_history():
    RECORDER.record()


CACHE = collections.OrderedDict()
CALL = [0]


@pytest.mark.flat_memory(repeats=10)
def test_cache_fills_then_holds():
    # An LRU cache of 3 entries of 6 MiB: full after the third call, then each new
    # entry evicts the oldest.
    CALL[0] += 1
    CACHE[CALL[0]] = b"\x01" * (6 * MIB)
    while len(CACHE) > 3:
        CACHE.popitem(last=False)
