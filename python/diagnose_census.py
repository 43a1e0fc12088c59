"""A census of a Python process's live objects, for `diagnose watch --python-objects`.

At an epoch end it walks `gc.get_objects()` once: per type, how many objects and bytes
(numpy arrays by nbytes, torch tensors by their storage's bytes, CPU and CUDA apart, each
storage counted once, exactly; other types from a sample of their instances); and every
container (list, dict, set, deque) with at least MIN_ITEMS items, with the bytes it
holds, including what its tensors keep alive through their autograd graphs (the tensors
saved for backward). Containers that grew since the last census are named by a referrer
path from a module global or a long-lived object (`Trainer.all_pred_bboxes`,
`__main__._CACHE`, `Trainer.kept['boxes']`) and followed at every census after that; so
are single tensors whose autograd graph is large (`Trainer.total_loss` after
`self.total_loss += loss`). It also reads glibc's malloc counters (mallinfo2: in use vs
held free), so that growth no Python object explains can be told apart: native code,
or the C allocator keeping freed memory. The result goes to a JSON file that `diagnose`
reads.

A process forked from the trainer (a DataLoader worker) takes a light census by default:
only its dataset's containers, their lengths and a sample of their newest items. A full
census there would write the reference count of every object the worker shares with the
trainer and so copy those pages (the worker's USS jumps): it is taken only when asked
(`--python-objects-workers`).

No dependencies; torch and numpy are looked at only if the program imported them. No
single object or type can fail a census: every step is guarded per type and per object,
and what was skipped is counted in the file. Nothing is ever raised into the training
loop, and the census's own warnings never reach the program's stderr.
"""

import collections
import gc
import json
import os
import sys
import time
import types as pytypes
import warnings

MIN_ITEMS = 16       # smaller containers are not followed
MAX_TRACKED = 256    # containers followed from census to census
MAX_DEPTH = 6        # referrer hops when naming
NAME_PER_CENSUS = 10 # containers newly named per census, the fastest growing first
TOP_TYPES = 40       # per-type rows written
GRAPH_MIN_NODES = 64     # a lone tensor whose autograd graph has this many nodes is followed
GRAPH_NODE_BUDGET = 500_000  # graph nodes walked per census, at most
LIGHT_SAMPLE = 64    # items sized per container in a light (worker) census

_CONTAINERS = (list, dict, set, collections.deque)
_state = {"last_len": None, "tracked": {}}  # id -> items at the last census; id -> name

# A type's own name and module, read through `type`'s descriptors: a metaclass may define
# `__name__` as a property that raises, and numpy's Cython metatype answers `__module__`
# with a getset_descriptor, not a str. Nothing about a type is assumed.
_TYPE_NAME = type.__dict__["__name__"].__get__
_TYPE_MODULE = type.__dict__["__module__"].__get__


def _type_name(t):
    try:
        name = _TYPE_NAME(t)
        return name if isinstance(name, str) else "?"
    except Exception:
        return "?"


def _type_label(t):
    try:
        mod = _TYPE_MODULE(t)
    except Exception:
        mod = None
    name = _type_name(t)
    if not isinstance(mod, str) or mod in ("builtins", ""):
        return name
    return "%s.%s" % (mod, name)


def _sizeof(o):
    """sys.getsizeof, or 0 where the object's __sizeof__ raises."""
    try:
        return sys.getsizeof(o, 0)
    except Exception:
        return 0


def _array_types():
    """(torch.Tensor, numpy.ndarray), those of the two the program imported."""
    out = []
    for mod, attr in (("torch", "Tensor"), ("numpy", "ndarray")):
        m = sys.modules.get(mod)
        try:
            if m is not None and isinstance(getattr(m, attr, None), type):
                out.append(getattr(m, attr))
        except Exception:
            pass
    return tuple(out)


def _is_array(o, arrays):
    # By the real type, never isinstance: an object may lie about its __class__.
    try:
        return bool(arrays) and issubclass(type(o), arrays)
    except Exception:
        return False


