# Sourced by the other scripts: makes sure the project-local Python venv with torch
# (libtorch for tch) exists, and exports what the tch build needs. Quick when done.
# It changes into the checkout and puts the venv first on PATH: scripts/diagnose sources
# it in a subshell, for its build only, so that the user's command keeps their folder,
# their PATH and their python. Test-only set-up (packages, Debian tools) is scripts/test's.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TORCH_VERSION="2.11.0"

if ! "$VENV/bin/python" -c "import torch,sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    echo "setup: installing torch==$TORCH_VERSION into $VENV (about a minute, 4.6 GB)" >&2
    python3 -m venv "$VENV"
    # Byte-compiled at install (pip's default), and so kept: where PYTHONDONTWRITEBYTECODE
    # is set (this machine's environment sets it), Python never writes what it compiles,
    # and every process would compile each module it imports anew (with --no-compile a
    # fresh clone's tests took 911 s instead of 714).
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi
if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust with rustup first" >&2
    exit 1
fi

source "$ROOT/scripts/native-sampler.sh"
export PATH="$VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cd "$ROOT"
