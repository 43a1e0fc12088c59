"""The `diagnose` command, from the `diagnose-memory` wheel.

`pip install diagnose-memory` puts the `diagnose` binary (a Rust program that links no
Python and no torch) into the environment's scripts folder, next to `python`. This package
only finds it, for `python -m diagnose_memory ...` and for programs that want its path.
The boundary markers are the top-level module `diagnose_markers`, installed by the same
wheel.

`diagnose_memory.watching(out=DIR)` runs that binary on this very process (notebooks,
scripts): see diagnose_memory._watching. The pytest plugin (`@pytest.mark.flat_memory`,
the `flat_memory_check` fixture) is diagnose_memory.pytest_plugin, registered through the
`pytest11` entry point.
"""

import os
import sys
import sysconfig

__all__ = ["find_diagnose_bin", "watching", "Watching", "WatchError"]


def find_diagnose_bin():
    """The path of the installed `diagnose` binary.

    Looked for where pip puts scripts: this interpreter's scheme, then the user scheme
    (`pip install --user`), then next to the interpreter, then beside this package
    (`pip install --target DIR` puts it in DIR/bin), then on PATH. Raises
    FileNotFoundError when none holds it.
    """
    import shutil

    exe = "diagnose" + (sysconfig.get_config_var("EXE") or "")
    candidates = [os.path.join(sysconfig.get_path("scripts"), exe)]
    user_scheme = sysconfig.get_preferred_scheme("user") if hasattr(sysconfig, "get_preferred_scheme") else (os.name + "_user")
    try:
        candidates.append(os.path.join(sysconfig.get_path("scripts", scheme=user_scheme), exe))
    except KeyError:
        pass
    candidates.append(os.path.join(os.path.dirname(sys.executable), exe))
    candidates.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin", exe))
    on_path = shutil.which(exe)
    if on_path:
        candidates.append(on_path)
    candidates = list(dict.fromkeys(candidates))  # one of each, in order
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("diagnose binary not found in " + ", ".join(candidates) + " (nor on PATH); set DIAGNOSE_BIN to its path")


from diagnose_memory._watching import Watching, WatchError, watching  # noqa: E402