def _storage_bytes(t, seen):
    """(label, bytes) of a torch tensor's storage, 0 when `seen` already holds it."""
    st = t.untyped_storage()
    dev = "cuda" if t.is_cuda else t.device.type
    key = (dev, st.data_ptr())
    label = "torch.Tensor(%s)" % dev
    if key in seen:
        return label, 0
    seen.add(key)
    return label, st.nbytes()


def _leaf_bytes(o, seen, arrays=None):
    """(type label, bytes) of an object counted by what it holds; storages once per `seen`."""
    arrays = _array_types() if arrays is None else arrays
    t = type(o)
    try:
        if _is_array(o, arrays):
            if hasattr(o, "untyped_storage"):  # a torch tensor: its storage, once
                return _storage_bytes(o, seen)
            base = o  # a numpy array: its base's buffer, once
            while getattr(base, "base", None) is not None and _is_array(base.base, arrays):
                base = base.base
            key = ("numpy", base.__array_interface__["data"][0])
            if key in seen:
                return "numpy.ndarray", 0
            seen.add(key)
            return "numpy.ndarray", base.nbytes
    except Exception:
        pass
    return _type_label(t), _sizeof(o)


class _Graphs:
    """What tensors keep alive through their autograd graphs: the graph's nodes and the
    tensors saved for backward (each storage once). Leaves that require grad (the model's
    parameters, reached through AccumulateGrad nodes) are not the graph's: they are
    excluded, with every view that shares their storage."""

    def __init__(self, budget):
        self.budget = budget
        self.saved_names = {}  # node type -> its `_saved_*` attributes

    def _saved(self, node):
        t = type(node)
        names = self.saved_names.get(t)
        if names is None:
            try:
                names = [n for n in dir(t) if n.startswith("_saved_")]
            except Exception:
                names = []
            self.saved_names[t] = names
        return names

    def walk(self, tensors, seen_nodes, seen_storages):
        """(nodes, bytes) newly reached from the graphs of `tensors`."""
        torch = sys.modules.get("torch")
        if torch is None:
            return 0, 0
        stack = []
        for t in tensors:
            try:
                fn = t.grad_fn
            except Exception:
                fn = None
            if fn is not None:
                stack.append(fn)
        nodes, saved, leaves = [], [], set()
        while stack and self.budget > 0:
            node = stack.pop()
            if node is None or id(node) in seen_nodes:
                continue
            seen_nodes[id(node)] = node  # held, so that an id is not reused during the walk
            nodes.append(node)
            self.budget -= 1
            try:
                var = getattr(node, "variable", None)  # AccumulateGrad: a leaf, a parameter
                if isinstance(var, torch.Tensor):
                    leaves.add(var.untyped_storage().data_ptr())
            except Exception:
                pass
            for name in self._saved(node):
                try:
                    v = getattr(node, name)  # raises once backward has freed it
                except Exception:
                    continue
                for x in v if isinstance(v, (tuple, list)) else (v,):
                    if isinstance(x, torch.Tensor):
                        saved.append(x)
            try:
                stack.extend(n for n, _ in node.next_functions)
            except Exception:
                pass
        size = 0
        for x in saved:
            try:
                if x.is_leaf and x.requires_grad:
                    continue
                if x.untyped_storage().data_ptr() in leaves:
                    continue
                size += _storage_bytes(x, seen_storages)[1]
            except Exception:
                pass
        return len(nodes), size


def _items_of(c):
    """A container's items, one level into tuples, lists and dicts (a list of (boxes,
    scores) pairs), as (item, counted_as_sub) pairs."""
    items = c.values() if isinstance(c, dict) else c
    for it in list(items):
        t = type(it)
        if t is tuple or t is list:
            yield it, False
            for sub in it:
                yield sub, True
        elif t is dict:
            yield it, False
            for sub in list(it.values()):
                yield sub, True
        else:
            yield it, None


