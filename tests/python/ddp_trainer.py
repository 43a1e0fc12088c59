"""A tiny distributed (gloo, CPU) trainer for `diagnose watch -- torchrun ...` tests: every
rank all-reduces its accumulated gradients each epoch; rank --leak-rank keeps --leak-mib
MiB more per epoch. Each rank marks its epoch ends through python/diagnose_markers.py
(which adds rank=RANK), and rank 0 prints "Epoch N".
"""
import argparse
import os
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import diagnose_markers as dm  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=6)
p.add_argument("--leak-rank", type=int, default=1)
p.add_argument("--leak-mib", type=int, default=16)
p.add_argument("--sleep", type=float, default=0.6)
args = p.parse_args()
torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()
kept = []
model = torch.nn.Linear(256, 256)
x = torch.empty(32, 256)
for epoch in range(args.epochs):
    # Gradients accumulate over the epoch's steps and are all-reduced once per epoch:
    # gloo all-reduces at every step grew the main heap of a clean rank by 2-4 MiB per
    # epoch for several epochs when the CPUs were contended (measured; flat with one
    # all-reduce per epoch), which is gloo's behaviour, not what this fixture tests.
    for _ in range(20):
        x.normal_()
        model(x).pow(2).mean().backward()
    for prm in model.parameters():
        dist.all_reduce(prm.grad)
    model.zero_grad(set_to_none=False)
    if rank == args.leak_rank:
        kept.append(torch.ones((args.leak_mib << 20) // 4))
    dist.barrier()
    dm.epoch_end(epoch)
    if rank == 0:
        print(f"Epoch {epoch}", flush=True)
    time.sleep(args.sleep)
dist.barrier()
dist.destroy_process_group()
