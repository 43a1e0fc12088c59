/work/main/vendor/dhat/target/release/deps/dhat-668a45e97435c9d7.d: src/lib.rs

/work/main/vendor/dhat/target/release/deps/libdhat-668a45e97435c9d7.rlib: src/lib.rs

/work/main/vendor/dhat/target/release/deps/libdhat-668a45e97435c9d7.rmeta: src/lib.rs

src/lib.rs:
