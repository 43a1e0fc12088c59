include!("../build/torch_link.rs");

/// Compile the CUDA caching-allocator shim against the torch package's headers.
fn build_cuda_shim() {
    println!("cargo:rerun-if-changed=cpp/cuda_stats.cpp");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    let torch = std::path::Path::new(&lib).parent().expect("torch/lib has a parent").to_path_buf();
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("cpp/cuda_stats.cpp")
        .include(torch.join("include"))
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag_if_supported("-Wno-unused-parameter")
        .compile("cuda_stats");
    println!("cargo:rustc-link-search=native={lib}");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-cfg=cuda_shim");
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cuda_shim)");
    link_torch();
    build_cuda_shim();
}
