"""A PyTorch trainer for `diagnose watch --python-objects` tests: what keeps memory, and
how much, is known.

Modes (--mode):
  self-lists   validation keeps its outputs on the trainer across epochs, as the seed's
               did (self.all_pred_bboxes, self.all_pred_scores, self.all_st_ious)
  module-list  a module-level list keeps one tensor per training step (_KEPT)
  lru          a bounded LRU cache (400 entries) that fills over the first epochs
  clean        nothing kept
  worker-cache each item a DataLoader worker loads is kept in the dataset's list
               (CachingDataset.seen, 1 KiB of tensor storage per item): with persistent
               workers (--persistent 1) it grows in the workers, not in the trainer
  many         clean, with --objects small Python objects alive (census cost)
Prints "Epoch N kept_bytes=B" after each epoch: B is what the leak holds in tensor storage.
"""
import argparse
import collections
import time

import torch

_KEPT = []


class Trainer:
    def __init__(self, mode):
        self.mode = mode
        self.model = torch.nn.Linear(32, 4)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.all_pred_bboxes = []
        self.all_pred_scores = []
        self.all_st_ious = []
        self.cache = collections.OrderedDict()

    def train_epoch(self, epoch, steps):
        for step in range(steps):
            x = torch.randn(64, 32)
            loss = self.model(x).pow(2).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if self.mode == "module-list":
                _KEPT.append(torch.ones(1024))  # 4 KiB a step
            if self.mode == "lru":
                self.cache[(epoch, step)] = torch.ones(1024)
                while len(self.cache) > 400:
                    self.cache.popitem(last=False)

    def validate(self, episodes):
        with torch.no_grad():
            for _ in range(episodes):
                boxes = torch.rand(64, 4)     # 1 KiB
                scores = torch.rand(64)       # 256 B
                iou = torch.rand(16)          # 64 B
                if self.mode == "self-lists":
                    self.all_pred_bboxes.append(boxes)
                    self.all_pred_scores.append(scores)
                    self.all_st_ious.append(iou)

    def kept_bytes(self):
        tensors = self.all_pred_bboxes + self.all_pred_scores + self.all_st_ious + _KEPT + list(self.cache.values())
        return sum(t.untyped_storage().nbytes() for t in tensors)


class CachingDataset(torch.utils.data.Dataset):
    """Keeps every item it loads: in each worker process, its own copy grows."""

    def __init__(self, n):
        self.n = n
        self.seen = []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        x = torch.full((256,), float(i))  # 1 KiB
        self.seen.append(x)
        return x


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="clean", choices=["self-lists", "module-list", "lru", "clean", "many", "worker-cache"])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--val-episodes", type=int, default=400)
    p.add_argument("--objects", type=int, default=1_000_000)
    p.add_argument("--sleep", type=float, default=0.5)
    p.add_argument("--items", type=int, default=256, help="worker-cache: items loaded per epoch")
    p.add_argument("--persistent", type=int, default=1, help="worker-cache: persistent workers")
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    # A dict holding a list is tracked by gc, as most real objects are: 2 objects each.
    alive = [{"i": i, "tags": []} for i in range(args.objects)] if args.mode == "many" else []
    t = Trainer(args.mode)
    loader = None
    if args.mode == "worker-cache":
        loader = torch.utils.data.DataLoader(CachingDataset(args.items), batch_size=16, num_workers=2, persistent_workers=bool(args.persistent))
    for epoch in range(args.epochs):
        for _ in loader or ():
            pass
        t.train_epoch(epoch, args.steps)
        t.validate(args.val_episodes)
        print(f"Epoch {epoch} kept_bytes={t.kept_bytes()} alive={len(alive)}", flush=True)
        time.sleep(args.sleep)  # the census runs now, in the helper's thread
    print("done")


if __name__ == "__main__":
    main()
