"""Two ranks started by torch.multiprocessing.spawn (gloo on CPU), as many single-node
trainers start them: the rank is an argument to the function and to init_process_group,
never in the environment. Each rank trains over its DataLoader (reused across epochs) and
all-reduces its gradients once per epoch; rank --leak-rank keeps --leak-mib MiB more per
epoch on its trainer (`Trainer.kept`). No markers, no log lines.
"""
import argparse
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


class Trainer:
    def __init__(self):
        self.model = torch.nn.Linear(64, 8)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.kept = []


def run(rank, world, port, args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=world)
    g = torch.Generator().manual_seed(rank)
    ds = torch.utils.data.TensorDataset(torch.randn(256, 64, generator=g), torch.randint(0, 8, (256,), generator=g))
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True)
    t = Trainer()
    for epoch in range(args.epochs):
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(t.model(x), y)
            loss.backward()
        for prm in t.model.parameters():
            dist.all_reduce(prm.grad)
        t.opt.step()
        t.opt.zero_grad()
        if rank == args.leak_rank:
            t.kept.append(torch.ones(args.leak_mib << 18))  # float32: leak_mib MiB
        time.sleep(args.sleep)
    dist.barrier()
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--leak-rank", type=int, default=1)
    p.add_argument("--leak-mib", type=int, default=8)
    p.add_argument("--sleep", type=float, default=0.5)
    args = p.parse_args()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    mp.spawn(run, args=(2, port, args), nprocs=2)
    print("done", flush=True)


if __name__ == "__main__":
    main()
