"""Median wall time per variant and its ratio to the first, from lines `VARIANT SECONDS`.

    python3 benches/medians.py TIMES_FILE VARIANT...   (the first variant is the baseline)
"""
import statistics
import sys

times = {}
for line in open(sys.argv[1]):
    v, t = line.split()
    times.setdefault(v, []).append(float(t))
order = sys.argv[2:]
base = statistics.median(times[order[0]])
print(f"\n{'variant':<10} {'median s':>9} {'ratio':>7}   runs")
for v in order:
    m = statistics.median(times[v])
    print(f"{v:<10} {m:>9.2f} {m / base:>7.3f}   {', '.join(f'{t:.2f}' for t in times[v])}")
