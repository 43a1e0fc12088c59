#!/usr/bin/env bash
# GPU end-to-end check, run on a machine with an NVIDIA GPU and PyTorch 2.11 installed,
# from a diagnose binary built elsewhere (no Rust toolchain needed there), with the
# diagnose-run binary beside it (`diagnose run` execs it):
#
#   scripts/gpu-check.sh [DIAGNOSE_BINARY] [OUT_DIR]
#
# 1. a clean CUDA run with call-site attribution: GPU columns filled, verdict flat,
#    no growing site;
# 2. --leak gpu-tensors: GPU allocated classed growing, exit code 3 with --fail-on-leak.
set -uo pipefail
BIN="${1:-target/release/diagnose}"
OUT="${2:-reports/gpu-check}"
PY="${PYTHON:-python3}"
TORCH_LIB="$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv || true
fail=0

"$BIN" run --device cuda --epochs 3 --attribute --out "$OUT/clean" --force --no-progress
echo "clean run exit code: $?"
"$BIN" run --device cuda --epochs 5 --leak gpu-tensors --fail-on-leak --out "$OUT/gpu-leak" --force --no-progress
leak_rc=$?
echo "gpu-tensors run exit code: $leak_rc (3 expected)"
[ "$leak_rc" = 3 ] || fail=1

"$PY" - "$OUT" <<'PYEOF' || fail=1
import csv, json, sys
out = sys.argv[1]
ok = True
def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= bool(cond)
for run in ("clean", "gpu-leak"):
    s = json.load(open(f"{out}/{run}/summary.json"))
    rows = list(csv.DictReader(l for l in open(f"{out}/{run}/timeline.csv") if not l.startswith("#")))
    print(f"== {run}: verdict {s['verdict']}, gpu {s['gpu']}")
    for v in s["series"]:
        if v["column"].startswith("gpu_") or v["column"] in ("rss_bytes", "je_allocated_bytes"):
            print(f"   {v['column']:<24} {v['class']:<9} slope {v['slope_bytes_per_epoch'] or 0:>14.0f} B/epoch  last {v['last_bytes']}")
    for line in s["ledger"]:
        print("   -", line)
    check(s["gpu"].startswith("active:"), f"{run}: NVML active")
    for col in ("gpu_device_used_bytes", "gpu_process_used_bytes", "gpu_allocated_bytes", "gpu_reserved_bytes"):
        check(all(r[col] != "" for r in rows if r["phase"] == "epoch_end"), f"{run}: {col} filled at epoch ends")
    classes = {v["column"]: v["class"] for v in s["series"]}
    if run == "clean":
        check(s["verdict"] == "flat", "clean: verdict flat")
        check(len(s["sites"]) > 0 and not any(v["class"] == "growing" for v in s["sites"]), "clean: sites attributed, none growing")
    else:
        check(classes.get("gpu_allocated_bytes") == "growing", "gpu-leak: GPU allocated growing")
        check(s["verdict"] == "growing", "gpu-leak: verdict growing")
sys.exit(0 if ok else 1)
PYEOF
[ $? = 0 ] || fail=1
echo "gpu-check: $([ $fail = 0 ] && echo PASSED || echo FAILED)"
exit $fail
