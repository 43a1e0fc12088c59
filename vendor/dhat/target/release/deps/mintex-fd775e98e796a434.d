/work/main/vendor/dhat/target/release/deps/mintex-fd775e98e796a434.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/mintex-0.1.4/src/lib.rs

/work/main/vendor/dhat/target/release/deps/libmintex-fd775e98e796a434.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/mintex-0.1.4/src/lib.rs

/work/main/vendor/dhat/target/release/deps/libmintex-fd775e98e796a434.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/mintex-0.1.4/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/mintex-0.1.4/src/lib.rs:
