"""PyTorch Lightning on CPU, for `diagnose watch` tests: a small convolutional autoencoder
fit with validation every epoch. It marks nothing and prints no epoch lines of its own
(Lightning's progress bar, when stdout is not a terminal, draws one line at the end).

Modes (--mode):
  clean        nothing kept; 2 DataLoader workers made anew each epoch (the default's
               persistent_workers=False), as most Lightning scripts have them
  train-graph  training_step keeps every step's reconstruction, with its autograd graph,
               on the module (self.kept): 32 x 3 x 32 x 32 floats (384 KiB) a step
  val-outputs  validation_step keeps every batch's reconstruction (self.val_outputs),
               never cleared
  worker-cache the training dataset keeps each item it loads (Images.seen) in 2
               persistent DataLoader workers
"""
import argparse

import pytorch_lightning as pl
import torch
import torch.nn.functional as F


class Images(torch.utils.data.Dataset):
    def __init__(self, n, cache=False):
        self.x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(n))
        self.cache = cache
        self.seen = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if self.cache:
            self.seen.append(self.x[i].clone())  # 12 KiB an item, kept in the worker
        return self.x[i]


class AutoEncoder(pl.LightningModule):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.enc = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU())
        self.dec = torch.nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)
        self.kept = []
        self.val_outputs = []

    def forward(self, x):
        return self.dec(self.enc(x))

    def training_step(self, x, i):
        out = self(x)
        if self.mode == "train-graph":
            self.kept.append(out)
        return F.mse_loss(out, x)

    def validation_step(self, x, i):
        out = self(x)
        if self.mode == "val-outputs":
            self.val_outputs.append(out)
        self.log("val_loss", F.mse_loss(out, x))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="clean", choices=["clean", "train-graph", "val-outputs", "worker-cache"])
    p.add_argument("--epochs", type=int, default=7)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    workers = 2 if args.mode in ("worker-cache", "clean") else 0
    train = torch.utils.data.DataLoader(Images(32 * 32, args.mode == "worker-cache"), batch_size=32, shuffle=True,
                                        num_workers=workers, persistent_workers=args.mode == "worker-cache")
    val = torch.utils.data.DataLoader(Images(16 * 32), batch_size=32)
    trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", logger=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(AutoEncoder(args.mode), train, val)
    print("done", flush=True)


if __name__ == "__main__":
    main()
