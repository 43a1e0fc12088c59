"""Copied as test_fixture.py: flat_memory_check around a step, after a set-up done once."""
import pytest

MIB = 1 << 20
SETUP_RUNS = []


@pytest.fixture
def model():
    SETUP_RUNS.append(1)
    return {"weights": b"\x02" * (16 * MIB)}  # expensive set-up, once per test


def test_step_that_keeps_its_outputs(flat_memory_check, model):
    outputs = []
    flat_memory_check(lambda: outputs.append(model["weights"][: 6 * MIB] + b"\x03"), repeats=6)


def test_step_that_frees_its_outputs(flat_memory_check, model):
    result = flat_memory_check(lambda: len(model["weights"][: 6 * MIB] + b"\x03"), repeats=6)
    assert result.verdict == "flat", result.message
    assert len(SETUP_RUNS) == 2, "the set-up ran once per test, not per repeat"


def test_bad_repeats(flat_memory_check):
    flat_memory_check(lambda: None, repeats=1)
