"""A short PyTorch loop for tests/short_runs.rs and benches/error_rates.sh: 4 epochs of a small model over a
DataLoader with persistent workers, each epoch a training pass and a validation pass.
With --leak-mib the validation keeps that many MiB of outputs per epoch in a list that
outlives it (the seed's validation lists, in miniature); without, nothing is kept.
"""
import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset

MIB = 1 << 20


class Items(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.randn(64), i % 8


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--step-sleep", type=float, default=0.05, help="seconds per training step beyond compute")
    p.add_argument("--leak-mib", type=float, default=0.0)
    args = p.parse_args()
    torch.set_num_threads(1)
    train = DataLoader(Items(args.batches * 32), batch_size=32, num_workers=args.workers, persistent_workers=args.workers > 0)
    val = DataLoader(Items(8 * 32), batch_size=32)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    kept = []
    for epoch in range(args.epochs):
        start = time.time()
        for x, y in train:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            time.sleep(args.step_sleep)
        with torch.no_grad():
            outs = [model(x) for x, _ in val]
        if args.leak_mib:
            # Outputs kept across epochs, padded to the leak's size: float32, touched.
            kept.append([o.clone() for o in outs] + [torch.ones(int(args.leak_mib * MIB) // 4)])
        print(f"Epoch {epoch} {time.time() - start:.1f}s", flush=True)


if __name__ == "__main__":
    main()
