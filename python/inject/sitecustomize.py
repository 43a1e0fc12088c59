"""Put first on PYTHONPATH by `diagnose watch` (unless --no-inject): runs the environment's
own sitecustomize first, then:

In the first Python process of the watched tree (the owner):
- finds epochs by itself: every PyTorch training loop starts an epoch by iterating its
  training DataLoader again, whatever framework drives it (Lightning, the Hugging Face
  Trainer, a plain loop). A loader is known by its family: the same DataLoader object,
  or one made anew at the same place (the same call stack) over the same dataset, or
  over a new one where the old one is gone (`for x, y in DataLoader(ds, ...)` inside the
  epoch loop). The training family is the one whose passes run backward() (among
  families alike in that, the one with the most batches); a new pass over it ends the
  epoch before, passes over the others are validation. These boundaries go to diagnose's
  marker socket, marked as found by us: explicit markers win over them, and they win
  over log lines.
- with --native-sites (diagnose preloads its sampling jemalloc), dumps the process's
  sampled native heap at each epoch end (diagnose_native.py);
- with --python-objects, starts a small listener thread that takes a census of the
  process's live objects when diagnose asks (at each epoch end); processes it forks
  (DataLoader workers with the fork start method) answer for themselves. A gate around
  autograd's entry points lets a census taken on that thread walk autograd graphs
  safely: it waits for backward passes in flight and holds new ones while it walks.

In every other Python process of the tree (light: it only reports): when the process
calls torch.distributed.init_process_group, or has RANK/LOCAL_RANK in its environment
and calls it or was started by torchrun, it writes its rank where diagnose reads it
(rank-<pid> in the helper's folder), so ranks started by torch.multiprocessing.spawn,
torchrun, accelerate or Lightning are `rank N`; from then on it finds its own epochs as
above (marked rank=N) and, with --python-objects, answers census requests.

Never raises: a failure is written to stderr once and training goes on.
"""


