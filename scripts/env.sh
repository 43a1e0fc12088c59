# Sourced by the other scripts: makes sure the project-local Python venv with torch
# (libtorch for tch) exists, and exports what the tch build needs. Quick when done.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TORCH_VERSION="2.11.0"

if ! "$VENV/bin/python" -c "import torch,sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    echo "setup: installing torch==$TORCH_VERSION into $VENV (about a minute, 4.6 GB)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi
# wheel: the test that pip-installs python/diagnose_markers.py builds it offline.
if ! "$VENV/bin/python" -c "import wheel" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check wheel
fi
# Prometheus (server and promtool) for the metrics tests: Debian's package, as root.
if ! command -v prometheus >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's prometheus package (for the metrics tests)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >/dev/null 2>&1 \
        || echo "setup: prometheus could not be installed; its tests will be skipped" >&2
fi
# Chromium, headless, for the test that opens report.html in a browser: Debian's package, as root.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium package (for the report.html test)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null 2>&1 \
        || echo "setup: chromium could not be installed; the report.html browser test will be skipped" >&2
fi
if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust with rustup first" >&2
    exit 1
fi

export PATH="$VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cd "$ROOT"
