"""A census of a Python process's live objects, for `diagnose watch --python-objects`.

At an epoch end it walks `gc.get_objects()` once: per type, how many objects and bytes
(numpy arrays by nbytes, torch tensors by their storage's bytes, CPU and CUDA apart, each
storage counted once, exactly; other types from a sample of their instances); and every
container (list, dict, set, deque) with at least
MIN_ITEMS items, with the bytes it holds. Containers that grew since the last census are
named by a referrer path from a module global or a long-lived object
(`Trainer.all_pred_bboxes`, `__main__._CACHE`, `Trainer.kept['boxes']`) and followed at
every census after that. The result goes to a JSON file that `diagnose` reads. Processes
forked from the trainer (DataLoader workers) take their own censuses when asked.

No dependencies; torch and numpy are looked at only if the program imported them. Every
entry point catches its own errors: a census failure is reported in its file, never
raised into the training loop.
"""

import collections
import gc
import json
import os
import sys
import time

MIN_ITEMS = 16       # smaller containers are not followed
MAX_TRACKED = 256    # containers followed from census to census
MAX_DEPTH = 6        # referrer hops when naming
NAME_PER_CENSUS = 10 # containers newly named per census, the fastest growing first
TOP_TYPES = 40       # per-type rows written

_CONTAINERS = (list, dict, set, collections.deque)
_state = {"last_len": None, "tracked": {}}  # id -> items at the last census; id -> name


def _type_label(t):
    mod = t.__module__ or ""
    return t.__name__ if mod in ("builtins", "") else "%s.%s" % (mod, t.__name__)


def _array_types():
    """(torch.Tensor, numpy.ndarray), those of the two the program imported."""
    out = []
    for mod, attr in (("torch", "Tensor"), ("numpy", "ndarray")):
        m = sys.modules.get(mod)
        if m is not None and isinstance(getattr(m, attr, None), type):
            out.append(getattr(m, attr))
    return tuple(out)


def _leaf_bytes(o, seen, arrays=None):
    """(type label, bytes) of an object counted by what it holds; storages once per `seen`."""
    arrays = _array_types() if arrays is None else arrays
    t = type(o)
    try:
        if arrays and isinstance(o, arrays):
            if hasattr(o, "untyped_storage"):  # a torch tensor: its storage, once
                st = o.untyped_storage()
                dev = "cuda" if o.is_cuda else o.device.type
                key = (dev, st.data_ptr())
                label = "torch.Tensor(%s)" % dev
                if key in seen:
                    return label, 0
                seen.add(key)
                return label, st.nbytes()
            base = o  # a numpy array: its base's buffer, once
            while getattr(base, "base", None) is not None and isinstance(base.base, arrays):
                base = base.base
            key = ("numpy", base.__array_interface__["data"][0])
            if key in seen:
                return "numpy.ndarray", 0
            seen.add(key)
            return "numpy.ndarray", base.nbytes
    except Exception:
        pass
    return _type_label(t), sys.getsizeof(o, 0)


def _held_bytes(c, seen):
    """Bytes a container holds: itself, its items, and one level into items that are
    tuples, lists or dicts (a list of (boxes, scores) pairs)."""
    total = sys.getsizeof(c, 0)
    items = c.values() if isinstance(c, dict) else c
    for it in list(items):
        if isinstance(it, (tuple, list)):
            total += sys.getsizeof(it, 0)
            for sub in it:
                total += _leaf_bytes(sub, seen)[1]
        elif isinstance(it, dict):
            total += sys.getsizeof(it, 0)
            for sub in it.values():
                total += _leaf_bytes(sub, seen)[1]
        else:
            total += _leaf_bytes(it, seen)[1]
    return total


def _module_dicts():
    out = {}
    # Sorted so that "__main__" names the script, not an alias such as "__mp_main__".
    for name, m in sorted(list(sys.modules.items()), key=lambda kv: kv[0] != "__main__"):
        d = getattr(m, "__dict__", None)
        if isinstance(d, dict) and id(d) not in out:
            out[id(d)] = name
    return out


def _key_of(container, value):
    """How `container` reaches `value`: "['key']", "[3]", or None."""
    if isinstance(container, dict):
        for k, v in container.items():
            if v is value:
                return k
        return None
    if isinstance(container, (list, tuple, collections.deque)):
        for i, v in enumerate(container):
            if v is value:
                return i
    return None


_SKIP_TYPES = ("frame", "function", "cell", "generator", "coroutine", "method")