def _diagnose_start():
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    try:  # the sitecustomize this one shadows, if the environment has one
        import importlib.machinery
        import importlib.util

        path = [p for p in sys.path if os.path.abspath(p or ".") != here]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is not None and spec.origin and os.path.dirname(os.path.abspath(spec.origin)) != here:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    except Exception as e:
        sys.stderr.write("diagnose: the environment's sitecustomize failed: %s\n" % e)
    try:
        folder = os.environ.get("DIAGNOSE_CENSUS_DIR")
        out = os.environ.get("DIAGNOSE_CENSUS_OUT")
        if not folder or not out:
            return
        first = not os.environ.get("DIAGNOSE_CENSUS_OWNER")
        owner = os.getpid()
        if first:
            os.environ["DIAGNOSE_CENSUS_OWNER"] = str(owner)  # children inherit: they are not first
        objects = os.environ.get("DIAGNOSE_OBJECTS") == "1"
        workers = os.environ.get("DIAGNOSE_CENSUS_WORKERS", "light")  # light or full
        native = os.environ.get("DIAGNOSE_NATIVE_DUMPS") if first else None  # --native-sites: where dumps go
        tracing = {"wanted": first and objects and os.environ.get("DIAGNOSE_TRACEMALLOC") == "1"}

        def start_tracing():
            """--python-tracemalloc: trace once torch is imported (or from the first
            DataLoader made, boundary sent or census asked for), not from the first
            line: traced, `import torch, numpy` took 31 s here instead of 2. What the
            program makes after its imports (its model, its lists, its epochs) is traced.
            DIAGNOSE_TRACEMALLOC_FROM=start traces from the first line."""
            if tracing.pop("wanted", False) and os.getpid() == owner:
                import tracemalloc

                tracemalloc.start(int(os.environ.get("DIAGNOSE_TRACEMALLOC_FRAMES", "4")))

        if os.environ.get("DIAGNOSE_TRACEMALLOC_FROM") == "start":
            start_tracing()
        import atexit
        import socket
        import threading

        sys.path.insert(0, here)
        import diagnose_census
        import diagnose_gpu

        if native:
            import diagnose_native
        del sys.path[0]
        gpu_at = _gpu_recorder(diagnose_gpu, owner) if first else (lambda epoch: None)
        marker = os.environ.get("DIAGNOSE_MARKER_SOCKET")
        # The socket served, whether the program is ending, the last boundary diagnose
        # has sampled (it answers `ack N`), and this process's distributed rank.
        state = {"exiting": False, "acked": -1, "rank": None, "sock": None, "active": first}
        acked = threading.Condition()

        def role_here():
            if os.getpid() != owner:
                return "worker"
            return "main" if first else "rank"

        def serve(role):
            """Bind census-<pid>.sock and answer `census N` and `ack N` on a daemon thread."""
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(os.path.join(folder, "census-%d.sock" % os.getpid()))
            trainer = role in ("main", "rank")

            def listen():
                while True:
                    try:
                        data = sock.recv(256).decode("ascii", "replace").split()
                    except OSError:
                        return  # the socket was closed
                    try:
                        if len(data) != 2 or not data[1].isdigit():
                            continue
                        start_tracing()
                        if data[0] == "census" and role == "main":
                            gpu_at(int(data[1]))  # asked by diagnose (explicit markers)
                            native_dump(int(data[1]))
                        if data[0] in ("ack", "ack+census"):
                            # A census with an ack is the waiting training loop's to take;
                            # if it has stopped waiting, taken here.
                            epoch = int(data[1])
                            with acked:
                                state["acked"] = max(state["acked"], epoch)
                                waiting = state.get("waiting") == epoch
                                state["census_for"] = epoch if data[0] == "ack+census" and waiting else None
                                acked.notify_all()
                            # (A worker takes its own on its `census N` request.)
                            if data[0] == "ack+census" and not waiting and role == "main":
                                native_dump(epoch)
                            if data[0] == "ack+census" and not waiting and trainer and objects and not state["exiting"] and diagnose_census._state.get("written") != epoch:
                                take_census(epoch, role, False)
                            if not waiting and role == "main":
                                gpu_at(epoch)
                        # Once the program is ending its objects are being torn down: a
                        # census then (a late request) would report its containers gone.
                        elif data[0] == "census" and objects and not state["exiting"] and diagnose_census._state.get("written") != int(data[1]):
                            # (Not when the program took this epoch's census itself: census=True.)
                            light = role == "worker" and workers != "full"
                            # Here the program runs on: the census takes the autograd gate
                            # (it waits for a backward in flight and holds new ones) before
                            # it walks graphs, and says so when it could not.
                            take_census(int(data[1]), role, light)
                    except Exception as e:
                        sys.stderr.write("diagnose: census failed: %s\n" % e)

            threading.Thread(target=listen, name="diagnose-census", daemon=True).start()
            return sock

        def native_dump(epoch):
            """--native-sites: the main process's sampled native heap at this epoch end."""
            if native and os.getpid() == owner and not state["exiting"]:
                try:
                    diagnose_native.dump(epoch, native)
                except Exception as e:
                    if not state.get("native_failed"):
                        state["native_failed"] = True
                        sys.stderr.write("diagnose: native heap dump failed: %s\n" % e)

        def take_census(epoch, role, light, graphs=True):
            # graphs: "thread" in the training loop's own thread (safe without the gate).
            r = diagnose_census.census_to(epoch, out, role, light, graphs, rank=state["rank"])
            cuda = (r or {}).get("cuda")
            if cuda and marker and role == "main":  # torch.cuda's figures onto the GPU ledger
                line = "phase census %d gpu_allocated=%d gpu_reserved=%d gpu_peak_allocated=%d gpu_peak_reserved=%d" % (
                    epoch, cuda["allocated"], cuda["reserved"], cuda["peak_allocated"], cuda["peak_reserved"])
                state["sock"].sendto(line.encode("ascii"), marker)

        def activate():
            """Serve census requests and acks in this process (the owner at start; a rank
            once it is known)."""
            if state["sock"] is None:
                state["sock"] = serve(role_here())
            state["active"] = True

        if first:
            activate()
        # As soon as the main module has finished: threading's exit hook runs before
        # atexit's handlers (Python 3.9+); atexit where it is missing.
        ending = getattr(threading, "_register_atexit", atexit.register)
        ending(lambda: state.update(exiting=True))

        def send(line, wait_for=None):
            """A boundary to diagnose; with `wait_for`, wait (2 s at most) until it has
            sampled the tree, so that the sample shows this moment, not the next pass's
            workers starting; then take the census it asks for here, in the training
            loop's own thread, between two steps."""
            start_tracing()
            if not marker or os.getpid() != owner or not state["active"] or state["sock"] is None:
                return
            try:
                if state["rank"] is not None:
                    line += " rank=%d" % state["rank"]
                state["sock"].sendto(line.encode("ascii"), marker)
                if wait_for is not None:
                    with acked:
                        state["waiting"] = wait_for
                        acked.wait_for(lambda: state["acked"] >= wait_for, timeout=2.0)
                        state["waiting"] = None
                        # A rank takes its census at its own epoch end, always: diagnose's
                        # row for the epoch waits for the slowest rank, and this one runs on.
                        wanted = state.get("census_for") == wait_for or not first
                        state["census_for"] = None
                    if wanted:
                        native_dump(wait_for)
                    if wanted and objects and not state["exiting"]:
                        take_census(wait_for, role_here(), False, graphs="thread")
                    gpu_at(wait_for)  # here, in the training thread, between two steps
            except Exception:
                pass

        def rank_is(rank):
            """This process is distributed rank `rank`: tell diagnose (rank-<pid> in the
            helper's folder, which its tree sampler reads), mark its epochs with it, and,
            outside the owner, start answering as a rank."""
            try:
                rank = int(rank)
                if rank < 0 or os.getpid() != owner or state["rank"] == rank:
                    return
                state["rank"] = rank
                path = os.path.join(folder, "rank-%d" % os.getpid())
                with open(path + ".tmp", "w") as f:
                    f.write("%d\n" % rank)
                os.replace(path + ".tmp", path)
                if not first:
                    activate()
            except Exception as e:
                sys.stderr.write("diagnose: rank not reported: %s\n" % e)

        env_rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", ""))
        # torchrun's ranks (their environment says; not a multiprocessing child that
        # merely inherited it) are ranks from the start; any process once it calls
        # init_process_group.
        spawned = any("multiprocessing" in a for a in getattr(sys, "orig_argv", []))
        if env_rank.isdigit() and not spawned and (not first or os.environ.get("TORCHELASTIC_RUN_ID")):
            rank_is(env_rank)
        _when_imported("torch.distributed", lambda m: _patch_init_process_group(m, rank_is), "ranks will not be reported")
        _install_loader_hook(send, start_tracing)
        _when_imported("torch", lambda _: start_tracing(), "tracemalloc not started")
        _when_imported("torch.autograd", diagnose_census.install_gate, "autograd graphs are walked only at DataLoader epoch ends")

        def forked():
            # A process forked from the trainer (a DataLoader worker with the fork start
            # method): the parent's listener thread is not here and its socket is the
            # parent's; answer for this process from its own.
            try:
                if state["sock"] is not None:
                    state["sock"].close()
                    state["sock"] = None
                diagnose_census.forget()
                if objects and state["active"]:
                    state["sock"] = serve("worker")
            except Exception as e:
                sys.stderr.write("diagnose: census helper not started in a forked worker: %s\n" % e)

        os.register_at_fork(after_in_child=forked)
    except Exception as e:
        sys.stderr.write("diagnose: helper not started: %s\n" % e)


