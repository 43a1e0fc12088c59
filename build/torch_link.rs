// Shared by the build scripts of the packages whose binaries load libtorch
// (`include!`d, since a build script cannot depend on a workspace crate).
//
// torch-sys puts no rpath into binaries, and without an explicit, non-as-needed link to
// torch_cuda, `tch::Cuda::is_available()` is false even on a GPU machine (DESIGN.md).
//
// Only packages that link libtorch call it (reference-trainer, diagnose-run); the light
// `diagnose` package has no build script and no libtorch.
fn link_torch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    let key = "cargo:rustc-link-arg=";
    println!("{key}-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("{key}-Wl,--no-as-needed");
        println!("{key}-ltorch_cuda");
        println!("{key}-Wl,--as-needed");
    }
}
