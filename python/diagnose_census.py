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
MAX_DEPTH = 8        # referrer hops when naming
MAX_FRONTIER = 16    # ways up followed per target and hop
NAME_PER_CENSUS = 16 # containers newly named per census, the fastest growing first
TOP_TYPES = 40       # per-type rows written
GRAPH_MIN_NODES = 64     # a lone tensor whose autograd graph has this many nodes (or HEAVY_BYTES) is followed
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
                if hasattr(base, "untyped_storage"):
                    # `tensor.numpy()`: the buffer is the tensor's storage, counted once
                    # with the tensor, here under the name the program holds it by.
                    return "numpy.ndarray", _storage_bytes(base, seen)[1]
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


# Referrers walked through by what they are, not by an attribute: closures (a function's
# __closure__ cells), functools.partial's arguments, bound methods' __self__, generator
# and coroutine frames; other functions (their __globals__) and the census's own frames
# are not holders.
_CALLABLE_TYPES = ("function", "method", "builtin_function_or_method", "partial")
_OUR_FILES = ("diagnose_census", "sitecustomize")
_INDEX = __import__("re").compile(r"^\[(\d+)\]")


def _qualname(f):
    """A function's or method's qualified name (`install_tap.<locals>.on_forward`)."""
    for attr in ("__qualname__", "__name__"):
        try:
            n = getattr(f, attr)
            if isinstance(n, str):
                return n
        except Exception:
            pass
    return _type_name(type(f))


def _callable_label(f):
    """How a callable reads in a path: a function by its qualified name, a bound method
    by its class and name, a partial by what it wraps."""
    name = _type_name(type(f))
    try:
        if name == "partial":
            return "partial(%s)" % _callable_label(object.__getattribute__(f, "func"))
    except Exception:
        return "partial"
    return _qualname(f)


def _frame_var(frame, obj):
    """The name of the local variable of `frame` that holds `obj`, or None."""
    try:
        for k, v in list(frame.f_locals.items()):
            if v is obj:
                return k
    except Exception:
        pass
    return None


def _through(r, obj, suffix):
    """When `r` is a function, method, partial, generator or coroutine that reaches `obj`:
    the path from `r` down, as (suffix, terminal). `terminal` is a path that needs no holder
    above `r` (a running function's frame); None when `r` does not reach `obj` this way."""
    kind = _type_name(type(r))
    if kind == "cell":
        try:
            if r.cell_contents is obj:
                return suffix, None
        except Exception:
            pass
        return None
    if kind == "function":
        m = _INDEX.match(suffix)  # the cell's index in __closure__
        try:
            if m and obj is r.__closure__:
                var = r.__code__.co_freevars[int(m.group(1))]
                return "%s → %s%s" % (_qualname(r), var, suffix[m.end():]), None
            if m and obj is r.__defaults__:
                return "%s → default[%s]%s" % (_qualname(r), m.group(1), suffix[m.end():]), None
        except Exception:
            pass
        return None
    if kind in ("method", "builtin_function_or_method"):
        try:
            if getattr(r, "__self__", None) is obj and not isinstance(obj, pytypes.ModuleType):
                return "%s → __self__%s" % (_callable_label(r), suffix), None
        except Exception:
            pass
        return None
    if kind == "partial":
        try:
            args = object.__getattribute__(r, "args")
            kw = object.__getattribute__(r, "keywords")
            if obj is args:
                return "%s → args%s" % (_callable_label(r), suffix), None
            if obj is kw:
                return "%s → keywords%s" % (_callable_label(r), suffix), None
        except Exception:
            pass
        return None
    if kind in ("generator", "coroutine", "async_generator"):
        frame = getattr(r, {"generator": "gi_frame", "coroutine": "cr_frame"}.get(kind, "ag_frame"), None)
        var = _frame_var(frame, obj) if frame is not None else None
        return ("%s() → %s%s" % (_qualname(r), var, suffix), None) if var else None
    if kind == "frame":
        try:
            code = r.f_code
            if any(s in code.co_filename for s in _OUR_FILES):
                return None
            var = _frame_var(r, obj)
            if var:
                return suffix, "%s() → %s%s" % (getattr(code, "co_qualname", code.co_name), var, suffix)
        except Exception:
            pass
        return None
    return None


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