def _patch_init_process_group(dist, rank_is):
    """Wrap torch.distributed.init_process_group: once it returns, the process's rank is
    known (torch.multiprocessing.spawn passes it as an argument, not in the environment)."""
    c10d = getattr(dist, "distributed_c10d", None)
    original = getattr(c10d, "init_process_group", None) or getattr(dist, "init_process_group", None)
    if original is None or getattr(original, "_diagnose", False):
        return

    def init_process_group(*args, **kwargs):
        result = original(*args, **kwargs)
        try:
            rank_is(dist.get_rank())
        except Exception:
            pass
        return result

    init_process_group.__wrapped__ = original
    init_process_group.__doc__ = original.__doc__
    init_process_group._diagnose = True
    for m in (dist, c10d):
        if m is not None and getattr(m, "init_process_group", None) is original:
            m.init_process_group = init_process_group


def _gpu_recorder(diagnose_gpu, owner):
    """With DIAGNOSE_GPU set (stats, or sites for --gpu-sites): a function that writes
    the CUDA allocator's figures of an epoch end (diagnose_gpu.py); with sites, the
    allocation history starts at the first CUDA initialisation."""
    import os

    mode, out = os.environ.get("DIAGNOSE_GPU"), os.environ.get("DIAGNOSE_GPU_OUT")
    if mode not in ("stats", "sites") or not out:
        return lambda epoch: None
    if mode == "sites":
        _when_imported("torch.cuda", diagnose_gpu.start_history, "--gpu-sites: allocation history not started")

    def gpu_at(epoch):
        if os.getpid() == owner:  # not in forked workers: their CUDA is not theirs
            diagnose_gpu.record_to(epoch, out, mode == "sites")

    return gpu_at


