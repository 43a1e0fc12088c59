/work/main/vendor/dhat/target/release/deps/addr2line-c0d1b2ebf15a6817.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/frame.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/function.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/line.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/lookup.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/unit.rs

/work/main/vendor/dhat/target/release/deps/libaddr2line-c0d1b2ebf15a6817.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/frame.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/function.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/line.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/lookup.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/unit.rs

/work/main/vendor/dhat/target/release/deps/libaddr2line-c0d1b2ebf15a6817.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/frame.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/function.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/line.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/lookup.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/unit.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/lib.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/frame.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/function.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/line.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/lookup.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/addr2line-0.27.1/src/unit.rs:
