// Shared by the build scripts of the packages whose binaries load libtorch
// (`include!`d, since a build script cannot depend on a workspace crate).
//
// torch-sys puts no rpath into binaries, and without an explicit, non-as-needed link to
// torch_cuda, `tch::Cuda::is_available()` is false even on a GPU machine (DESIGN.md).

//
// `only_bin`: apply to that binary alone (`diagnose-watch` must not load libtorch, whose
// static initialisers alone take ~180 MB), or to every target when `None`.
fn link_torch(only_bin: Option<&str>) {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    let key = only_bin.map_or("cargo:rustc-link-arg=".to_string(), |b| format!("cargo:rustc-link-arg-bin={b}="));
    println!("{key}-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("{key}-Wl,--no-as-needed");
        println!("{key}-ltorch_cuda");
        println!("{key}-Wl,--as-needed");
    }
}
