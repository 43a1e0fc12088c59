"""Copied as test_marked.py by tests/pytest_plugin.rs: one leaking and one clean test
under @pytest.mark.flat_memory, and one test without the marker."""
import os

import pytest

MIB = 1 << 20
# Bytes written (so resident), not just reserved: every byte of b"\x01" * n is set.
LEAK = int(os.environ.get("FLAT_TEST_LEAK_MIB", "8")) * MIB
REPEATS = int(os.environ.get("FLAT_TEST_REPEATS", "6"))

KEPT = []


def _note_pid(test):
    """With FLAT_TEST_PIDS=DIR: write this process's pid to DIR/TEST (which process ran it)."""
    folder = os.environ.get("FLAT_TEST_PIDS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, test), "w") as f:
            f.write(str(os.getpid()))


@pytest.mark.flat_memory(repeats=REPEATS)
def test_keeps_a_buffer_per_call():
    _note_pid("test_keeps_a_buffer_per_call")
    KEPT.append(b"\x01" * LEAK)


@pytest.mark.flat_memory(repeats=REPEATS)
def test_frees_what_it_allocates():
    _note_pid("test_frees_what_it_allocates")
    scratch = b"\x01" * LEAK
    assert len(scratch) == LEAK


CALLS = []


def test_unmarked_runs_once():
    CALLS.append(1)
    assert len(CALLS) == 1
