"""Heap profiles of the process's native memory, for `diagnose watch --native-sites`.

diagnose starts the watched command with its sampling jemalloc preloaded
(libdiagnose_jemalloc.so, LD_PRELOAD): every malloc of the process, Python's, a C
extension's or libtorch's, goes through it, and one allocation per 512 KiB on average
is sampled with its C stack. `dump(epoch, folder)` asks it (`mallctl("prof.dump")`) to
write the sampled live heap to FOLDER/epoch-N.heap; diagnose reduces it to per-function
rows and deletes it.
"""
import ctypes
import os

_state = {"mallctl": None, "dumped": None}


def _mallctl():
    if _state["mallctl"] is None:
        # The preloaded library comes first in the global lookup; without it there is none.
        f = ctypes.CDLL(None).mallctl
        f.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        f.restype = ctypes.c_int
        _state["mallctl"] = f
    return _state["mallctl"]


def dump(epoch, folder):
    """Write the sampled live heap of this process to FOLDER/epoch-N.heap (once per epoch).
    Written under a temporary name and renamed: diagnose reads only complete dumps."""
    epoch = int(epoch)
    if _state["dumped"] == epoch:
        return None
    mallctl = _mallctl()
    final = os.path.join(folder, "epoch-%d.heap" % epoch)
    tmp = final + ".tmp"
    path = ctypes.c_char_p(os.fsencode(tmp))
    rc = mallctl(b"prof.dump", None, None, ctypes.byref(path), ctypes.sizeof(path))
    if rc != 0:
        raise OSError(rc, "jemalloc prof.dump failed (%s)" % os.strerror(rc))
    os.rename(tmp, final)
    _state["dumped"] = epoch
    return final
