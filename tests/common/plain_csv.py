"""Open every CSV in a folder (not its subfolders) with Python's own csv module, knowing nothing about diagnose:
the first line must be a header (no comment line), every row as long as the header, and
every cell of a numeric column (t_s, *_bytes, *_s, slope*, bytes_epoch_*, ...) a number
or empty. Prints one line per file; exits 1 naming the first problem."""
import csv
import os
import re
import sys

NUMERIC = re.compile(r"^(t_s|epoch|episode|site|pid|ppid|rank|boundaries|items_per_epoch|.*_bytes|.*_s|slope.*|bytes_epoch_\d+|.*_blocks|.*_count|.*_total)$")

folder = sys.argv[1]
files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".csv"))
if not files:
    sys.exit(f"no CSV in {folder}")
for path in files:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0] if rows else []
    if not header or header[0].startswith("#"):
        sys.exit(f"{path}: the first line is not a header: {header[:3]}")
    numeric = [i for i, name in enumerate(header) if NUMERIC.match(name)]
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            sys.exit(f"{path}:{n}: {len(row)} cells, the header has {len(header)}")
        for i in numeric:
            if row[i] != "":
                try:
                    float(row[i])
                except ValueError:
                    sys.exit(f"{path}:{n}: column {header[i]} holds {row[i]!r}, not a number")
    print(f"{os.path.relpath(path, folder)}: {len(header)} columns, {len(rows) - 1} rows, {len(numeric)} numeric")