# Frames of these files are not where a loader is made: torch's own DataLoader code
# (a subclass's __init__ calling super() is kept), and ours.
_NOT_A_SITE = ("torch/utils/data/", "sitecustomize.py")
SITE_FRAMES = 4  # frames of the call stack that tell loaders apart


def _site():
    """Where a DataLoader is being made: (file, line) of the innermost SITE_FRAMES frames
    outside torch.utils.data, innermost first."""
    import sys

    out = []
    try:
        f = sys._getframe(2)
        while f is not None and len(out) < SITE_FRAMES:
            name = f.f_code.co_filename
            if not any(s in name for s in _NOT_A_SITE):
                out.append((name, f.f_lineno))
            f = f.f_back
    except Exception:
        pass
    return tuple(out) or None


def collect_garbage():
    """Free what waits for Python's cycle collector, so that an epoch end reads what the
    program keeps, not when the collector last ran (the Hugging Face Trainer's evaluation
    outputs, freed by it, read +17 MiB at one epoch end in three)."""
    try:
        import gc

        gc.collect()
    except Exception:
        pass


class _Family:
    """DataLoaders that are one loader to the epochs: the same object, or made anew at
    the same place over the same dataset (or over a new one, the old one gone)."""

    def __init__(self, key, site, dataset):
        import weakref

        self.key = key
        self.site = site
        self.dataset_id = id(dataset)
        try:
            self.dataset = weakref.ref(dataset)
        except TypeError:  # not weak-referenceable: taken as alive
            self.dataset = None

    def dataset_alive_and_not(self, dataset):
        """The family's dataset still lives and is not `dataset`."""
        if self.dataset is None:
            return self.dataset_id != id(dataset)
        d = self.dataset()
        return d is not None and d is not dataset

    def takes(self, site, dataset):
        if site is None or site != self.site:
            return False
        return not self.dataset_alive_and_not(dataset)


class _Passes:
    """Which DataLoader family is the training loader, and the epoch a new pass over it
    ends."""

    MAX_FAMILIES = 64  # families remembered (loaders made at many places: the oldest go)

    def __init__(self, send):
        self.send = send
        self.loaders = {}  # family key -> [passes, batches of its longest pass, batches of this pass]
        self.families = []  # _Family, newest last
        self.train = None  # key of the training family
        self.train_size = 0
        self.epochs = 0    # epochs ended
        self.open_validation = None
        self.started = None  # the family whose pass started last
        self.trained = set()  # families during whose passes backward() ran
        self.next_key = 0

    def backward_runs(self):
        self.trained.add(self.started)

    def family_of(self, loader):
        """The family key of `loader`: kept on the loader; for a new one, the family
        made at the same place over the same dataset, or a new family."""
        key = getattr(loader, "_diagnose_family", None)
        if key is not None:
            return key
        site = getattr(loader, "_diagnose_site", None)
        dataset = getattr(loader, "dataset", None)
        for fam in reversed(self.families):
            if fam.takes(site, dataset):
                key = fam.key
                break
        else:
            key = self.next_key
            self.next_key += 1
            self.families.append(_Family(key, site, dataset))
            if len(self.families) > self.MAX_FAMILIES:
                gone = self.families.pop(0)
                if gone.key not in (self.train, self.started):
                    self.loaders.pop(gone.key, None)
                    self.trained.discard(gone.key)
        try:
            loader._diagnose_family = key
        except Exception:
            pass
        return key

    def ranks_above_train(self, key, size):
        """Whether `key` is more like the training loader than the one taken so far: a
        loader whose passes ran backward() is, whatever its size, than one whose passes
        did not (a validation set larger than the training set); else the larger is."""
        if self.train is None:
            return True
        ours, theirs = key in self.trained, self.train in self.trained
        return ours > theirs or (ours == theirs and size > self.train_size)

    def pass_starts(self, loader):
        key = self.family_of(loader)
        stats = self.loaders.setdefault(key, [0, 0, 0])
        stats[1] = max(stats[1], stats[2])
        stats[2] = 0
        stats[0] += 1
        try:
            size = max(len(loader), stats[1])
        except Exception:  # an iterable dataset: the batches counted so far
            size = stats[1]
        # The training loader (a tie keeps it). One taken before any backward() ran (a
        # sanity pass over the validation loader first) gives way once one has.
        if key == self.train and key not in self.trained and self.trained:
            self.train = max(self.trained, key=lambda k: self.loaders.get(k, [0, 0])[1])
            self.train_size = self.loaders.get(self.train, [0, 0])[1]
        if key == self.train:
            self.train_size = max(self.train_size, size)
        elif self.ranks_above_train(key, size):
            self.train, self.train_size = key, size
        self.started = key
        self.close_validation()
        if key == self.train:
            if stats[0] >= 2:
                epoch = self.epochs
                self.epochs += 1
                collect_garbage()
                self.send("epoch_end %d auto=1" % epoch, wait_for=epoch)
        else:
            self.open_validation = key
            self.send("validation_start %d auto=1" % self.epochs)
        return key, stats

    def pass_ends(self, key):
        if key is not None and key == self.open_validation:
            self.close_validation()

    def close_validation(self):
        if self.open_validation is not None:
            self.open_validation = None
            self.send("validation_end %d auto=1" % self.epochs)


