#!/usr/bin/env bash
# GPU check of `diagnose watch --gpu-sites` (issue 20, part 1), for a machine with an
# NVIDIA GPU and PyTorch 2.11 (cu130), from a diagnose binary built elsewhere (no Rust
# toolchain needed there):
#
#   docs/gpu-check/run.sh [DIAGNOSE_BINARY] [OUT_DIR]      (OUT_DIR defaults to $OUT)
#
# 1. kept-graph: validation outputs kept with their graph -> cause "leak", the line
#    (trainer.py:40 in validate) and the container (Trainer.val_outputs) named;
# 2. clean: flat, no growing line;
# 3. caching: allocated flat, reserved growing -> "caching, not a leak";
# 4. NVML per-process memory of the watched tree against torch.cuda.memory_reserved;
# 5. the history's cost: the clean trainer's training seconds with --gpu-sites over
#    without (3 pairs).
# Everything it prints goes to OUT_DIR/gpu-check.log too; each run's folder is kept.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$(realpath "${1:-target/release/diagnose}")"
OUT="${2:-${OUT:-reports/gpu-check-20}}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
TORCH_LIB="$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
fail=0
watch() {  # watch NAME FLAGS... -- trainer args
    local name="$1"; shift
    local flags=()
    while [ "$1" != "--" ]; do flags+=("$1"); shift; done; shift
    "$BIN" watch --out "$OUT/$name" --force --interval 500ms "${flags[@]}" -- "$PY" "$HERE/trainer.py" "$@" > "$OUT/$name.out" 2>&1
    echo "$name: exit $? ($(grep -o 'train_seconds=[0-9.]*' "$OUT/$name.out"))"
}
watch kept-graph --python-objects --gpu-sites -- --mode kept-graph
watch clean --gpu-sites -- --mode clean
watch caching --gpu-sites -- --mode caching
for i in 1 2 3; do
    watch "cost-off-$i" -- --mode clean --epochs 12
    watch "cost-on-$i" --gpu-sites -- --mode clean --epochs 12
done

"$PY" - "$OUT" <<'PYEOF' || fail=1
import csv, json, re, statistics, sys
out = sys.argv[1]
ok = True
def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= bool(cond)
def load(run):
    return json.load(open(f"{out}/{run}/summary.json"))
for run in ("kept-graph", "clean", "caching"):
    s = load(run)
    g = s.get("gpu_allocator") or {}
    print(f"== {run}: verdict {s['verdict']}, GPU cause {g.get('cause')}, {g.get('count')} epoch ends, longest reading {g.get('max_seconds', 0):.3f} s")
    for line in s["ledger"]:
        print("   -", line)
    growing = [x for x in g.get("sites", []) if x["class"] == "growing"]
    if run == "kept-graph":
        check(g.get("cause") == "leak", "kept-graph: cause leak")
        check(any(x["location"].endswith("trainer.py:40") and x["function"] == "validate" for x in growing), "kept-graph: trainer.py:40 in validate growing")
        check(any("Trainer.val_outputs keeps them" in l for l in s["ledger"]), "kept-graph: the container named")
    elif run == "clean":
        check(g.get("cause") == "flat" and not growing, "clean: flat, no growing line")
    else:
        check(g.get("cause") == "caching", "caching: caching, not a leak")
        check(any("caching, not a leak" in l for l in s["ledger"]), "caching: the ledger says so")
# NVML per process (the watched tree's) against torch's reserved (the helper's reading,
# gpu_allocator.csv), at the epoch ends of the clean run.
rows = [r for r in csv.DictReader(open(f"{out}/clean/timeline.csv")) if r["phase"] == "epoch_end" and r["epoch"]]
nvml = {int(r["epoch"]): int(r.get("gpu_tree_used_bytes") or r.get("gpu_process_used_bytes") or 0) for r in rows}
alloc = {int(r["epoch"]): int(r["reserved"]) for r in csv.DictReader(open(f"{out}/clean/gpu_allocator.csv")) if r["reserved"]}
pairs = [(nvml[e], alloc[e]) for e in sorted(alloc) if nvml.get(e)]
check(len(pairs) > 0, "NVML per-process (tree) and torch reserved both recorded at epoch ends")
for n, r in pairs:
    print(f"   NVML tree {n / 2**20:.0f} MiB, torch reserved {r / 2**20:.0f} MiB, difference {(n - r) / 2**20:.0f} MiB (CUDA context and libraries)")
check(all(n >= r for n, r in pairs), "NVML per-process >= torch reserved (the rest is the CUDA context)")
# The history's cost.
secs = lambda run: float(re.search(r"train_seconds=([0-9.]+)", open(f"{out}/{run}.out").read()).group(1))
ratios = [secs(f"cost-on-{i}") / secs(f"cost-off-{i}") for i in (1, 2, 3)]
print("history cost: --gpu-sites / without, training seconds, 3 pairs: " + ", ".join(f"{r:.3f}" for r in ratios) + f"; median {statistics.median(ratios):.3f}")
sys.exit(0 if ok else 1)
PYEOF
[ $? = 0 ] || fail=1
echo "gpu-check (issue 20): $([ $fail = 0 ] && echo PASSED || echo FAILED)"
exit $fail
