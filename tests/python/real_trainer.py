"""A small PyTorch CNN trainer that marks nothing and prints no epoch lines: under
`diagnose watch` its epochs are found from its DataLoader passes. What it keeps is known.

Modes (--mode):
  clean        nothing kept
  graph        validation runs without torch.no_grad() and keeps each batch's logits on
               the trainer (self.val_logits): each keeps its autograd graph's saved
               activations alive, thousands of times the logits' own size
  detached     the same logits, kept .detach()ed: only their own bytes
  loss-accum   validation adds each batch's loss, with its graph, to one tensor kept
               across epochs (self.total_val_loss += loss)
  native       every training step, a C function (tests/native/keep.c, built by the
               test, --lib) keeps --native-kib KiB of malloc'd memory: no Python object
  fragment     every epoch, glibc's malloc is left holding ~10 MiB free it cannot give
               back (tests/native/keep.c's fragment(), --lib): allocator retention, not a
               leak of objects
  worker-cache the training dataset keeps each item it loads (persistent workers)

--item-cache-kib K (any mode): the trainer keeps K KiB for each training item it has
drawn, and draws items with replacement: a cache that fills 63 %, 23 %, 9 %, 3 %, ... of
its items in successive epochs. Beside a leak, the slope settles after warm-up.
"""
import argparse
import ctypes

import torch
import torch.nn.functional as F


class Images(torch.utils.data.Dataset):
    def __init__(self, n, cache=False):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 32, 32, generator=g)
        self.y = torch.randint(0, 64, (n,), generator=g)
        self.cache = cache
        self.seen = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if self.cache:
            self.seen.append(self.x[i].clone())  # 12 KiB an item, kept in the worker
        return self.x[i], self.y[i]


class Drawn(torch.utils.data.RandomSampler):
    """Draws items with replacement (in the main process, workers or not) and keeps
    --item-cache-kib KiB for each one it has drawn, once."""

    def __init__(self, data, kib):
        super().__init__(data, replacement=True)
        self.kib = kib
        self.cache = {}

    def __iter__(self):
        for i in super().__iter__():
            if i not in self.cache:
                self.cache[i] = torch.ones(self.kib * 256)  # every page touched
            yield i


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16 * 8 * 8, 64)  # 64 classes: 8 KiB of logits a batch

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


class Trainer:
    def __init__(self, args):
        self.args = args
        self.model = Net()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.val_logits = []
        self.total_val_loss = torch.zeros(())
        self.native = None
        if args.mode in ("native", "fragment"):
            self.native = ctypes.CDLL(args.lib)
            self.native.keep_bytes.argtypes = [ctypes.c_size_t]
            self.native.keep_bytes.restype = ctypes.c_size_t
            self.native.fragment.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
            self.native.fragment.restype = ctypes.c_size_t

    def train_epoch(self, loader):
        self.model.train()
        for x, y in loader:
            loss = F.cross_entropy(self.model(x), y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if self.args.mode == "native":
                self.native.keep_bytes(self.args.native_kib * 1024)

    def validate(self, loader):
        self.model.eval()
        graph = self.args.mode in ("graph", "loss-accum")
        with torch.set_grad_enabled(graph):
            for x, y in loader:
                logits = self.model(x)
                if self.args.mode == "graph":
                    self.val_logits.append(logits)
                elif self.args.mode == "detached":
                    self.val_logits.append(logits.detach())
                elif self.args.mode == "loss-accum":
                    self.total_val_loss = self.total_val_loss + F.cross_entropy(logits, y)

    def fragment(self, epoch):
        """Leave glibc's malloc holding ~10 MiB free it can neither reuse nor return:
        tests/native/keep.c's fragment() shrinks blocks in place, each epoch's blocks
        larger than every hole before."""
        self.native.fragment(10 << 20, (64 + 4 * epoch) << 10)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="clean", choices=["clean", "graph", "detached", "loss-accum", "native", "fragment", "worker-cache"])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--train-batches", type=int, default=16)
    p.add_argument("--val-batches", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lib", default="")
    p.add_argument("--native-kib", type=int, default=256)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--item-cache-kib", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cache = args.mode == "worker-cache"
    workers = 2 if cache else args.workers
    items = Images(args.train_batches * args.batch, cache)
    drawn = Drawn(items, args.item_cache_kib) if args.item_cache_kib else None
    train = torch.utils.data.DataLoader(items, batch_size=args.batch, shuffle=drawn is None, sampler=drawn,
                                        num_workers=workers, persistent_workers=workers > 0)
    val = torch.utils.data.DataLoader(Images(args.val_batches * args.batch), batch_size=args.batch)
    t = Trainer(args)
    for epoch in range(args.epochs):
        t.train_epoch(train)
        t.validate(val)
        if args.mode == "fragment":
            t.fragment(epoch)
    print("done", flush=True)


if __name__ == "__main__":
    main()
