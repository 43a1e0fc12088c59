"""A training-like loop watched from inside with diagnose_memory.watching():
`python watching_loop.py OUT leak|clean`. Prints one JSON line of what it saw."""
import json
import sys

import diagnose_memory

out, mode = sys.argv[1], sys.argv[2]
MIB = 1 << 20
kept = []
with diagnose_memory.watching(out=out, interval="100ms") as w:
    for epoch in range(6):
        batch = b"\x01" * (8 * MIB)
        w.phase("train", epoch)
        w.validation_start(epoch)
        if mode == "leak":
            kept.append(batch)
        w.validation_end(epoch)
        w.epoch_end(epoch)
    running = w.running
html = w._repr_html_()
uss = w.series("main_uss_bytes") or {}
print(json.dumps({"verdict": w.verdict, "epochs": w.summary["epochs"], "running_inside": running, "running_after": w.running,
                  "uss_slope": uss.get("slope_bytes_per_epoch"), "uss_interval": uss.get("slope_interval"),
                  "html_has_plot": "data:image/png;base64," in html, "html_has_ledger": "<li>" in html,
                  "kept_bytes": sum(len(b) for b in kept)}))
