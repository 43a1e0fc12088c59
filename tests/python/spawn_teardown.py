"""Ranks started by torch.multiprocessing.spawn (gloo), for tests/short_runs.rs.

Rank --grow keeps --leak-mib MiB per epoch; rank --drop frees --drop-mib MiB it had
held all along as its last epoch's work ends (a rank shutting down, read lower at the
last epoch end), then all leave their process group. Rank 0 prints "Epoch N" after a barrier each epoch.
"""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

MIB = 1 << 20


def run(rank, args):
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(args.port))
    dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    torch.set_num_threads(1)
    held = torch.ones(int(args.drop_mib * MIB) // 4) if rank == args.drop else None
    kept = []
    model = torch.nn.Linear(256, 256)
    for epoch in range(args.epochs):
        end = time.time() + args.epoch_s
        while time.time() < end:
            model(torch.randn(64, 256)).sum().backward()
            time.sleep(0.01)
        if rank == args.grow:
            kept.append(torch.ones(int(args.leak_mib * MIB) // 4))
        if rank == args.drop and epoch == args.epochs - 1:
            held = None  # its teardown begins before the last epoch end is read
        dist.barrier()
        if rank == 0:
            print(f"Epoch {epoch}", flush=True)
        time.sleep(0.3)
    dist.barrier()
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ranks", type=int, default=3)
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--epoch-s", type=float, default=1.2)
    p.add_argument("--grow", type=int, default=1)
    p.add_argument("--leak-mib", type=float, default=8.0)
    p.add_argument("--drop", type=int, default=2)
    p.add_argument("--drop-mib", type=float, default=11.0)
    p.add_argument("--port", type=int, default=29517)
    args = p.parse_args()
    mp.spawn(run, args=(args,), nprocs=args.ranks, join=True)


if __name__ == "__main__":
    main()