def name_all(targets, ignore=()):
    """Referrer paths from a module global or an object attribute to each of `targets`:
    {id(target): name}. Walks up one level per step for all targets at once, so each step
    is one scan of the heap (gc.get_referrers), whatever the number of targets."""
    modules = _module_dicts()
    names = {}
    frontier = [(t, id(t), "") for t in targets]
    skip = {id(x) for x in ignore} | {id(targets), id(frontier)}
    visited = {(id(t), id(t)) for t in targets}
    for _ in range(MAX_DEPTH):
        if not frontier:
            break
        objs = [f[0] for f in frontier]
        refs = gc.get_referrers(*objs)
        skip.update((id(objs), id(refs)))
        nxt = []
        for r in refs:
            if id(r) in skip or type(r).__name__ in _SKIP_TYPES:
                continue
            for obj, tid, suffix in frontier:
                if tid in names or (id(r), tid) in visited:
                    continue
                if isinstance(r, dict):
                    key = _key_of(r, obj)
                    if key is None:
                        continue
                    visited.add((id(r), tid))
                    if id(r) in modules:
                        names[tid] = "%s.%s%s" % (modules[id(r)], key, suffix)
                    else:
                        nxt.append((r, tid, "[%r]%s" % (key, suffix)))
                elif isinstance(r, (list, tuple, collections.deque)):
                    key = _key_of(r, obj)
                    if key is not None:
                        visited.add((id(r), tid))
                        nxt.append((r, tid, "[%d]%s" % (key, suffix)))
                else:
                    # An object's attribute: in its __dict__ or inline (Python 3.11+), or a slot.
                    d = getattr(r, "__dict__", None)
                    if d is obj and suffix.startswith("['"):
                        # `obj` is this object's materialised __dict__: "['attr']..." is ".attr...".
                        attr, rest = suffix[2:].split("']", 1)
                        names[tid] = "%s.%s%s" % (type(r).__name__, attr, rest)
                        continue
                    key = _key_of(d, obj) if isinstance(d, dict) else None
                    if key is None:
                        key = next((k for k in getattr(type(r), "__slots__", ()) if getattr(r, k, None) is obj), None)
                    if isinstance(key, str):
                        names[tid] = "%s.%s%s" % (type(r).__name__, key, suffix)
        frontier = [f for f in nxt if f[1] not in names]
        skip.add(id(nxt))
    return names


def name_of(target, ignore=()):
    """A referrer path to `target`, or None."""
    return name_all([target], ignore).get(id(target))


def _allocated_at(c):
    """Where the newest item of `c` was allocated (tracemalloc, when it runs), as
    "item file:line <- file:line" (the program's own frames, innermost first), or where
    the container itself was made ("container file:line") when its items are not traced."""
    try:
        import tracemalloc

        if not tracemalloc.is_tracing() or not len(c):
            return None
        item = next(reversed(c.values())) if isinstance(c, dict) else (c[-1] if isinstance(c, (list, collections.deque)) else next(iter(c)))
        # Objects made in C++ (torch tensors) are not traced: then where the container was made.
        what, tb = "item", tracemalloc.get_object_traceback(item)
        if tb is None:
            what, tb = "container", tracemalloc.get_object_traceback(c)
        if tb is None:
            return None
        frames = list(tb)[::-1]  # tracemalloc lists the oldest frame first
        own = [f for f in frames if "site-packages" not in f.filename and "/lib/python" not in f.filename] or frames
        return "%s %s" % (what, " <- ".join("%s:%d" % (os.path.basename(f.filename), f.lineno) for f in own[:3]))
    except Exception:
        return None


def _cuda():
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            return {
                "allocated": torch.cuda.memory_allocated(),
                "reserved": torch.cuda.memory_reserved(),
                "peak_allocated": torch.cuda.max_memory_allocated(),
                "peak_reserved": torch.cuda.max_memory_reserved(),
            }
    except Exception:
        pass
    return None


_CONTAINER_TYPES = {list, dict, set, collections.deque, collections.OrderedDict, collections.defaultdict}
_SAMPLE = 2000  # instances sized per type; bytes of larger types are estimated from them


# While a census runs, the other threads (the training loop) wait: without this, Python
# would hand them the GIL every 5 ms and a census would mix several moments (a list's
# items counted before an epoch's appends, its bytes after them).
CENSUS_SWITCH_INTERVAL = 30.0


