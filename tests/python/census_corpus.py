"""A robustness corpus for the object census (python/diagnose_census.py): a process that
has imported and used numpy (numpy.random, whose Cython metatype answers __module__ with a
descriptor), pandas, the standard library's odd corners, objects that raise from every
special method or lie about their class, metaclasses with properties, recursive
containers, a dict of 1 M entries, torch tensors, views, modules, optimizers and a
DataLoader iterator with workers, Lightning and the Hugging Face Trainer's classes.

Takes two censuses in-process and prints one JSON line: what each census reported
(error, skipped objects and types, seconds). Exits 1 if a census failed.
"""
import collections
import dataclasses
import enum
import gc
import json
import os
import sys
import typing
import warnings
import weakref

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import diagnose_census  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

np.random.seed(0)
rng = np.random.default_rng(0)
ARRAYS = [rng.standard_normal(100) for _ in range(20)]
VIEW = ARRAYS[0][::2]
FRAME = pd.DataFrame({"a": np.arange(1000), "b": rng.standard_normal(1000)})
SERIES = FRAME["b"].rolling(3).mean()
CATEGORIES = pd.Categorical(["x", "y"] * 50)


class Color(enum.Enum):
    RED = 1
    GREEN = 2


@dataclasses.dataclass(slots=True)
class Slotted:
    x: int
    y: list


T = typing.TypeVar("T")


class Box(typing.Generic[T]):
    def __init__(self, v):
        self.v = v


class Hostile:
    """Raises from everything a census might call."""

    def __getattr__(self, name):
        raise RuntimeError("no attribute for you: " + name)

    def __getattribute__(self, name):
        if name in ("__class__", "__dict__", "__len__", "__sizeof__"):
            raise RuntimeError("hostile " + name)
        return object.__getattribute__(self, name)

    def __len__(self):
        raise RuntimeError("no len")

    def __eq__(self, other):
        raise RuntimeError("no eq")

    def __hash__(self):
        raise RuntimeError("no hash")

    def __bool__(self):
        raise RuntimeError("no bool")

    def __sizeof__(self):
        raise RuntimeError("no sizeof")

    def __repr__(self):
        raise RuntimeError("no repr")


class Liar:
    """Claims to be a list."""

    @property
    def __class__(self):
        return list


class Meta(type):
    @property
    def __name__(cls):
        raise RuntimeError("no name")

    @property
    def __module__(cls):
        raise RuntimeError("no module")


class Odd(metaclass=Meta):
    pass


class DescriptorModule(type):
    __module__ = property(lambda cls: 42)


class WithDescriptorModule(metaclass=DescriptorModule):
    pass


class Holder:
    def __init__(self):
        self.hostile = [Hostile() for _ in range(20)]
        self.liars = [Liar() for _ in range(20)]
        self.odd = [Odd() for _ in range(20)]
        self.weird = [WithDescriptorModule() for _ in range(20)]


HOLDER = Holder()
RECURSIVE = []
RECURSIVE.append(RECURSIVE)
RECURSIVE.extend([RECURSIVE] * 20)
SELF_DICT = {}
SELF_DICT["me"] = SELF_DICT
BIG = {i: str(i) for i in range(1_000_000)}
PROXY = weakref.proxy(HOLDER)
SLOTTED = [Slotted(i, [i]) for i in range(50)]
BOXES = [Box[int](i) for i in range(50)]
COLORS = [Color.RED, Color.GREEN] * 10
DEQUE = collections.deque(range(100))
ORDERED = collections.OrderedDict((i, i) for i in range(100))

model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(4))
model(torch.randn(2, 3, 16, 16))
opt = torch.optim.Adam(model.parameters())
loss = model(torch.randn(2, 3, 16, 16)).sum()
loss.backward()
opt.step()
T_BASE = torch.randn(64, 64)
T_VIEWS = [T_BASE[i] for i in range(32)]
KEPT_WITH_GRAPH = [model(torch.randn(2, 3, 16, 16)) for _ in range(20)]
STORAGE = torch.TypedStorage(10)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 3)), batch_size=8, num_workers=2)
ITER = iter(loader)
next(ITER)