def _held_bytes(c, seen, graphs=None, skipped=None):
    """(bytes, graph nodes, graph bytes) a container holds: itself, its items (one level
    into tuples, lists and dicts), and what its tensors keep alive through their graphs."""
    total = _sizeof(c)
    arrays = _array_types()
    tensors = []
    for it, sub in _items_of(c):
        try:
            if sub is False:
                total += _sizeof(it)
                continue
            total += _leaf_bytes(it, seen, arrays)[1]
            if graphs is not None and _is_array(it, arrays) and hasattr(it, "grad_fn"):
                tensors.append(it)
        except Exception:
            if skipped is not None:
                skipped["objects"] += 1
    nodes, gbytes = graphs.walk(tensors, {}, seen) if graphs is not None and tensors else (0, 0)
    return total + gbytes, nodes, gbytes


def _module_dicts():
    out = {}
    # Sorted so that "__main__" names the script, not an alias such as "__mp_main__".
    for name, m in sorted(list(sys.modules.items()), key=lambda kv: kv[0] != "__main__"):
        try:
            d = getattr(m, "__dict__", None)
        except Exception:
            continue
        if isinstance(d, dict) and id(d) not in out:
            out[id(d)] = name
    return out


def _key_of(container, value):
    """How `container` reaches `value`: "['key']", "[3]", or None."""
    if isinstance(container, dict):
        for k, v in list(container.items()):
            if v is value:
                return k
        return None
    if isinstance(container, (list, tuple, collections.deque)):
        for i, v in enumerate(container):
            if v is value:
                return i
    return None


_SKIP_TYPES = ("frame", "function", "cell", "generator", "coroutine", "method")


def _attr_key(r, obj, suffix):
    """How object `r` reaches `obj` by an attribute: its name, or None. `suffix` is the
    path below `obj` so far; ("materialised", rest) when `obj` is `r`'s own __dict__."""
    # object.__getattribute__: the class's own __getattr__ may raise or lie.
    try:
        d = object.__getattribute__(r, "__dict__")
    except Exception:
        d = None
    if d is obj and suffix.startswith("['"):
        attr, rest = suffix[2:].split("']", 1)
        return ("materialised", attr, rest)
    key = _key_of(d, obj) if isinstance(d, dict) else None
    if key is None:
        try:
            slots = type.__dict__["__dict__"].__get__(type(r)).get("__slots__", ())
            slots = (slots,) if isinstance(slots, str) else slots
            for k in slots if isinstance(slots, (tuple, list)) else ():
                try:
                    if object.__getattribute__(r, k) is obj:
                        key = k
                        break
                except Exception:
                    continue
        except Exception:
            pass
    return key


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
            if id(r) in skip or _type_name(type(r)) in _SKIP_TYPES:
                continue
            for obj, tid, suffix in frontier:
                if tid in names or (id(r), tid) in visited:
                    continue
                try:
                    if type(r) is dict or (isinstance(r, dict) and type(r) in _CONTAINER_TYPES):
                        key = _key_of(r, obj)
                        if key is None:
                            continue
                        visited.add((id(r), tid))
                        if id(r) in modules:
                            names[tid] = "%s.%s%s" % (modules[id(r)], key, suffix)
                        else:
                            nxt.append((r, tid, "[%r]%s" % (key, suffix)))
                    elif type(r) in (list, tuple, collections.deque):
                        key = _key_of(r, obj)
                        if key is not None:
                            visited.add((id(r), tid))
                            nxt.append((r, tid, "[%d]%s" % (key, suffix)))
                    else:
                        # An object's attribute: in its __dict__ or inline (Python 3.11+), or a slot.
                        key = _attr_key(r, obj, suffix)
                        owner = _type_name(type(r))
                        if isinstance(r, pytypes.ModuleType):  # a module (or a lazy one) by its name
                            owner = modules.get(id(object.__getattribute__(r, "__dict__")), owner)
                        if isinstance(key, tuple):
                            names[tid] = "%s.%s%s" % (owner, key[1], key[2])
                        elif isinstance(key, str):
                            names[tid] = "%s.%s%s" % (owner, key, suffix)
                except Exception:
                    continue  # an odd referrer: the next one may name it
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


