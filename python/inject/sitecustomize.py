"""Put first on PYTHONPATH by `diagnose watch` (unless --no-inject): runs the environment's
own sitecustomize first, then, in the first Python process of the watched tree only:

- finds epochs by itself: every PyTorch training loop starts an epoch by iterating its
  training DataLoader again, whatever framework drives it (Lightning, the Hugging Face
  Trainer, a plain loop). The training loader is the one whose passes run backward()
  (among loaders alike in that, the one with the most batches); a new pass over it ends
  the epoch before, passes over the other loaders are validation. These boundaries go to
  diagnose's marker socket, marked as found by us: explicit markers win over them, and
  they win over log lines.
- with --native-sites (diagnose preloads its sampling jemalloc), dumps the process's
  sampled native heap at each epoch end (diagnose_native.py);
- with --python-objects, starts a small listener thread that takes a census of the
  process's live objects when diagnose asks (at each epoch end); processes it forks
  (DataLoader workers with the fork start method) answer for themselves.

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
        if not folder or not out or os.environ.get("DIAGNOSE_CENSUS_OWNER"):
            return
        owner = os.getpid()
        os.environ["DIAGNOSE_CENSUS_OWNER"] = str(owner)  # children inherit: they stay out
        objects = os.environ.get("DIAGNOSE_OBJECTS") == "1"
        workers = os.environ.get("DIAGNOSE_CENSUS_WORKERS", "light")  # light or full
        native = os.environ.get("DIAGNOSE_NATIVE_DUMPS")  # --native-sites: where dumps go
        if objects and os.environ.get("DIAGNOSE_TRACEMALLOC") == "1":
            import tracemalloc

            tracemalloc.start(int(os.environ.get("DIAGNOSE_TRACEMALLOC_FRAMES", "4")))
        import atexit
        import socket
        import threading

        sys.path.insert(0, here)
        import diagnose_census
        import diagnose_gpu

        if native:
            import diagnose_native
        del sys.path[0]
        gpu_at = _gpu_recorder(diagnose_gpu, owner)
        marker = os.environ.get("DIAGNOSE_MARKER_SOCKET")
        # The socket served, whether the program is ending, and the last boundary
        # diagnose has sampled (it answers `ack N`).
        state = {"exiting": False, "acked": -1}
        acked = threading.Condition()

        def serve(role):
            """Bind census-<pid>.sock and answer `census N` and `ack N` on a daemon thread."""
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(os.path.join(folder, "census-%d.sock" % os.getpid()))

            def listen():
                while True:
                    try:
                        data = sock.recv(256).decode("ascii", "replace").split()
                    except OSError:
                        return  # the socket was closed
                    try:
                        if len(data) != 2 or not data[1].isdigit():
                            continue
                        if data[0] == "census" and role == "main":
                            gpu_at(int(data[1]))  # asked by diagnose (explicit markers)
                            native_dump(int(data[1]))
                        if data[0] in ("ack", "ack+census"):
                            # A census with an ack is the waiting training loop's to take;
                            # if it has stopped waiting, taken here.
                            epoch = int(data[1])
                            with acked:
                                state["acked"] = epoch
                                waiting = state.get("waiting") == epoch
                                state["census_for"] = epoch if data[0] == "ack+census" and waiting else None
                                acked.notify_all()
                            # (A worker takes its own on its `census N` request.)
                            if data[0] == "ack+census" and not waiting and role == "main":
                                native_dump(epoch)
                            if data[0] == "ack+census" and not waiting and role == "main" and objects and not state["exiting"]:
                                take_census(epoch, role, False, graphs=False)
                            if not waiting and role == "main":
                                gpu_at(epoch)
                        # Once the program is ending its objects are being torn down: a
                        # census then (a late request) would report its containers gone.
                        elif data[0] == "census" and objects and not state["exiting"] and diagnose_census._state.get("written") != int(data[1]):
                            # (Not when the program took this epoch's census itself: census=True.)
                            light = role == "worker" and workers != "full"
                            # Here the program runs on: its backward may be freeing the very
                            # graphs a walk would read, so graphs are walked only where the
                            # training loop waits (a DataLoader boundary, census=True).
                            take_census(int(data[1]), role, light, graphs=False)
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

        def take_census(epoch, role, light, graphs):
            r = diagnose_census.census_to(epoch, out, role, light, graphs)
            cuda = (r or {}).get("cuda")
            if cuda and marker and role == "main":  # torch.cuda's figures onto the GPU ledger
                line = "phase census %d gpu_allocated=%d gpu_reserved=%d gpu_peak_allocated=%d gpu_peak_reserved=%d" % (
                    epoch, cuda["allocated"], cuda["reserved"], cuda["peak_allocated"], cuda["peak_reserved"])
                state["sock"].sendto(line.encode("ascii"), marker)

        state["sock"] = serve("main")
        # As soon as the main module has finished: threading's exit hook runs before
        # atexit's handlers (Python 3.9+); atexit where it is missing.
        ending = getattr(threading, "_register_atexit", atexit.register)
        ending(lambda: state.update(exiting=True))

        def send(line, wait_for=None):
            """A boundary to diagnose; with `wait_for`, wait (2 s at most) until it has
            sampled the tree, so that the sample shows this moment, not the next pass's
            workers starting; then take the census it asks for here, in the training
            loop's own thread, between two steps: no backward runs while graphs are
            walked."""
            if not marker or os.getpid() != owner:
                return
            try:
                state["sock"].sendto(line.encode("ascii"), marker)
                if wait_for is not None:
                    with acked:
                        state["waiting"] = wait_for
                        acked.wait_for(lambda: state["acked"] >= wait_for, timeout=2.0)
                        state["waiting"] = None
                        wanted = state.get("census_for") == wait_for
                        state["census_for"] = None
                    if wanted:
                        native_dump(wait_for)
                    if wanted and objects and not state["exiting"]:
                        take_census(wait_for, "main", False, graphs=True)
                    gpu_at(wait_for)  # here, in the training thread, between two steps
            except Exception:
                pass

        _install_loader_hook(send)

        def forked():
            # A process forked from the trainer (a DataLoader worker with the fork start
            # method): the parent's listener thread is not here and its socket is the
            # parent's; answer for this process from its own.
            try:
                state["sock"].close()
                if objects:
                    diagnose_census.forget()
                    state["sock"] = serve("worker")
            except Exception as e:
                sys.stderr.write("diagnose: census helper not started in a forked worker: %s\n" % e)

        os.register_at_fork(after_in_child=forked)
    except Exception as e:
        sys.stderr.write("diagnose: helper not started: %s\n" % e)


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


class _Passes:
    """Which DataLoader is the training loader, and the epoch a new pass over it ends."""

    def __init__(self, send):
        self.send = send
        self.loaders = {}  # id(loader) -> [passes, batches of its longest pass, batches of this pass]
        self.train = None  # id of the training loader
        self.train_size = 0
        self.epochs = 0    # epochs ended
        self.open_validation = None
        self.started = None  # the loader whose pass started last
        self.trained = set()  # loaders during whose passes backward() ran

    def backward_runs(self):
        self.trained.add(self.started)

    def ranks_above_train(self, key, size):
        """Whether `key` is more like the training loader than the one taken so far: a
        loader whose passes ran backward() is, whatever its size, than one whose passes
        did not (a validation set larger than the training set); else the larger is."""
        if self.train is None:
            return True
        ours, theirs = key in self.trained, self.train in self.trained
        return ours > theirs or (ours == theirs and size > self.train_size)

    def pass_starts(self, loader):
        key = id(loader)
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
                self.send("epoch_end %d auto=1" % epoch, wait_for=epoch)
        else:
            self.open_validation = key
            self.send("validation_start %d auto=1" % self.epochs)
        return stats

    def pass_ends(self, key):
        if key is not None and key == self.open_validation:
            self.close_validation()

    def close_validation(self):
        if self.open_validation is not None:
            self.open_validation = None
            self.send("validation_end %d auto=1" % self.epochs)


def _install_loader_hook(send):
    """Patch torch.utils.data's DataLoader.__iter__ and its iterators' __next__ as soon as
    the program imports them (an import hook: nothing is imported early)."""
    import sys

    passes = _Passes(send)

    def patch(module):
        DataLoader = module.DataLoader
        BaseIter = module._BaseDataLoaderIter
        original_iter = DataLoader.__iter__
        original_next = BaseIter.__next__

        def __iter__(self):
            stats = None
            try:
                stats = passes.pass_starts(self)
            except Exception:
                pass
            it = original_iter(self)
            try:
                it._diagnose_pass = (id(self), stats)
            except Exception:
                pass
            return it

        def __next__(self):
            try:
                data = original_next(self)
            except StopIteration:
                passes.pass_ends(getattr(self, "_diagnose_pass", (None,))[0])
                raise
            p = getattr(self, "_diagnose_pass", None)
            if p is not None and p[1] is not None:
                p[1][2] += 1
            return data

        __iter__.__wrapped__ = original_iter
        __next__.__wrapped__ = original_next
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
