"""The CUDA caching allocator's state at each epoch end, for `diagnose watch`
(--python-objects: its counters; --gpu-sites: also the live bytes per allocating line).

nvidia-smi shows what the caching allocator has *reserved* from the driver, not what
tensors hold: a job whose reserved memory climbs may be caching or fragmenting, not
leaking. So the counters of torch.cuda.memory_stats() are written at each epoch end
(allocated, reserved, active, inactive-split bytes, segments, allocation retries, OOMs),
and diagnose tells the cases apart.

With --gpu-sites, PyTorch's own allocation history is switched on at the first CUDA
initialisation (torch.cuda._lazy_call: runs right after init, or at once if CUDA is up),
keeping Python frames for live blocks only (context="state") and a short trace ring
(max_entries): its memory is bounded by the live blocks, however long the run. At each
epoch end torch.cuda.memory._snapshot() is reduced here to live bytes per allocating
line (the innermost frame in the program's own code), and only those rows (MAX_SITES at
most) leave the process, in <out>/epoch-N.json.

No dependencies; never raises into the training loop.
"""

import json
import os
import sys
import sysconfig
import time

MAX_SITES = 128  # rows written per epoch; the rest are summed in one "(other sites)" row
NO_FRAME = "(no Python frame)"  # blocks allocated before recording began, or from C++

# torch.cuda.memory_stats() keys (PyTorch 2.x) -> our names.
STAT_KEYS = {
    "allocated": "allocated_bytes.all.current",
    "reserved": "reserved_bytes.all.current",
    "active": "active_bytes.all.current",
    "inactive_split": "inactive_split_bytes.all.current",
    "segments": "segment.all.current",
    "alloc_retries": "num_alloc_retries",
    "ooms": "num_ooms",
    "peak_allocated": "allocated_bytes.all.peak",
    "peak_reserved": "reserved_bytes.all.peak",
}

_state = {"recording": False, "error": None}


def stats(memory_stats):
    """Our counters from a torch.cuda.memory_stats() dict (missing keys are left out)."""
    out = {}
    for ours, key in STAT_KEYS.items():
        v = memory_stats.get(key)
        if isinstance(v, (int, float)):
            out[ours] = int(v)
    return out


def _library_roots():
    """Folders whose files are libraries, not the program: the standard library,
    site-packages, and this helper's own folder."""
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            p = sysconfig.get_paths().get(key)
            if p:
                roots.add(os.path.realpath(p) + os.sep)
        except Exception:
            pass
    roots.add(os.path.dirname(os.path.abspath(__file__)) + os.sep)
    return tuple(roots)


def is_user_file(filename, roots=None):
    """A Python file of the program itself: not in a library folder, not `<frozen ...>`."""
    if not filename or filename.startswith("<") or not filename.endswith(".py"):
        return False
    if "/site-packages/" in filename or "/dist-packages/" in filename:
        return False
    roots = _library_roots() if roots is None else roots
    path = os.path.realpath(filename) if os.path.isabs(filename) else filename
    return not any(path.startswith(r) for r in roots)


def _cpp_op(name):
    """`aten::linear` from a C++ frame name such as `at::_ops::linear::call(...)`."""
    i = name.find("at::_ops::")
    if i < 0:
        return None
    rest = name[i + len("at::_ops::"):]
    return "aten::" + rest.split("::", 1)[0].split("(", 1)[0]


def site_of(frames, is_user):
    """(file:line, function, op) of a block's frames (innermost first): the innermost
    frame in the program's own code; op: the innermost C++ operator when the frames hold
    C++ (stacks="all"), else the library function that line called."""
    op = None
    callee = None
    for f in frames:
        try:
            name, filename = str(f.get("name", "")), str(f.get("filename", ""))
        except Exception:
            continue
        if op is None:
            op = _cpp_op(name)
        if is_user(filename):
            cwd = os.getcwd() + os.sep  # the program's files as the user named them
            shown = filename[len(cwd):] if filename.startswith(cwd) else filename
            where = "%s:%s" % (shown, f.get("line", "?"))
            return where, name, op or callee or ""
        if filename.endswith(".py"):
            callee = "%s (%s:%s)" % (name, os.path.basename(filename), f.get("line", "?"))
    if frames:
        return "(library only)", callee or "", op or ""
    return NO_FRAME, "", ""