_MALLINFO = {}


def _malloc():
    """glibc's malloc counters (mallinfo2, glibc 2.33+): bytes in use (heap chunks and
    mmapped blocks) and bytes it holds free, over all arenas; None elsewhere."""
    try:
        f = _MALLINFO.get("f")
        if f is None:
            import ctypes

            class MallInfo2(ctypes.Structure):
                _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

            f = ctypes.CDLL(None).mallinfo2
            f.restype = MallInfo2
            _MALLINFO["f"] = f
        m = f()
        return {"in_use": m.uordblks + m.hblkhd, "free": m.fordblks, "mmapped": m.hblkhd, "arena": m.arena}
    except Exception:
        return None


_CONTAINER_TYPES = {list, dict, set, collections.deque, collections.OrderedDict, collections.defaultdict}
_SAMPLE = 2000  # instances sized per type; bytes of larger types are estimated from them


# While a census runs, the other threads (the training loop) wait: without this, Python
# would hand them the GIL every 5 ms and a census would mix several moments (a list's
# items counted before an epoch's appends, its bytes after them).
CENSUS_SWITCH_INTERVAL = 30.0


def census(epoch, light=False, graphs=True):
    """Take a census now, the program's other threads paused, its warnings silenced;
    returns it as a dict (with "error" if it failed). `light`: the dataset's containers
    only (a forked DataLoader worker). `graphs`: walk the autograd graphs of tensors;
    only where no backward can run meanwhile (the training loop's own thread)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(CENSUS_SWITCH_INTERVAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _light_census(epoch) if light else _census(epoch, graphs)
    finally:
        sys.setswitchinterval(interval)


def _add(types, label, size):
    row = types.setdefault(label, [0, 0])
    row[0] += 1
    row[1] += size


def _census(epoch, walk_graphs=True):
    started = time.perf_counter()
    result = {"epoch": int(epoch), "pid": os.getpid(), "graphs": bool(walk_graphs)}
    # Objects and types a step could not handle: counted, and the census goes on.
    skipped = {"objects": 0, "types": collections.Counter()}
    try:
        objs = gc.get_objects()
        # Per type: counted exactly at C speed; sized exactly for tensors and arrays (by
        # their storage), from a sample of instances for everything else.
        counts = collections.Counter(map(type, objs))
        types = {}
        seen = set()
        arrays = _array_types()
        heavy = set()
        for t in counts:
            try:
                if arrays and issubclass(t, arrays):
                    heavy.add(t)
            except Exception:
                skipped["types"][_type_label(t)] += 1
        graph_roots = []  # tensors with an autograd graph
        for o in objs:
            if type(o) in heavy:
                try:
                    label, size = _leaf_bytes(o, seen, arrays)
                    _add(types, label, size)
                    if walk_graphs and label.startswith("torch.") and o.grad_fn is not None:
                        graph_roots.append(o)
                except Exception:
                    skipped["objects"] += 1
                    skipped["types"][_type_label(type(o))] += 1
        by_type = {t: n for t, n in counts.items() if t not in heavy}
        samples = collections.defaultdict(list)
        stride = max(1, len(objs) // (_SAMPLE * 8))
        for o in objs[::stride]:
            t = type(o)
            if t in by_type and len(samples[t]) < _SAMPLE:
                samples[t].append(_sizeof(o))
        missing = {t for t in by_type if not samples.get(t)}
        for o in objs if missing else ():  # one more pass, for the rare types the stride missed
            t = type(o)
            if t in missing:
                samples[t].append(_sizeof(o))
                missing.discard(t)
                if not missing:
                    break
        for t, n in by_type.items():
            try:
                sizes = samples[t]
                label = _type_label(t)
                row = types.setdefault(label, [0, 0])
                row[0] += n
                # A storage object's size is its tensor's data, already counted with the tensor.
                if not label.startswith("torch.storage"):
                    row[1] += int(n * sum(sizes) / len(sizes))
            except Exception:
                skipped["types"][_type_label(t)] += 1
        containers = [o for o in objs if type(o) in _CONTAINER_TYPES and len(o) >= MIN_ITEMS]
        result["objects"] = len(objs)
        del objs
        # Leaves gc does not track (arrays, bytes, str) are reached through the containers;
        # tensors with a graph found there are their container's, not lone ones.
        root_ids = {id(r) for r in graph_roots}
        contained = set()
        for c in containers:
            for it in list(c.values() if isinstance(c, dict) else c):
                if type(it) in heavy:
                    if id(it) in root_ids:
                        contained.add(id(it))
                    continue
                try:
                    if not gc.is_tracked(it) and _is_array(it, arrays):
                        label, size = _leaf_bytes(it, seen, arrays)
                        _add(types, label, size)
                except Exception:
                    skipped["objects"] += 1
        graph_roots = [r for r in graph_roots if id(r) not in contained]
        del root_ids, contained
        lengths = {id(c): len(c) for c in containers}
        last = _state["last_len"]
        tracked = _state["tracked"]
        by_id = {id(c): c for c in containers}
        graphs = _Graphs(GRAPH_NODE_BUDGET) if walk_graphs else None
        # The first census is the baseline; after it, containers longer than before (or
        # new and long) are named, the fastest growing first, a few per census.
        if last is not None:
            grew = [c for c in containers if lengths[id(c)] > last.get(id(c), 0) and id(c) not in tracked]
            grew.sort(key=lambda c: lengths[id(c)] - last.get(id(c), 0), reverse=True)
            todo = grew[: min(NAME_PER_CENSUS, max(0, MAX_TRACKED - len(tracked)))]
            for cid, name in name_all(todo, ignore=(containers, by_id, grew, graph_roots)).items():
                if "diagnose_census" not in name:  # our own source lines
                    tracked[cid] = name
        rows = []
        for cid, name in list(tracked.items()):
            c = by_id.get(cid)
            if c is None:  # gone, or shrank below MIN_ITEMS: reported empty once
                rows.append({"name": name, "type": None, "items": 0, "bytes": 0})
                del tracked[cid]
                continue
            try:
                size, nodes, gbytes = _held_bytes(c, set(), graphs, skipped)
                rows.append({"name": name, "type": type(c).__name__, "items": len(c), "bytes": size,
                             "graph_nodes": nodes, "graph_bytes": gbytes, "allocated_at": _allocated_at(c)})
            except Exception:
                skipped["objects"] += 1
        if graphs is not None:
            rows.extend(_lone_graphs(graph_roots, graphs, (containers, by_id, graph_roots)))
        _state["last_len"] = lengths
        result["containers"] = rows
        ordered = sorted(types.items(), key=lambda kv: -kv[1][1])
        result["types"] = [{"type": k, "count": v[0], "bytes": v[1]} for k, v in ordered[:TOP_TYPES]]
        result["total_bytes"] = sum(v[1] for _, v in ordered)
        result["array_bytes"] = sum(v[1] for k, v in ordered if k.startswith("torch.Tensor(cpu") or k == "numpy.ndarray")
        result["cuda"] = _cuda()
        result["malloc"] = _malloc()
    except Exception as e:  # reported, never raised
        result["error"] = "%s: %s" % (type(e).__name__, e)
    result["skipped_objects"] = skipped["objects"]
    result["skipped_types"] = [{"type": k, "count": n} for k, n in skipped["types"].most_common(10)]
    result["seconds"] = time.perf_counter() - started
    return result


MAX_GRAPH_ROOTS = 256  # tensors with a graph walked for lone graphs, per census


def _lone_graphs(roots, graphs, ignore):
    """Tensors whose own autograd graph is large (a loss accumulated with `+=` across
    steps), named by what keeps them: rows of kind "tensor". Each graph is walked whole;
    one that lies inside a larger one found (an intermediate still referenced) is that
    one's."""
    walked = []
    for t in roots[:MAX_GRAPH_ROOTS]:
        nodes = {}
        try:
            count, size = graphs.walk([t], nodes, set())
        except Exception:
            continue
        if count >= GRAPH_MIN_NODES:
            walked.append((count, size, t, nodes))
    walked.sort(key=lambda w: -w[0])
    big, covered = [], set()
    for count, size, t, nodes in walked:
        if next(iter(nodes)) in covered:  # its head node, reached from a larger graph
            continue
        covered.update(nodes)
        big.append((t, count, size))
    del walked
    if not big:
        return []
    names = name_all([b[0] for b in big], ignore=ignore + (roots, big))
    rows = []
    for t, nodes, size in big:
        name = names.get(id(t))
        if name and "diagnose_census" not in name:
            rows.append({"name": name, "kind": "tensor", "type": "torch.Tensor", "items": nodes, "bytes": size,
                         "graph_nodes": nodes, "graph_bytes": size})
    return rows


