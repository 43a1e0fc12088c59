"""A small PyTorch trainer with DataLoader worker processes, for `diagnose watch` tests.

Modes (--mode):
  clean        nothing is kept across epochs
  main-leak    the trainer keeps one tensor of --leak-mib per epoch on self (the seed's
               validation lists, in miniature)
  worker-leak  each persistent worker keeps a per-worker cache that grows by
               --leak-mib / workers per epoch
  cow          the dataset holds --cow-items Python objects; workers read a random quarter
               of them per epoch, and reading writes their reference counts: copy-on-write
               turns shared pages private, fewer new ones each epoch (pytorch/pytorch#13246)

Prints "Epoch N ..." after each epoch (what diagnose's default epoch pattern matches),
with the bytes it knowingly kept; --markers also sends epoch_end through
python/diagnose_markers.py.
"""
import argparse
import os
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

MIB = 1 << 20
_WORKER_CACHE = []  # grows inside each persistent worker in worker-leak mode


class Items(Dataset):
    def __init__(self, args):
        self.n = args.items
        self.mode = args.mode
        # Bytes each item adds to its worker's cache, so that all workers together keep
        # leak_mib per epoch.
        self.chunk = int(args.leak_mib * MIB / self.n) if self.mode == "worker-leak" else 0
        self.objects = [bytes([i % 251]) * 1000 for i in range(args.cow_items)] if self.mode == "cow" else []

    def __len__(self):
        return max(self.n, len(self.objects))

    def __getitem__(self, i):
        if self.chunk:
            _WORKER_CACHE.append(bytearray(b"x" * self.chunk))
        if self.objects:
            obj = self.objects[i]  # a reference count written: the page is copied
            return torch.full((16,), float(obj[0])), i % 4
        return torch.randn(16), i % 4


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["clean", "main-leak", "worker-leak", "cow"], default="clean")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--items", type=int, default=2048)
    p.add_argument("--cow-items", type=int, default=100_000)
    p.add_argument("--leak-mib", type=float, default=16.0)
    p.add_argument("--sleep", type=float, default=0.0, help="seconds to pause after each epoch")
    p.add_argument("--markers", action="store_true")
    p.add_argument("--persistent", action="store_true", help="persistent workers in every mode")
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    markers = None
    if args.markers:
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
        import diagnose_markers as markers

    ds = Items(args)
    persistent = (args.persistent or args.mode in ("worker-leak", "cow")) and args.workers > 0
    sampler = RandomSampler(ds, num_samples=len(ds) // 4) if args.mode == "cow" else None
    loader = DataLoader(ds, batch_size=64, num_workers=args.workers, persistent_workers=persistent, sampler=sampler)
    model = torch.nn.Linear(16, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kept = []
    for epoch in range(args.epochs):
        start = time.time()
        total = 0.0
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        if args.mode == "main-leak":
            t = torch.ones(int(args.leak_mib * MIB) // 4)  # float32, touched
            kept.append(t)
        kept_bytes = sum(t.numel() * t.element_size() for t in kept)
        print(f"Epoch {epoch} loss {total:.3f} kept_bytes={kept_bytes} {time.time() - start:.2f}s")
        if markers:
            markers.epoch_end(epoch)
        # Time for the watcher's sample while the workers of this epoch still live.
        if args.sleep:
            time.sleep(args.sleep)
    print("done")


if __name__ == "__main__":
    main()
