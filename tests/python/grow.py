"""Keeps --mib MiB more every step and prints "Epoch N" after each: a leak of a known
rate, plain Python (no torch), for diagnose's process-control tests."""
import argparse
import time

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=20)
p.add_argument("--mib", type=int, default=8)
p.add_argument("--sleep", type=float, default=0.2)
args = p.parse_args()
kept = []
for i in range(args.steps):
    kept.append(bytearray(args.mib << 20))  # zero-filled: every page touched
    print(f"Epoch {i}", flush=True)
    time.sleep(args.sleep)
print("done", flush=True)
