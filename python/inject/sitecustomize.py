"""Put first on PYTHONPATH by `diagnose watch --python-objects`: starts a small listener
thread in the watched Python process that takes a census of its live objects when
diagnose asks (at each epoch boundary). Runs the environment's own sitecustomize first,
acts only in the first Python process of the watched tree and the processes it forks
(DataLoader workers with the fork start method; not in subprocesses or spawned workers),
and never raises: a failure is written to stderr and training goes on.
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
        os.environ["DIAGNOSE_CENSUS_OWNER"] = str(os.getpid())  # children inherit: they stay out
        if os.environ.get("DIAGNOSE_TRACEMALLOC") == "1":
            import tracemalloc

            tracemalloc.start(int(os.environ.get("DIAGNOSE_TRACEMALLOC_FRAMES", "4")))
        import atexit
        import socket
        import threading

        sys.path.insert(0, here)
        import diagnose_census

        del sys.path[0]

        def serve(role):
            """Bind census-<pid>.sock and answer `census N` requests on a daemon thread."""
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(os.path.join(folder, "census-%d.sock" % os.getpid()))

            def listen():
                while True:
                    try:
                        data = sock.recv(256).decode("ascii", "replace").split()
                    except OSError:
                        return  # the socket was closed
                    try:
                        # Once the program is ending its objects are being torn down: a
                        # census then (a late request) would report its containers gone.
                        if len(data) == 2 and data[0] == "census" and data[1].isdigit() and not state["exiting"]:
                            r = diagnose_census.census_to(int(data[1]), out, role)
                            cuda = (r or {}).get("cuda")
                            marker = os.environ.get("DIAGNOSE_MARKER_SOCKET")
                            if cuda and marker and role == "main":  # torch.cuda's figures onto the GPU ledger
                                line = "phase census %s gpu_allocated=%d gpu_reserved=%d gpu_peak_allocated=%d gpu_peak_reserved=%d" % (
                                    data[1], cuda["allocated"], cuda["reserved"], cuda["peak_allocated"], cuda["peak_reserved"])
                                sock.sendto(line.encode("ascii"), marker)
                    except Exception as e:
                        sys.stderr.write("diagnose: census failed: %s\n" % e)

            threading.Thread(target=listen, name="diagnose-census", daemon=True).start()
            return sock

        # The socket served, and whether the program is ending.
        state = {"exiting": False}
        state["sock"] = serve("main")
        # As soon as the main module has finished: threading's exit hook runs before
        # atexit's handlers (Python 3.9+); atexit where it is missing.
        ending = getattr(threading, "_register_atexit", atexit.register)
        ending(lambda: state.update(exiting=True))

        def forked():
            # A process forked from the trainer (a DataLoader worker with the fork start
            # method): the parent's listener thread is not here and its socket is the
            # parent's; answer for this process from its own.
            try:
                state["sock"].close()
                diagnose_census.forget()
                state["sock"] = serve("worker")
            except Exception as e:
                sys.stderr.write("diagnose: census helper not started in a forked worker: %s\n" % e)

        os.register_at_fork(after_in_child=forked)
    except Exception as e:
        sys.stderr.write("diagnose: census helper not started: %s\n" % e)


_diagnose_start()
del _diagnose_start
