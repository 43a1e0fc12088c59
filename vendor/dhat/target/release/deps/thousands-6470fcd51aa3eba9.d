/work/main/vendor/dhat/target/release/deps/thousands-6470fcd51aa3eba9.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/digits.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/policies.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/traits.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/display.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/helpers.rs

/work/main/vendor/dhat/target/release/deps/libthousands-6470fcd51aa3eba9.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/digits.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/policies.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/traits.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/display.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/helpers.rs

/work/main/vendor/dhat/target/release/deps/libthousands-6470fcd51aa3eba9.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/digits.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/policies.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/traits.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/display.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/helpers.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/lib.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/digits.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/policies.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/traits.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/display.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/thousands-0.2.0/src/helpers.rs:
