"""Keeps --mib MiB more every step and prints "Epoch N" after each: a leak of a known
rate, plain Python (no torch), for diagnose's process-control tests. With --peak-mib,
each step first holds that many MiB of temporaries for --hold seconds (validation's
tensors on top of what is kept): the step's high point stands well above its end."""
import argparse
import time

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=20)
p.add_argument("--mib", type=int, default=8)
p.add_argument("--sleep", type=float, default=0.2)
p.add_argument("--peak-mib", type=int, default=0)
p.add_argument("--hold", type=float, default=0.3)
p.add_argument("--lag", type=float, default=0.0, help="seconds to wait before the first step")
args = p.parse_args()
time.sleep(args.lag)
kept = []
for i in range(args.steps):
    if args.peak_mib:
        temporaries = bytearray(args.peak_mib << 20)
        time.sleep(args.hold)
        del temporaries
    kept.append(bytearray(args.mib << 20))  # zero-filled: every page touched
    print(f"Epoch {i}", flush=True)
    time.sleep(args.sleep)
print("done", flush=True)