def _owner_label(r, modules):
    """How an object that holds a path by an attribute is named: its class (a module by
    its name, a thread by its name too)."""
    owner = _type_name(type(r))
    if isinstance(r, pytypes.ModuleType):  # a module (or a lazy one) by its name
        owner = modules.get(id(object.__getattribute__(r, "__dict__")), owner)
    else:
        try:
            threading = sys.modules.get("threading")
            if threading is not None and isinstance(r, threading.Thread):
                owner = "Thread(%r)" % object.__getattribute__(r, "_name")
        except Exception:
            pass
    return owner


def _in_dict(key, obj, suffix):
    """The path step for value `obj` at `key` of a dict: a callable kept under a number
    (a hook dict's handle id) reads `: install_tap.<locals>.on_forward → store`, anything
    else `[key]`."""
    if isinstance(key, int) and suffix.startswith(": "):
        return suffix
    return "[%r]%s" % (key, suffix)


def _pretty(name):
    """nn.Module's registries read as attributes: `._modules['fc']` as `.fc`."""
    return __import__("re").sub(r"\._(?:modules|parameters|buffers)\['([A-Za-z0-9_]+)'\]", r".\1", name)


def _running_frames(targets, names, ignore_files=_OUR_FILES):
    """Names for targets still unnamed that a running function holds in a local variable
    (`main() → history`): the stacks of every thread, innermost frames first."""
    want = {id(t): t for t in targets if id(t) not in names}
    if not want:
        return
    try:
        frames = list(sys._current_frames().values())
    except Exception:
        return
    for f in frames:
        while f is not None and want:
            try:
                code = f.f_code
                if not any(s in code.co_filename for s in ignore_files):
                    for k, v in list(f.f_locals.items()):
                        if id(v) in want and want[id(v)] is v:
                            names[id(v)] = "%s() → %s" % (getattr(code, "co_qualname", code.co_name), k)
                            del want[id(v)]
            except Exception:
                pass
            f = f.f_back


