"""The reduction of python/diagnose_gpu.py on made dicts of PyTorch 2.11's documented
shapes (torch.cuda.memory_stats(), torch.cuda.memory._snapshot()). Run by tests/watch_gpu.rs
with python/ on sys.path; prints OK when every check passes."""
import diagnose_gpu as g

MIB = 1 << 20
USER = "/home/u/proj/train.py"
LIB = "/opt/venv/lib/python3.11/site-packages/torch/nn/modules/linear.py"
STD = "/usr/lib/python3.11/threading.py"


def fr(filename, line, name):
    return {"filename": filename, "line": line, "name": name}


def blk(size, state, frames):
    return {"size": size, "requested_size": size - 1, "address": 0, "state": state, "frames": frames}


# Stats: the documented keys map to ours; other keys are ignored, missing ones left out.
s = g.stats({"allocated_bytes.all.current": 5, "reserved_bytes.all.current": 9, "active_bytes.all.current": 6,
             "inactive_split_bytes.all.current": 3, "segment.all.current": 2, "num_alloc_retries": 1, "num_ooms": 0,
             "allocated_bytes.large_pool.current": 777})
assert s == {"allocated": 5, "reserved": 9, "active": 6, "inactive_split": 3, "segments": 2, "alloc_retries": 1, "ooms": 0}, s

roots = ("/usr/lib/python3.11/",)
user = lambda f: g.is_user_file(f, roots)  # noqa: E731
assert user(USER) and not user(LIB) and not user(STD) and not user("<frozen runpy>") and not user("??")

snap = {"segments": [
    {"device": 0, "address": 0, "total_size": 200 * MIB, "allocated_size": 0, "active_size": 0, "segment_type": "large", "blocks": [
        # innermost first: C++ op, library, the user's line, its caller
        blk(40 * MIB, "active_allocated", [fr("??", 0, "at::_ops::addmm::call(at::Tensor const&)"), fr(LIB, 125, "forward"), fr(USER, 88, "validate"), fr(USER, 120, "main")]),
        blk(40 * MIB, "active_allocated", [fr("??", 0, "at::_ops::addmm::call(at::Tensor const&)"), fr(LIB, 125, "forward"), fr(USER, 88, "validate"), fr(USER, 120, "main")]),
        blk(10 * MIB, "active_allocated", [fr(LIB, 125, "forward"), fr(USER, 60, "train_step")]),  # Python frames only
        blk(8 * MIB, "active_pending_free", [fr(USER, 61, "train_step")]),  # being freed: not live
        blk(90 * MIB, "inactive", []),  # cached, free
        blk(2 * MIB, "active_allocated", []),  # allocated before recording began
        blk(1 * MIB, "active_allocated", [fr(LIB, 10, "reset_parameters"), fr(STD, 5, "run")]),  # no user frame
    ]},
    {"device": 1, "address": 0, "total_size": 64 * MIB, "blocks": [blk(64 * MIB, "active_allocated", [fr(USER, 99, "other_gpu")])]},
], "device_traces": [[{"action": "alloc", "addr": 1, "size": 5, "stream": 0, "frames": []}], []]}

rows, other = g.reduce_snapshot(snap, device=0, is_user=user)
by = {(r["site"], r["function"]): r for r in rows}
v = by[(USER + ":88", "validate")]
assert (v["bytes"], v["blocks"], v["op"]) == (80 * MIB, 2, "aten::addmm"), v
t = by[(USER + ":60", "train_step")]
assert (t["bytes"], t["op"]) == (10 * MIB, "forward (linear.py:125)"), t
assert (USER + ":61", "train_step") not in by, "pending free is not live"
assert by[(g.NO_FRAME, "")]["bytes"] == 2 * MIB
assert by[("(library only)", "run (threading.py:5)")]["bytes"] == 1 * MIB, rows
assert all("other_gpu" != r["function"] for r in rows), "another device's blocks are left out"
assert rows[0]["function"] == "validate" and other == {"sites": 0, "bytes": 0, "blocks": 0}
# Every device when none is given.
assert any(r["function"] == "other_gpu" for r in g.reduce_snapshot(snap, is_user=user)[0])

# Bounded: however many sites, max_sites rows leave the process, the rest summed.
many = {"segments": [{"device": 0, "blocks": [blk((i + 1) * 1024, "active_allocated", [fr(USER, i, "f")]) for i in range(1000)]}]}
rows, other = g.reduce_snapshot(many, device=0, is_user=user, max_sites=128)
assert len(rows) == 128 and rows[0]["bytes"] == 1000 * 1024 and other["sites"] == 872, (len(rows), other)
assert sum(r["bytes"] for r in rows) + other["bytes"] == sum((i + 1) * 1024 for i in range(1000))

# Malformed input never raises out of the reduction.
assert g.reduce_snapshot({}, is_user=user) == ([], {"sites": 0, "bytes": 0, "blocks": 0})
print("OK")
