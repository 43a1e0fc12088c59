"""`python -m diagnose_memory watch -- python train.py`: the installed `diagnose`,
with the same arguments, in the same folder, with the same environment."""

import os
import sys

from diagnose_memory import find_diagnose_bin


def main():
    binary = find_diagnose_bin()
    # Replace this interpreter: signals, exit codes and the process tree are diagnose's
    # own, with no Python process left between the terminal and the watcher.
    os.execv(binary, ["diagnose", *sys.argv[1:]])


if __name__ == "__main__":
    main()
