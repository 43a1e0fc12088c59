"""Everyday program shapes that keep memory where a census must look (issue 25), written as
a user would: torch and numpy only, no markers. What each keeps is known.

Modes (--mode):
  numpy-cache   the training dataset caches every item it builds in a dict of numpy arrays,
                without bound (`self.cache[i] = np.ndarray`): gc does not track that dict
  numpy-list    validation keeps each batch's probabilities as `tensor.cpu().numpy()` in a list
                on `self` (the incident's shape): the arrays' buffers are the tensors' storages
  concat        validation probabilities are appended to one ndarray attribute with
                np.concatenate, never reset (`self.val_probs`)
  hook-each     a wrapper registers a new forward hook at every validation and never
                removes it; the hooks fill one list (`self.feats`)
  loader-anew   the DataLoaders are made anew each epoch (`for x, y in DataLoader(ds)`);
                validation runs with gradients on and keeps its logits on `self`
  log-epochs    no DataLoader: batches are sliced by hand, epochs are `Epoch N` log lines;
                validation keeps its logits with their graphs
  hook-closure  a helper installs a forward hook whose closure keeps the layer's outputs
                (validation with gradients on): only the hook's closure holds the list
  few-graphs    validation runs with gradients on and keeps its logits in a module-level
                dict's list (`HISTORY["val_outputs"]`): a few items an epoch, each holding
                its forward's graph (a short list, megabytes of graph)
  loss-sum      validation sums its loss with `+` on an attribute and never calls .item()
                (`STATS.total_val_loss`): one tensor whose graph grows by a few dozen nodes
                an epoch
  clean         nothing kept (loaders made anew each epoch)
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F


class Images(torch.utils.data.Dataset):
    def __init__(self, n, cache_kib=0):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 32, 32, generator=g)
        self.y = torch.randint(0, 64, (n,), generator=g)
        self.cache_kib = cache_kib
        self.cache = {}
        self.built = 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if self.cache_kib:
            # A fresh augmentation kept for every item served: the cache never stops growing.
            self.cache[self.built] = np.full(self.cache_kib * 256, float(i), dtype=np.float32)
            self.built += 1
        return self.x[i], self.y[i]


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16 * 8 * 8, 64)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def install_tap(module):
    """Keep what `module` outputs (feature extraction); returns nothing: only the hook's
    closure holds the list."""
    store = []

    def on_forward(mod, inputs, output):
        if not mod.training:  # the validation features
            store.append(output)

    module.register_forward_hook(on_forward)


HISTORY = {}


class Stats:
    def __init__(self):
        self.total_val_loss = 0.0


STATS = Stats()


class Trainer:
    def __init__(self, args):
        self.args = args
        self.model = Net()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.val_probs = np.zeros((0, 64), dtype=np.float32)
        self.val_logits = []
        self.val_feats = []
        self.feats = []
        if args.mode == "hook-closure":
            install_tap(self.model.conv2)

    def step(self, x, y):
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def validate_batch(self, x, y):
        mode = self.args.mode
        logits = self.model(x)
        if mode in ("loader-anew", "log-epochs"):
            self.val_logits.append(logits)
        elif mode == "numpy-list":
            # Repeated to the size a real validation set gives; the array shares the
            # tensor's storage (its base is the tensor).
            probs = torch.softmax(logits, 1).detach().repeat(self.args.repeat, 1)
            self.val_feats.append(probs.cpu().numpy())
        elif mode == "few-graphs":
            HISTORY.setdefault("val_outputs", []).append(logits)
        elif mode == "loss-sum":
            STATS.total_val_loss = STATS.total_val_loss + F.cross_entropy(logits, y)
        elif mode == "concat":
            probs = torch.softmax(logits, 1).detach().numpy()
            # Probabilities, repeated to the size a real validation set gives.
            self.val_probs = np.concatenate([self.val_probs, np.repeat(probs, self.args.repeat, axis=0)])

    def validate(self, batches):
        mode = self.args.mode
        if mode == "hook-each":
            # A wrapper that attaches its feature collector at every validation.
            self.model.fc.register_forward_hook(lambda m, i, o: self.feats.append(o.detach().clone()))
        grad = mode in ("loader-anew", "log-epochs", "hook-closure", "few-graphs", "loss-sum")
        self.model.eval()
        with torch.set_grad_enabled(grad):
            for x, y in batches:
                self.validate_batch(x, y)
        self.model.train()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="clean", choices=["numpy-cache", "numpy-list", "concat", "hook-each", "loader-anew", "log-epochs", "hook-closure", "few-graphs", "loss-sum", "clean"])
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--train-batches", type=int, default=12)
    p.add_argument("--val-batches", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--cache-kib", type=int, default=48)
    p.add_argument("--repeat", type=int, default=480)
    p.add_argument("--sleep", type=float, default=0.0)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cache = args.cache_kib if args.mode == "numpy-cache" else 0
    train_ds = Images(args.train_batches * args.batch, cache)
    val_ds = Images(args.val_batches * args.batch)
    t = Trainer(args)
    fixed = None
    if args.mode in ("numpy-cache", "numpy-list", "concat", "hook-each", "hook-closure", "few-graphs", "loss-sum"):
        fixed = (torch.utils.data.DataLoader(train_ds, batch_size=args.batch, shuffle=True),
                 torch.utils.data.DataLoader(val_ds, batch_size=args.batch))
    for epoch in range(args.epochs):
        if args.mode == "log-epochs":
            print("Epoch %d" % epoch, flush=True)
            perm = torch.randperm(len(train_ds))
            for b in range(args.train_batches):
                idx = perm[b * args.batch:(b + 1) * args.batch]
                t.step(train_ds.x[idx], train_ds.y[idx])
            t.validate((val_ds.x[b * args.batch:(b + 1) * args.batch], val_ds.y[b * args.batch:(b + 1) * args.batch]) for b in range(args.val_batches))
        elif fixed is not None:
            for x, y in fixed[0]:
                t.step(x, y)
            t.validate(fixed[1])
        else:
            # Loaders made anew every epoch, as many trainers write them.
            for x, y in torch.utils.data.DataLoader(train_ds, batch_size=args.batch, shuffle=True):
                t.step(x, y)
            t.validate(torch.utils.data.DataLoader(val_ds, batch_size=args.batch))
        if args.sleep:
            time.sleep(args.sleep)
    print("done", flush=True)


if __name__ == "__main__":
    main()