try:
    import pytorch_lightning as pl
    import transformers

    LIGHTNING = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    HF_MODEL = transformers.BertForSequenceClassification(transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
except ImportError as e:  # the set-up installs both; a missing one is reported
    print("frameworks missing: %s" % e, file=sys.stderr)
    sys.exit(2)

# Issue 25's shapes: untracked holders, closures, hooks, partials, generators, threads.
import functools  # noqa: E402
import threading  # noqa: E402


class NumpyCache:
    def __init__(self):
        self.cache = {}          # ints to arrays: gc does not track this dict
        self.val_probs = np.zeros((0, 8), np.float32)
        self.objs = np.empty(40, dtype=object)  # an array of objects


class SlotHolder:
    __slots__ = ("held", "arr")

    def __init__(self):
        self.held = {}
        self.arr = np.zeros(10)


def install_tap(module):
    store = []

    def on_forward(mod, inputs, output):
        store.append(output)

    module.register_forward_hook(on_forward)
    return None


def gen_keeper():
    kept = []
    while True:
        kept.append(np.zeros(4))
        yield len(kept)


NUMPY_CACHE = NumpyCache()
SLOT_HOLDER = SlotHolder()
TAP = install_tap(model[0])


def holders():
    """A partial, a thread and a bound method whose lists nothing else names."""
    partial_buf, thread_buf, bound_buf = [], [], []
    partial = functools.partial(lambda buf, x: buf.append(x), partial_buf)
    thread = threading.Thread(target=lambda: thread_buf, name="keeper", daemon=True)
    return partial, thread, {7: bound_buf.append}, thread_buf


PARTIAL, THREAD, BOUND_APPEND, _thread_buf = holders()
del _thread_buf
GEN = gen_keeper()
next(GEN)
HOSTILE_CELL = (lambda h: (lambda: h))(Hostile())
HOSTILE_PARTIAL = functools.partial(print, Hostile())
diagnose_census.install_gate(torch.autograd)

out = []
for epoch in range(2):
    for i in range(40):
        NUMPY_CACHE.cache[epoch * 40 + i] = np.ones(64, np.float32)
        SLOT_HOLDER.held[epoch * 40 + i] = np.ones(16)
    NUMPY_CACHE.val_probs = np.concatenate([NUMPY_CACHE.val_probs, np.ones((40000, 8), np.float32)])
    model[0].register_forward_hook(lambda m, i, o: None)
    model(torch.randn(2, 3, 16, 16))
    for _ in range(20):
        PARTIAL(np.zeros(3))
        next(GEN)
        THREAD._target().append(epoch)  # the list only the thread's target holds
        BOUND_APPEND[7](epoch)
        model(torch.randn(2, 3, 16, 16))  # the tap keeps each output
    model(torch.randn(2, 3, 16, 16)).sum().backward()  # through the gate

    RECURSIVE.extend([RECURSIVE] * 20)  # grows: the second census names it
    HOLDER.hostile.extend(Hostile() for _ in range(20))
    # Every warning the census causes (TypedStorage's deprecation, ...) is recorded here,
    # where the program would see it: there must be none.
    # Cycle collections while the census runs would promote its own short-lived objects
    # (and make DataLoader workers forked afterwards copy every page they share): none
    # until it has ended.
    gc_runs = lambda: [g["collections"] for g in gc.get_stats()]
    gc.collect()  # counts at zero: what runs next is the census's
    before = gc_runs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = diagnose_census.census(epoch)
    during = [b - a for a, b in zip(before, gc_runs())]
    out.append({k: r.get(k) for k in ("error", "skipped_objects", "skipped_types", "seconds", "objects", "graph_gate", "searched")}
               | {"containers": [c["name"] for c in r.get("containers", [])], "types": len(r.get("types", [])),
                  "warnings": [str(w.message)[:80] for w in caught], "collections_during": during,
                  "gc_enabled_after": gc.isenabled()})
del ITER
print(json.dumps(out))
sys.exit(1 if any(c["error"] or c["warnings"] for c in out) else 0)
