"""A small CUDA trainer for docs/gpu-check/run.sh (needs a GPU).

Modes (--mode):
  kept-graph  validation keeps its outputs with their autograd graph on the trainer
              (self.val_outputs.append(out), no torch.no_grad()): CUDA memory grows at
              the line marked KEPT below, and the census names the list
  clean       the same, validation under torch.no_grad() keeping nothing
  caching     clean, plus one temporary per epoch larger than the last (freed at once):
              allocated stays flat, the caching allocator reserves a new segment each epoch
Epochs are found by diagnose's helper from the DataLoader passes.
"""
import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset


class Trainer:
    def __init__(self, mode, dev):
        self.mode, self.dev = mode, dev
        self.model = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 1024)).to(dev)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self.val_outputs = []
        x = torch.randn(4096, 1024)
        self.train_loader = DataLoader(TensorDataset(x, x), batch_size=256, shuffle=True)
        self.val_loader = DataLoader(TensorDataset(x[:512], x[:512]), batch_size=256)

    def train_epoch(self):
        for xb, yb in self.train_loader:
            xb, yb = xb.to(self.dev), yb.to(self.dev)
            loss = torch.nn.functional.mse_loss(self.model(xb), yb)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    def validate(self, epoch):
        if self.mode == "kept-graph":
            for xb, _ in self.val_loader:
                out = self.model(xb.to(self.dev))  # KEPT: with its graph
                self.val_outputs.append(out)
        else:
            with torch.no_grad():
                for xb, _ in self.val_loader:
                    self.model(xb.to(self.dev))
        if self.mode == "caching":
            tmp = torch.empty((64 + 32 * epoch) << 20, dtype=torch.uint8, device=self.dev)
            del tmp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="clean")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--device", default="cuda")  # cpu: a dry run of the script itself
    a = ap.parse_args()
    t = Trainer(a.mode, torch.device(a.device))
    started = time.perf_counter()
    for epoch in range(a.epochs):
        t.train_epoch()
        t.validate(epoch)
        if t.dev.type == "cuda":
            torch.cuda.synchronize()
            print("Epoch %d allocated=%d reserved=%d" % (epoch, torch.cuda.memory_allocated(), torch.cuda.memory_reserved()), flush=True)
    print("train_seconds=%.3f" % (time.perf_counter() - started), flush=True)


if __name__ == "__main__":
    main()
