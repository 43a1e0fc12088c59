"""A trainer on a fake CUDA device (tests/python/fake_cuda first on PYTHONPATH) for
`diagnose watch --gpu-sites` tests without a GPU: at each epoch end the fake allocator
holds what the mode says, in PyTorch 2.11's memory_stats and _snapshot shapes.

Modes: leak (validate keeps 40 MiB more per epoch, allocated grows), caching (reserved
grows 64 MiB/epoch, allocated flat), fragmentation (inactive split bytes climb), near-oom
(nothing grows; the allocator retries cudaMalloc 3 times per epoch), clean.
Marks epochs with diagnose_markers (explicit markers).
"""
import argparse
import os
import time

import diagnose_markers as dm
import torch

MIB = 1 << 20
LIB = "/opt/venv/lib/python3.11/site-packages/torch/nn/modules/linear.py"
HERE = os.path.abspath(__file__)


def frames(line, function, cpp=None):
    """A block's frames, innermost first: an optional C++ op, a library frame, ours."""
    f = [{"filename": "/pytorch/aten/src/ATen/Operators_2.cpp", "line": 0, "name": "at::_ops::%s::call(at::Tensor const&)" % cpp}] if cpp else []
    return f + [{"filename": LIB, "line": 125, "name": "forward"}, {"filename": HERE, "line": line, "name": function},
                {"filename": HERE, "line": 99, "name": "main"}]


def block(size, state, fr):
    return {"size": size, "requested_size": size, "address": 0, "state": state, "frames": fr}


def epoch_state(mode, e):
    weights = block(400 * MIB, "active_allocated", frames(30, "build"))
    kept = 40 * MIB * (e + 1) if mode == "leak" else 40 * MIB
    blocks = [weights] + [block(40 * MIB, "active_allocated", frames(44, "validate", "addmm")) for _ in range(kept // (40 * MIB))]
    blocks += [block(8 * MIB, "active_pending_free", frames(50, "step")), block(16 * MIB, "inactive", [])]
    allocated = 400 * MIB + kept
    reserved = allocated + 64 * MIB + (64 * MIB * e if mode == "caching" else 0)
    inactive = 16 * MIB + (48 * MIB * e if mode == "fragmentation" else 0)
    reserved += inactive - 16 * MIB
    retries = 3 * e if mode == "near-oom" else 0
    stats = {"allocated_bytes.all.current": allocated, "reserved_bytes.all.current": reserved,
             "active_bytes.all.current": allocated + 8 * MIB, "inactive_split_bytes.all.current": inactive,
             "segment.all.current": 10 + e * (mode == "caching"), "num_alloc_retries": retries, "num_ooms": 0,
             "allocated_bytes.all.peak": allocated + 300 * MIB, "reserved_bytes.all.peak": reserved,
             "allocated.all.current": len(blocks)}
    seg = {"device": 0, "address": 0, "total_size": reserved, "allocated_size": allocated, "active_size": allocated + 8 * MIB,
           "stream": 0, "segment_type": "large", "blocks": blocks}
    other_device = {"device": 1, "address": 0, "total_size": 64 * MIB, "allocated_size": 64 * MIB, "active_size": 64 * MIB,
                    "segment_type": "large", "blocks": [block(64 * MIB, "active_allocated", frames(77, "elsewhere"))]}
    return stats, {"segments": [seg, other_device], "device_traces": [[], []]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="clean")
    ap.add_argument("--epochs", type=int, default=8)
    a = ap.parse_args()
    torch.cuda._lazy_init()  # the first CUDA tensor
    print("history", torch.cuda.memory.history, flush=True)
    for e in range(a.epochs):
        stats, snap = epoch_state(a.mode, e)
        torch.cuda.fake_state.update(stats=stats, snapshot=snap)
        time.sleep(0.2)
        dm.epoch_end(e)
        time.sleep(0.5)  # diagnose samples, then asks for the epoch's figures
        print("Epoch %d done" % e, flush=True)


if __name__ == "__main__":
    main()
