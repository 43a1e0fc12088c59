"""A stand-in for torch with a CUDA device, for tests on machines without one: only what
diagnose_gpu.py reads (torch.cuda's lazy init, memory_stats, _snapshot and
_record_memory_history), returning dicts of PyTorch 2.11's documented shapes that the
test trainer sets (torch.cuda.fake_state)."""
from . import cuda  # noqa: F401  (import torch imports torch.cuda, as the real one does)