def _install_loader_hook(send, on_loader_made=lambda: None):
    """Patch torch.utils.data's DataLoader.__init__ (where it is made), __iter__ and its
    iterators' __next__ as soon as the program imports them (an import hook: nothing is
    imported early)."""
    import sys

    passes = _Passes(send)

    def patch(module):
        DataLoader = module.DataLoader
        BaseIter = module._BaseDataLoaderIter
        original_init = DataLoader.__init__
        original_iter = DataLoader.__iter__
        original_next = BaseIter.__next__

        def __init__(self, *args, **kwargs):
            try:
                on_loader_made()
                site = _site()
            except Exception:
                site = None
            original_init(self, *args, **kwargs)
            try:
                object.__setattr__(self, "_diagnose_site", site)
            except Exception:
                pass

        def __iter__(self):
            p = None
            try:
                p = passes.pass_starts(self)
            except Exception:
                pass
            it = original_iter(self)
            try:
                it._diagnose_pass = p
            except Exception:
                pass
            return it

        def __next__(self):
            try:
                data = original_next(self)
            except StopIteration:
                passes.pass_ends((getattr(self, "_diagnose_pass", None) or (None,))[0])
                raise
            p = getattr(self, "_diagnose_pass", None)
            if p is not None and p[1] is not None:
                p[1][2] += 1
            return data

        __init__.__wrapped__ = original_init
        __iter__.__wrapped__ = original_iter
        __next__.__wrapped__ = original_next
        DataLoader.__init__ = __init__
        DataLoader.__iter__ = __iter__
        BaseIter.__next__ = __next__
        # backward() tells the training loader from validation ones (Tensor.backward calls
        # torch.autograd.backward, looked up at each call). The dataloader module imports
        # torch, so torch.autograd is there by now.
        autograd = sys.modules.get("torch.autograd")
        original_backward = getattr(autograd, "backward", None)
        if original_backward is not None:
            def backward(*args, **kwargs):
                try:
                    passes.backward_runs()
                except Exception:
                    pass
                return original_backward(*args, **kwargs)

            backward.__wrapped__ = original_backward
            autograd.backward = backward

    _when_imported("torch.utils.data.dataloader", patch, "epochs will not be found from DataLoader passes")


def _when_imported(name, fn, failure):
    """Call fn(module) right after the program imports module `name`, or now if it
    already has: an import hook that finds the module with the other finders and wraps
    its loader's exec_module once, so nothing is imported early. A failure of fn is
    written to stderr after `failure`, never raised into the program."""
    import sys

    def call(module):
        try:
            fn(module)
        except Exception as e:
            sys.stderr.write("diagnose: %s: %s\n" % (failure, e))

    if name in sys.modules:
        call(sys.modules[name])
        return

    class Hook:
        def find_spec(self, fullname, path=None, target=None):
            if fullname != name:
                return None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
            loader = spec.loader
            original_exec = loader.exec_module

            def exec_module(module):
                original_exec(module)
                try:
                    call(module)
                finally:
                    loader.exec_module = original_exec

            loader.exec_module = exec_module
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            return spec

    sys.meta_path.insert(0, Hook())


_diagnose_start()
del _diagnose_start