def name_all(targets, ignore=()):
    """Referrer paths from a module global, an object attribute, a running function's
    local variable or a closure to each of `targets`: {id(target): name}. Walks up one
    level per step for all targets at once, so each step is one scan of the heap
    (gc.get_referrers), whatever the number of targets. Closures, hooks, partials, bound
    methods and generators are walked through (`Linear._forward_hooks:
    install_tap.<locals>.on_forward → store`); a path that ends at one of them with no
    holder above is named from it."""
    modules = _module_dicts()
    names = {}
    partial = {}  # tid -> the best path below a function-like holder, where nothing names it
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
            if id(r) in skip:
                continue
            kind = _type_name(type(r))
            for obj, tid, suffix in frontier:
                if tid in names or (id(r), tid) in visited:
                    continue
                try:
                    if kind in ("frame", "function", "cell", "generator", "coroutine", "async_generator", "method", "builtin_function_or_method", "partial"):
                        step = _through(r, obj, suffix)
                        if step is None:
                            continue
                        visited.add((id(r), tid))
                        down, terminal = step
                        if terminal is not None:
                            names[tid] = terminal
                            continue
                        if kind != "cell":
                            # A holder's path reads `holder: label → variable`.
                            down = ": " + down
                            partial[tid] = down
                        nxt.append((r, tid, down))
                    elif type(r) is dict or (isinstance(r, dict) and type(r) in _CONTAINER_TYPES):
                        key = _key_of(r, obj)
                        if key is None:
                            continue
                        visited.add((id(r), tid))
                        if id(r) in modules:
                            names[tid] = "%s.%s%s" % (modules[id(r)], key, suffix)
                        else:
                            nxt.append((r, tid, _in_dict(key, obj, suffix)))
                    elif type(r) in (list, tuple, collections.deque):
                        key = _key_of(r, obj)
                        if key is not None:
                            visited.add((id(r), tid))
                            nxt.append((r, tid, "[%d]%s" % (key, suffix)))
                    elif isinstance(r, type) and type(obj) is dict and suffix.startswith("['"):
                        # A class attribute: `obj` is the class's own namespace.
                        if any(x is obj for x in gc.get_referents(r)):
                            attr, rest = suffix[2:].split("']", 1)
                            names[tid] = "%s.%s%s" % (_type_name(r), attr, rest)
                    else:
                        # An object's attribute: in its __dict__ or inline (Python 3.11+), or a slot.
                        key = _attr_key(r, obj, suffix)
                        owner = _owner_label(r, modules)
                        if isinstance(key, tuple):
                            names[tid] = "%s.%s%s" % (owner, key[1], key[2])
                        elif isinstance(key, str):
                            names[tid] = "%s.%s%s" % (owner, key, suffix)
                except Exception:
                    continue  # an odd referrer: the next one may name it
        # At most MAX_FRONTIER ways up per target, tuples last: tuples referring to
        # tuples (constants, MROs, argument packs) would multiply the ways at each level.
        nxt.sort(key=lambda f: type(f[0]) is tuple)
        per = collections.Counter()
        frontier = []
        for f in nxt:
            if f[1] not in names and per[f[1]] < MAX_FRONTIER:
                per[f[1]] += 1
                frontier.append(f)
        skip.update((id(nxt), id(frontier)))
    _running_frames(targets, names)
    for tid, down in partial.items():
        names.setdefault(tid, down.lstrip(": "))
    return {tid: _pretty(n) for tid, n in names.items()}


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


GATE_WAIT = 5.0       # seconds a census waits for backward passes in flight to end
BACKWARD_WAIT = 60.0  # seconds a backward waits for a census walking graphs, at most


class _Gate:
    """A gate around autograd's entry points: backward passes count themselves in and
    out; a census that walks graphs waits until none is in flight (GATE_WAIT at most) and
    holds new ones (BACKWARD_WAIT at most) until it is done. Backward frees the tensors
    saved in the very graphs a census reads: with the gate, a census taken on any thread
    reads whole graphs, and one that could not get it says so instead of guessing."""

    def __init__(self):
        import threading

        self.cv = threading.Condition()
        self.inflight = 0
        self.held = False
        self.local = threading.local()
        self.installed = False

    def enter(self):
        depth = getattr(self.local, "depth", 0)
        self.local.depth = depth + 1
        if depth:
            return  # a backward inside a backward (a hook): counted once
        with self.cv:
            if self.held:
                self.cv.wait_for(lambda: not self.held, timeout=BACKWARD_WAIT)
            self.inflight += 1

    def leave(self):
        self.local.depth = getattr(self.local, "depth", 1) - 1
        if self.local.depth:
            return
        with self.cv:
            self.inflight = max(0, self.inflight - 1)
            self.cv.notify_all()

    def acquire(self, timeout=None):
        """Hold the gate for a census: "ok", or why not ("timeout": a backward pass ran
        all along; "inside backward": the census runs within one)."""
        if getattr(self.local, "depth", 0):
            return "inside backward"
        with self.cv:
            if not self.cv.wait_for(lambda: self.inflight == 0 and not self.held, GATE_WAIT if timeout is None else timeout):
                return "timeout"
            self.held = True
            return "ok"

    def release(self):
        with self.cv:
            self.held = False
            self.cv.notify_all()


_GATE = _Gate()