def _datasets():
    """The dataset of this DataLoader worker, and datasets it wraps (`.dataset`)."""
    torch = sys.modules.get("torch")
    info = torch.utils.data.get_worker_info() if torch is not None else None
    ds = getattr(info, "dataset", None)
    out = []
    while ds is not None and len(out) < 4 and all(ds is not d for d in out):
        out.append(ds)
        try:
            ds = object.__getattribute__(ds, "__dict__").get("dataset")
        except Exception:
            ds = None
    return out


def _light_census(epoch):
    """The containers of a DataLoader worker's dataset: their lengths, and their bytes
    from a sample of their newest items. Touches only those, so that the worker does not
    copy the pages it shares with the trainer."""
    started = time.perf_counter()
    result = {"epoch": int(epoch), "pid": os.getpid(), "light": True, "types": []}
    rows = []
    try:
        arrays = _array_types()
        for ds in _datasets():
            try:
                attrs = list(object.__getattribute__(ds, "__dict__").items())
            except Exception:
                continue
            for attr, c in attrs:
                if type(c) not in _CONTAINER_TYPES:
                    continue
                n = len(c)
                if type(c) in (list, collections.deque):
                    sample = list(c)[-LIGHT_SAMPLE:] if type(c) is collections.deque else c[-LIGHT_SAMPLE:]
                elif isinstance(c, dict):
                    sample = []
                    for v in reversed(c.values()):
                        sample.append(v)
                        if len(sample) >= LIGHT_SAMPLE:
                            break
                else:
                    sample = []
                    for v in c:
                        sample.append(v)
                        if len(sample) >= LIGHT_SAMPLE:
                            break
                seen = set()
                per_item = sum(_sizeof(v) if type(v) in (tuple, list, dict) else _leaf_bytes(v, seen, arrays)[1] for v in sample)
                per_item = per_item / len(sample) if sample else 0
                rows.append({"name": "%s.%s" % (_type_name(type(ds)), attr), "type": type(c).__name__, "items": n,
                             "bytes": int(_sizeof(c) + n * per_item)})
    except Exception as e:
        result["error"] = "%s: %s" % (type(e).__name__, e)
    result["containers"] = rows
    result["seconds"] = time.perf_counter() - started
    return result


def forget():
    """Start over: in a process forked from the one that took the censuses so far (a
    DataLoader worker), whose containers are copies to be followed afresh."""
    _state["last_len"] = None
    _state["tracked"] = {}


def census_to(epoch, folder, role="main", light=False, graphs=True):
    """Take a census and write it to FOLDER/epoch-N.json, or epoch-N-worker-PID.json for a
    worker (atomically). Never raises."""
    try:
        r = census(epoch, light, graphs)
        r["role"] = role
        os.makedirs(folder, exist_ok=True)
        name = "epoch-%d.json" % int(epoch) if role == "main" else "epoch-%d-worker-%d.json" % (int(epoch), os.getpid())
        path = os.path.join(folder, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(r, f)
        os.replace(tmp, path)
        _state["written"] = int(epoch)
        return r
    except Exception:
        return None
