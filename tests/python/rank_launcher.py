"""A rank launcher that passes no RANK to its children, as some launchers do: it names
itself `pt_elastic` (as torch.distributed.run does) and starts --ranks copies of grow.py,
the last keeping --mib MiB per epoch, the others nothing. diagnose must take the
children, in the order they started, as ranks 0, 1, ..."""
import argparse
import ctypes
import os
import subprocess
import sys

p = argparse.ArgumentParser()
p.add_argument("--ranks", type=int, default=2)
p.add_argument("--mib", type=int, default=8)
p.add_argument("--steps", type=int, default=8)
args = p.parse_args()
ctypes.CDLL(None).prctl(15, b"pt_elastic", 0, 0, 0)  # PR_SET_NAME
env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK")}
grow = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grow.py")
children = []
for r in range(args.ranks):
    mib = args.mib if r == args.ranks - 1 else 0
    # Every rank prints "Epoch N", and diagnose takes the first such line as epoch N's
    # end: the ranks that keep nothing print theirs 0.1 s after the one that keeps, so
    # that the reading at that line never races the keeping rank's step.
    lag = "0" if mib else "0.1"
    children.append(subprocess.Popen([sys.executable, grow, "--steps", str(args.steps), "--mib", str(mib), "--sleep", "0.4", "--lag", lag], env=env))
sys.exit(max(c.wait() for c in children))
