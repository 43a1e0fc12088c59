"""Drives the injected helper's DataLoader hook (python/inject/sitecustomize.py) with real
DataLoaders and real backward() calls, and prints the boundaries it would send, one per
line. The validation loader is three times the training loader's size and gets a sanity
pass first (as Lightning's num_sanity_val_steps does): the training loader must still be
the one whose passes run backward."""
import importlib.util
import sys

import torch
from torch.utils.data import DataLoader, TensorDataset

spec = importlib.util.spec_from_file_location("diagnose_inject", sys.argv[1])
inject = importlib.util.module_from_spec(spec)
spec.loader.exec_module(inject)  # no DIAGNOSE_* variables: it installs nothing itself
sent = []
inject._install_loader_hook(lambda line, wait_for=None: sent.append(line))

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
train = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=4)
val = DataLoader(TensorDataset(torch.randn(96, 4), torch.randn(96, 1)), batch_size=4)

for i, (x, _) in enumerate(val):  # the sanity pass
    if i == 1:
        break
for epoch in range(3):
    for x, y in train:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        for x, y in val:
            model(x)
print("\n".join(sent))
