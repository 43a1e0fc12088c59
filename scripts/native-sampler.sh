# Sourced by env.sh and build-wheel (which needs no torch): defines build_native_sampler; needs $ROOT.
# The sampling jemalloc that `watch --native-sites` preloads: a workspace of its own
# (native-sampler/Cargo.toml says why), built in a target folder of its own so that it
# can build while the workspace does (cargo locks a folder per build), and copied next
# to diagnose, where diagnose looks for it.
build_native_sampler() {
    cargo build --release --quiet --manifest-path "$ROOT/native-sampler/Cargo.toml" --target-dir "$ROOT/target/native-sampler"
    mkdir -p "$ROOT/target/release"
    cp -p -u "$ROOT/target/native-sampler/release/libdiagnose_jemalloc.so" "$ROOT/target/release/"
}