def census(epoch):
    """Take a census now, the program's other threads paused; returns it as a dict (with
    "error" if it failed)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(CENSUS_SWITCH_INTERVAL)
    try:
        return _census(epoch)
    finally:
        sys.setswitchinterval(interval)


def _census(epoch):
    started = time.perf_counter()
    result = {"epoch": int(epoch), "pid": os.getpid()}
    try:
        objs = gc.get_objects()
        # Per type: counted exactly at C speed; sized exactly for tensors and arrays (by
        # their storage), from a sample of instances for everything else.
        counts = collections.Counter(map(type, objs))
        types = {}
        seen = set()
        arrays = _array_types()
        heavy = {t for t in counts if arrays and issubclass(t, arrays)}
        for o in objs:
            if type(o) in heavy:
                label, size = _leaf_bytes(o, seen, arrays)
                row = types.setdefault(label, [0, 0])
                row[0] += 1
                row[1] += size
        by_type = {t: n for t, n in counts.items() if t not in heavy}
        samples = collections.defaultdict(list)
        stride = max(1, len(objs) // (_SAMPLE * 8))
        for o in objs[::stride]:
            t = type(o)
            if t in by_type and len(samples[t]) < _SAMPLE:
                samples[t].append(sys.getsizeof(o, 0))
        missing = {t for t in by_type if not samples.get(t)}
        for o in objs if missing else ():  # one more pass, for the rare types the stride missed
            t = type(o)
            if t in missing:
                samples[t].append(sys.getsizeof(o, 0))
                missing.discard(t)
                if not missing:
                    break
        for t, n in by_type.items():
            sizes = samples[t]
            row = types.setdefault(_type_label(t), [0, 0])
            row[0] += n
            # A storage object's size is its tensor's data, already counted with the tensor.
            if not (t.__module__ or "").startswith("torch.storage"):
                row[1] += int(n * sum(sizes) / len(sizes))
        containers = [o for o in objs if type(o) in _CONTAINER_TYPES and len(o) >= MIN_ITEMS]
        result["objects"] = len(objs)
        del objs
        # Leaves gc does not track (arrays, bytes, str) are reached through the containers.
        for c in containers:
            for it in list(c.values() if isinstance(c, dict) else c):
                if not gc.is_tracked(it) and arrays and isinstance(it, arrays):
                    label, size = _leaf_bytes(it, seen, arrays)
                    row = types.setdefault(label, [0, 0])
                    row[0] += 1
                    row[1] += size
        lengths = {id(c): len(c) for c in containers}
        last = _state["last_len"]
        tracked = _state["tracked"]
        by_id = {id(c): c for c in containers}
        # The first census is the baseline; after it, containers longer than before (or
        # new and long) are named, the fastest growing first, a few per census.
        if last is not None:
            grew = [c for c in containers if lengths[id(c)] > last.get(id(c), 0) and id(c) not in tracked]
            grew.sort(key=lambda c: lengths[id(c)] - last.get(id(c), 0), reverse=True)
            todo = grew[: min(NAME_PER_CENSUS, max(0, MAX_TRACKED - len(tracked)))]
            for cid, name in name_all(todo, ignore=(containers, by_id, grew)).items():
                if "diagnose_census" not in name:  # our own source lines
                    tracked[cid] = name
        rows = []
        for cid, name in list(tracked.items()):
            c = by_id.get(cid)
            if c is None:  # gone, or shrank below MIN_ITEMS: reported empty once
                rows.append({"name": name, "type": None, "items": 0, "bytes": 0})
                del tracked[cid]
                continue
            rows.append({"name": name, "type": type(c).__name__, "items": len(c), "bytes": _held_bytes(c, set()), "allocated_at": _allocated_at(c)})
        _state["last_len"] = lengths
        result["containers"] = rows
        result["types"] = [{"type": k, "count": v[0], "bytes": v[1]} for k, v in sorted(types.items(), key=lambda kv: -kv[1][1])[:TOP_TYPES]]
        result["cuda"] = _cuda()
    except Exception as e:  # reported, never raised
        result["error"] = "%s: %s" % (type(e).__name__, e)
    result["seconds"] = time.perf_counter() - started
    return result


def forget():
    """Start over: in a process forked from the one that took the censuses so far (a
    DataLoader worker), whose containers are copies to be followed afresh."""
    _state["last_len"] = None
    _state["tracked"] = {}


def census_to(epoch, folder, role="main"):
    """Take a census and write it to FOLDER/epoch-N.json, or epoch-N-worker-PID.json for a
    worker (atomically). Never raises."""
    try:
        r = census(epoch)
        r["role"] = role
        os.makedirs(folder, exist_ok=True)
        name = "epoch-%d.json" % int(epoch) if role == "main" else "epoch-%d-worker-%d.json" % (int(epoch), os.getpid())
        path = os.path.join(folder, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(r, f)
        os.replace(tmp, path)
        return r
    except Exception:
        return None