def install_gate(autograd):
    """Wrap the engine call that torch.autograd.backward and torch.autograd.grad share
    (`_engine_run_backward`, in torch.autograd and torch.autograd.graph) so that backward
    passes go through the gate. Idempotent; nothing happens where torch lacks it."""
    graph = getattr(autograd, "graph", None) or sys.modules.get("torch.autograd.graph")
    original = getattr(autograd, "_engine_run_backward", None) or getattr(graph, "_engine_run_backward", None)
    if original is None or getattr(original, "_diagnose_gate", False):
        return

    def _engine_run_backward(*args, **kwargs):
        try:
            _GATE.enter()
        except Exception:
            return original(*args, **kwargs)
        try:
            return original(*args, **kwargs)
        finally:
            try:
                _GATE.leave()
            except Exception:
                pass

    _engine_run_backward.__wrapped__ = original
    _engine_run_backward._diagnose_gate = True
    for m in (autograd, graph):
        if m is not None and getattr(m, "_engine_run_backward", None) is original:
            m._engine_run_backward = _engine_run_backward
    _GATE.installed = True


def census(epoch, light=False, graphs=True):
    """Take a census now, the program's other threads paused, its warnings silenced;
    returns it as a dict (with "error" if it failed). `light`: the dataset's containers
    only (a forked DataLoader worker). `graphs`: walk the autograd graphs of tensors,
    once the autograd gate is held (no backward runs meanwhile); where the gate is not
    installed, only in the training loop's own thread (`graphs="thread"`), and where it
    cannot be had, not at all (said in the result's "graph_gate")."""
    # No cycle collection during the census: the census's own short-lived objects would
    # be promoted to the old generation, and a DataLoader worker forked afterwards would
    # then run a full collection, writing to (copying) every page of objects it shares
    # with the trainer: its USS doubled from the census on (37 -> 75 MiB, 4 workers).
    collecting = gc.isenabled()
    gc.disable()
    gate = None
    interval = sys.getswitchinterval()
    try:
        if graphs and not light and sys.modules.get("torch") is not None:
            if _GATE.installed:
                gate = _GATE.acquire()
                if gate != "ok":
                    graphs = False
            elif graphs != "thread":
                gate, graphs = "not installed", False
        sys.setswitchinterval(CENSUS_SWITCH_INTERVAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = _light_census(epoch) if light else _census(epoch, bool(graphs))
            if gate is not None:
                r["graph_gate"] = gate
            return r
    finally:
        if collecting:
            gc.enable()
        sys.setswitchinterval(interval)
        if gate == "ok":
            _GATE.release()


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
        # First, before the census's own allocations are traced too.
        line_rows = _line_rows()
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
        # A short list of large arrays (one 8 MiB prediction kept per epoch) is followed
        # too: shorter containers are scanned for tensors and arrays (numpy arrays are not
        # tracked by gc: only a container reaches them), and those holding HEAVY_BYTES of
        # them join the long ones.
        containers.extend(_heavy_short(objs, arrays, seen, types, skipped))
        # Containers gc does not track (a dict of numpy arrays) and arrays held as an
        # attribute's value, reached through what gc tracks.
        untracked, values, reach = _reach_untracked(objs, counts, arrays, seen, types, skipped)
        containers.extend(untracked)
        result["searched"] = reach
        hook_rows = _hooks(objs, counts, skipped)
        result["objects"] = len(objs)
        del objs
        # Leaves gc does not track (arrays, bytes, str) are reached through the containers;
        # tensors with a graph found there are their container's, not lone ones.
        root_ids = {id(r) for r in graph_roots}
        contained = set()
        for c in containers:
            items = list(c.values() if isinstance(c, dict) else c)
            if not _holds_arrays(items, arrays):  # no tensor or array here (a dict of a million strings)
                continue
            for it in items:
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
        rows.extend(_value_rows(values, (containers, by_id, values, graph_roots)))
        rows.extend(hook_rows)
        rows.extend(line_rows)
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


REACH_MAX = 500_000    # owners whose referents are searched for untracked holders, per census
REACH_DICT_MAX = 4096  # a tracked dict's values are searched when it is this small (an instance's __dict__)
VALUE_BYTES = 1 << 20  # an array held as an attribute's value is followed from this size
MAX_VALUES = 64        # such arrays reported per census, the largest first
_HEAPTYPE = 1 << 9     # Py_TPFLAGS_HEAPTYPE: a class defined in Python
_TYPE_FLAGS = type.__dict__["__flags__"].__get__
def _cell_type():
    x = 0
    return type((lambda: x).__closure__[0])


_CELL = _cell_type()


def _reach_untracked(objs, counts, arrays, seen, types, skipped):
    """What gc does not track, reached through the referents of what it does: the
    attributes of instances of classes defined in Python (their __dict__, inline values
    or __slots__), modules' globals, and closure cells. Returns (untracked dicts worth
    following: MIN_ITEMS items or HEAVY_BYTES of arrays; {id: array} of tensors and
    arrays of VALUE_BYTES or more held directly; what was searched). Untracked arrays met
    are added to the type rows (`seen`: each buffer once)."""
    searched = {"untracked": False, "owners": 0, "truncated": False}
    if not hasattr(gc, "get_referents"):
        return [], {}, searched
    owner_types = set()
    for t in counts:
        try:
            if t is pytypes.ModuleType or t is _CELL or (_TYPE_FLAGS(t) & _HEAPTYPE and not (arrays and issubclass(t, arrays))):
                owner_types.add(t)
        except Exception:
            skipped["types"][_type_label(t)] += 1
    owners = [o for o in objs if type(o) in owner_types]
    if len(owners) > REACH_MAX:
        owners = owners[:REACH_MAX]
        searched["truncated"] = True
    searched["owners"] = len(owners)
    refs = gc.get_referents(*owners)
    del owners
    small = [r for r in refs if type(r) is dict and len(r) <= REACH_DICT_MAX and gc.is_tracked(r)]
    refs.extend(gc.get_referents(*small))
    del small
    dicts, values = {}, {}
    is_array = {}
    wanted = {dict}
    for t in set(map(type, refs)):
        try:
            if arrays and issubclass(t, arrays):
                wanted.add(t)
                is_array[t] = True
        except Exception:
            pass
    refs = [r for r in refs if type(r) in wanted]  # at C speed, nearly
    for r in refs:
        t = type(r)
        if t is dict:
            if r and id(r) not in dicts and not gc.is_tracked(r):
                dicts[id(r)] = r
            continue
        if id(r) in values:
            continue
        try:
            label, size = _leaf_bytes(r, seen, arrays)
            if not gc.is_tracked(r):
                _add(types, label, size)
            if (size or _storage_nbytes(r)) >= VALUE_BYTES:
                values[id(r)] = r
        except Exception:
            skipped["objects"] += 1
    del refs
    out = []
    for d in dicts.values():
        try:
            held = 0
            # Only dicts holding arrays are walked item by item (a dict of a million
            # strings is not): the types of its values are read at C speed first.
            vals = list(d.values())
            if not _holds_arrays(vals, arrays):
                if len(d) >= MIN_ITEMS:
                    out.append(d)
                continue
            for v in vals:
                t = type(v)
                a = is_array.get(t)
                if a is None:
                    a = is_array[t] = _is_array(v, arrays)
                if a:
                    label, size = _leaf_bytes(v, seen, arrays)
                    if not gc.is_tracked(v):
                        _add(types, label, size)
                    held += size or _storage_nbytes(v)
            if len(d) >= MIN_ITEMS or held >= HEAVY_BYTES:
                out.append(d)
        except Exception:
            skipped["objects"] += 1
    searched["untracked"] = True
    return out, values, searched


_PLAIN = {int, float, str, bytes, bool, type(None), tuple, complex}


def _holds_arrays(items, arrays):
    """Whether any of `items` is a tensor or an array: their types read at C speed."""
    if not arrays:
        return False
    for t in set(map(type, items)) - _PLAIN:
        try:
            if issubclass(t, arrays):
                return True
        except Exception:
            pass
    return False


def _value_rows(values, ignore):
    """Arrays and tensors held directly as an attribute's value (or a global, or in a
    closure), named by their holder: rows of kind "value", so that one array made larger
    each epoch (`self.val_probs = np.concatenate([self.val_probs, p])`) is followed by
    its name though it is a new object every time. Parameters and tensors with a graph
    (those are followed as graphs) are left out."""
    cands = []
    for v in values.values():
        try:
            if hasattr(v, "grad_fn") and (v.grad_fn is not None or v.requires_grad):
                continue
            cands.append((_storage_nbytes(v), v))
        except Exception:
            continue
    cands.sort(key=lambda c: -c[0])
    cands = cands[:MAX_VALUES]
    known = _state.setdefault("values", {})
    key = lambda v: (id(v), _storage_nbytes(v), tuple(getattr(v, "shape", ())))
    todo = [v for _, v in cands if key(v) not in known][:NAME_PER_CENSUS]
    if todo:
        names = name_all(todo, ignore=ignore + (cands, todo))
        for v in todo:
            known[key(v)] = names.get(id(v))
    rows = []
    live = set()
    for size, v in cands:
        k = key(v)
        live.add(k)
        name = known.get(k)
        if not name or "diagnose_census" in name:
            continue
        shape = getattr(v, "shape", ())
        rows.append({"name": name, "kind": "value", "type": "Tensor" if hasattr(v, "untyped_storage") else _type_name(type(v)),
                     "items": int(shape[0]) if len(shape) else 1, "bytes": int(size), "allocated_at": _value_made_at(v)})
    for k in [k for k in known if k not in live]:
        del known[k]
    return rows


def _value_made_at(v):
    """With tracemalloc: where the array held now was made (numpy's array objects are
    traced; torch's tensors, made in C++, are not)."""
    try:
        import tracemalloc

        tb = tracemalloc.get_object_traceback(v) if tracemalloc.is_tracing() else None
        if tb is None:
            return None
        frames = list(tb)[::-1]
        own = [f for f in frames if "site-packages" not in f.filename and "/lib/python" not in f.filename] or frames
        return "item %s" % " <- ".join("%s:%d" % (os.path.basename(f.filename), f.lineno) for f in own[:3])
    except Exception:
        return None


LINES = 24  # lines reported per census, the largest first (and every line reported before)


def _line_rows():
    """With tracemalloc: the program's own lines by the bytes their allocations still
    hold (numpy reports its buffers to tracemalloc; torch's C++ allocations are not
    traced): rows of kind "line", so that a line whose live bytes grow from epoch end to
    epoch end is said, as memray's leak view does. Lines in site-packages, the standard
    library and ours are left out."""
    try:
        import linecache
        import tracemalloc

        if not tracemalloc.is_tracing():
            return []
        # The raw traces, grouped here by their innermost frame: 5x faster than
        # Snapshot.statistics("lineno") on a process that imported torch (530 k traces).
        get = getattr(tracemalloc, "_get_traces", None)
        raw = get() if get is not None else tracemalloc.take_snapshot().traces._traces
    except Exception:
        return []
    by = {}
    for tr in raw:
        try:
            f = tr[2][0]
        except Exception:
            continue
        v = by.get(f)
        if v is None:
            by[f] = [tr[1], 1]
        else:
            v[0] += tr[1]
            v[1] += 1
    del raw
    own = {}
    for (name, lineno), (size, count) in by.items():
        if "site-packages" in name or "/lib/python" in name or name.startswith("<") or any(o in name for o in _OUR_FILES):
            continue
        own["%s:%d" % (os.path.basename(name), lineno)] = (size, count, name, lineno)
    seen = _state.setdefault("lines", set())
    ranked = sorted(own.items(), key=lambda kv: -kv[1][0])
    rows = []
    for i, (key, (size, count, name, lineno)) in enumerate(ranked):
        if i >= LINES and key not in seen:
            continue
        seen.add(key)
        text = linecache.getline(name, lineno).strip()
        rows.append({"name": key, "kind": "line", "type": text[:80], "items": count, "bytes": size})
    return rows


HOOK_ATTRS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
              "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
HOOKS_MIN = 2  # a hook dict is followed once it holds this many hooks


def _hooks(objs, counts, skipped):
    """nn.Module hook dicts holding HOOKS_MIN hooks or more, and torch's global module
    hooks: rows of kind "hooks" (items: the hooks), with where the newest was made, so
    that hooks registered anew each epoch and never removed are said."""
    torch = sys.modules.get("torch")
    Module = getattr(getattr(torch, "nn", None), "Module", None)
    if not isinstance(Module, type):
        return []
    mtypes = set()
    for t in counts:
        try:
            if issubclass(t, Module):
                mtypes.add(t)
        except Exception:
            pass
    found = []  # (holder object, attr, hook dict)
    for m in [o for o in objs if type(o) in mtypes] if mtypes else ():
        try:
            d = object.__getattribute__(m, "__dict__")
            for attr in HOOK_ATTRS:
                h = d.get(attr)
                if isinstance(h, dict) and len(h) >= HOOKS_MIN:
                    found.append((m, attr, h))
        except Exception:
            skipped["objects"] += 1
    glob = sys.modules.get("torch.nn.modules.module")
    for attr in dir(glob) if glob is not None else ():
        if attr.startswith("_global_") and attr.endswith("hooks"):
            h = getattr(glob, attr, None)
            if isinstance(h, dict) and len(h) >= HOOKS_MIN:
                found.append((None, attr, h))
    if not found:
        return []
    known = _state.setdefault("hook_names", {})  # id(module) -> name
    todo = [m for m, _, _ in found if m is not None and id(m) not in known][:NAME_PER_CENSUS]
    if todo:
        names = name_all(todo, ignore=(found, todo))
        for m in todo:
            known[id(m)] = names.get(id(m)) or _type_name(type(m))
    rows = []
    for m, attr, h in found:
        owner = "torch.nn.modules.module" if m is None else known.get(id(m)) or _type_name(type(m))
        try:
            fns = list(h.values())
            newest = fns[-1]
            rows.append({"name": "%s.%s" % (owner, attr), "kind": "hooks", "type": attr, "items": len(fns),
                         "bytes": sum(_sizeof(f) for f in fns), "allocated_at": _hook_made_at(newest)})
        except Exception:
            skipped["objects"] += 1
    return rows


def _hook_made_at(f):
    """`hook NAME made at FILE:LINE <- ...` (tracemalloc: where the hook's function
    object was made, and by whom) or `hook NAME defined at FILE:LINE`."""
    label = _callable_label(f)
    try:
        import tracemalloc

        tb = tracemalloc.get_object_traceback(f) if tracemalloc.is_tracing() else None
        if tb is not None:
            frames = list(tb)[::-1]
            own = [x for x in frames if "site-packages" not in x.filename and "/lib/python" not in x.filename] or frames
            return "hook %s made at %s" % (label, " <- ".join("%s:%d" % (os.path.basename(x.filename), x.lineno) for x in own[:3]))
    except Exception:
        pass
    try:
        target = f
        for attr in ("func", "__func__"):
            target = getattr(target, attr, target)
        code = target.__code__
        return "hook %s defined at %s:%d" % (label, os.path.basename(code.co_filename), code.co_firstlineno)
    except Exception:
        return "hook %s" % label


MAX_GRAPH_ROOTS = 256  # tensors with a graph walked for lone graphs, per census


HEAVY_BYTES = 1 << 20  # a short container holding this much in arrays is followed


def _heavy_short(objs, arrays, seen, types, skipped):
    """Containers shorter than MIN_ITEMS that hold HEAVY_BYTES or more of tensors and
    arrays, or (lists, sets, deques) a tensor with an autograd graph (its graph holds the forward's activations:
    a few logits kept with grad on are megabytes the tensor's own bytes do not show); the
    untracked arrays met on the way are added to the type rows (`seen`: each storage once)."""
    if not arrays:
        return []
    is_array = {}  # type -> whether it is a tensor or array type
    heavy = []
    for c in objs:
        t = type(c)
        if t not in _CONTAINER_TYPES:
            continue
        try:
            n = len(c)
            if not n or n >= MIN_ITEMS:
                continue
            held = 0
            graph = False
            for it in (c.values() if isinstance(c, dict) else c):
                it_type = type(it)
                a = is_array.get(it_type)
                if a is None:
                    a = is_array[it_type] = _is_array(it, arrays)
                if not a:
                    continue
                label, size = _leaf_bytes(it, seen, arrays)
                if not gc.is_tracked(it):  # tracked ones are in the type rows already
                    _add(types, label, size)
                held += size if size else _storage_nbytes(it)
                graph = graph or getattr(it, "grad_fn", None) is not None
            # Not a dict for its graphs alone: an instance's or module's attributes
            # (`STATS.total_val_loss`, a loss summed with its graph) would hide the tensor
            # from the lone graphs that name it, and never grow in length themselves.
            if held >= HEAVY_BYTES or (graph and not isinstance(c, dict)):
                heavy.append(c)
        except Exception:
            skipped["objects"] += 1
    return heavy


def _storage_nbytes(it):
    """An array's bytes when its storage was already counted elsewhere."""
    try:
        return it.untyped_storage().nbytes() if hasattr(it, "untyped_storage") else it.nbytes
    except Exception:
        return 0


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
        # Few nodes can hold much: a loss summed over a small model's batches grows by a
        # dozen nodes a batch and megabytes of saved activations.
        if count >= GRAPH_MIN_NODES or size >= HEAVY_BYTES:
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
    DataLoader worker), whose containers are copies to be followed afresh, or for a new
    watch of this process (`watching()`, each test of the pytest plugin)."""
    _state["last_len"] = None
    _state["tracked"] = {}
    _state["values"] = {}
    _state["hook_names"] = {}
    _state["taken"] = set()


_TAKING = __import__("threading").Lock()


def census_to(epoch, folder, role="main", light=False, graphs=True, rank=None):
    """Take a census and write it to FOLDER/epoch-N.json, epoch-N-rank-R.json for a
    distributed rank other than the first process, or epoch-N-worker-PID.json for a
    worker (atomically). Never raises."""
    key = (int(epoch), role, os.getpid())
    with _TAKING:
        # One census per epoch and process: the training loop's and a request's for
        # the same epoch may come at once (a rank, a late ack).
        if key in _state.setdefault("taken", set()):
            return None
        _state["taken"].add(key)
    try:
        r = census(epoch, light, graphs)
        r["role"] = role
        if rank is not None:
            r["rank"] = int(rank)
        os.makedirs(folder, exist_ok=True)
        if role == "main":
            name = "epoch-%d.json" % int(epoch)
        elif role == "rank" and rank is not None:
            name = "epoch-%d-rank-%d.json" % (int(epoch), int(rank))
        else:
            name = "epoch-%d-worker-%d.json" % (int(epoch), os.getpid())
        path = os.path.join(folder, name)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "w") as f:
            json.dump(r, f)
        os.replace(tmp, path)
        _state["written"] = int(epoch)
        return r
    except Exception:
        return None