def reduce_snapshot(snapshot, device=None, is_user=None, max_sites=MAX_SITES):
    """Live bytes per allocating site from a torch.cuda.memory._snapshot() dict: blocks
    in state "active_allocated" (tensors hold them; "active_pending_free" ones are being
    freed), by their allocator size. Returns (rows, other): rows sorted by bytes,
    `max_sites` at most, each {"site", "function", "op", "bytes", "blocks"}; `other`
    sums the rest ({"sites", "bytes", "blocks"})."""
    if is_user is None:
        roots = _library_roots()
        is_user = lambda f: is_user_file(f, roots)  # noqa: E731
    sites = {}
    cache = {}  # a stack shared by many blocks is resolved once
    for seg in snapshot.get("segments", ()) or ():
        if device is not None and seg.get("device", device) != device:
            continue
        for b in seg.get("blocks", ()) or ():
            if b.get("state") != "active_allocated":
                continue
            frames = b.get("frames") or ()
            key = tuple((f.get("filename"), f.get("line"), f.get("name")) for f in frames[:64])
            site = cache.get(key)
            if site is None:
                site = cache[key] = site_of(frames, is_user)
            row = sites.setdefault(site, [0, 0])
            row[0] += int(b.get("size", 0) or 0)
            row[1] += 1
    ordered = sorted(sites.items(), key=lambda kv: -kv[1][0])
    rows = [{"site": s[0], "function": s[1], "op": s[2], "bytes": v[0], "blocks": v[1]} for s, v in ordered[:max_sites]]
    rest = ordered[max_sites:]
    other = {"sites": len(rest), "bytes": sum(v[0] for _, v in rest), "blocks": sum(v[1] for _, v in rest)}
    return rows, other


def start_history(torch_cuda):
    """Switch on allocation history at the first CUDA initialisation (or now, if CUDA
    is up). Python frames only; live blocks' frames (context="state"); a bounded trace
    ring (DIAGNOSE_GPU_MAX_ENTRIES, 1000 by default)."""
    entries = int(os.environ.get("DIAGNOSE_GPU_MAX_ENTRIES", "1000"))
    stacks = os.environ.get("DIAGNOSE_GPU_STACKS", "python")  # "all" adds C++ frames (ops)

    def enable():
        try:
            torch_cuda.memory._record_memory_history(enabled="all", context="state", stacks=stacks, max_entries=entries)
            _state["recording"] = True
        except Exception as e:
            _state["error"] = "%s: %s" % (type(e).__name__, e)
            sys.stderr.write("diagnose: --gpu-sites: allocation history not started: %s\n" % e)

    torch_cuda._lazy_call(enable)


def take(epoch, sites):
    """This epoch's counters (and, with `sites`, the live bytes per site) as a dict, or
    None where CUDA was never initialised in this process."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    started = time.perf_counter()
    device = torch.cuda.current_device()
    r = {"epoch": int(epoch), "pid": os.getpid(), "device": device, "stats": stats(torch.cuda.memory_stats(device))}
    if sites:
        if _state["recording"]:
            snap = torch.cuda.memory._snapshot()
            r["sites"], r["other"] = reduce_snapshot(snap, device)
            del snap
        else:
            r["sites_error"] = _state["error"] or "allocation history was not started"
    r["seconds"] = time.perf_counter() - started
    return r


def write(r, folder):
    """Write `r` to FOLDER/epoch-N.json atomically."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "epoch-%d.json" % r["epoch"])
    with open(path + ".tmp", "w") as f:
        json.dump(r, f)
    os.replace(path + ".tmp", path)


def record_to(epoch, folder, sites):
    """take() and write(), once per epoch. Never raises; returns the dict or None."""
    try:
        if _state.get("written") == int(epoch):
            return None
        r = take(epoch, sites)
        if r is not None:
            write(r, folder)
            _state["written"] = int(epoch)
        return r
    except Exception as e:
        sys.stderr.write("diagnose: GPU figures not recorded: %s\n" % e) if not _state.get("warned") else None
        _state["warned"] = True
        return None
