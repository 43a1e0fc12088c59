//! Resolves return addresses to frames (function, file, line), with a cache kept for the
//! whole run so that each address is resolved once, not once per snapshot.
//!
//! Only addresses inside the executable are resolved: shared libraries (libtorch, libc)
//! are named by file and offset, which is all attribution needs from them and avoids
//! parsing libtorch's huge symbol tables.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

/// One resolved frame (an inlined function gives several per address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Demangled function name.
    pub function: String,
    /// Source file, if the debug info has it.
    pub file: Option<String>,
    /// Line in that file.
    pub line: Option<u32>,
}

impl Frame {
    /// "function (file:line)" or "function", the file relative to the working directory.
    pub fn describe(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{} ({}:{l})", self.function, relative(f)),
            (Some(f), None) => format!("{} ({})", self.function, relative(f)),
            _ => self.function.clone(),
        }
    }
}

/// One convention for every path we print: relative to its source root. The program's
/// own files are already relative to its workspace in the debug info (cargo builds them
/// so); an absolute path below the working directory is made relative to it; the standard
/// library's and registry crates' files are named from their own roots, as
/// `rust:library/alloc/src/vec/mod.rs` and `crates.io:tch-0.24.0/src/tensor/mod.rs`.
pub fn relative(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("/rustc/") {
        // /rustc/<commit>/library/...
        if let Some((_, lib)) = rest.split_once('/') {
            return format!("rust:{lib}");
        }
    }
    if let Some(i) = path.find("/.cargo/registry/src/") {
        // .../registry/src/<index>/<crate>-<version>/...
        let rest = &path[i + "/.cargo/registry/src/".len()..];
        if let Some((_, krate)) = rest.split_once('/') {
            return format!("crates.io:{krate}");
        }
    }
    match std::env::current_dir() {
        Ok(cwd) => match std::path::Path::new(path).strip_prefix(&cwd) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => path.to_string(),
        },
        Err(_) => path.to_string(),
    }
}

/// Address → frames, cached.
pub struct Symbolizer {
    cache: HashMap<usize, Arc<[Frame]>>,
    /// (start, end, path) of each executable mapping of this process.
    maps: Vec<(usize, usize, String)>,
    exe: Option<String>,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbolizer {
    /// Read this process's mappings once.
    pub fn new() -> Self {
        let exe = fs::read_link("/proc/self/exe").ok().map(|p| p.to_string_lossy().into_owned());
        let maps = fs::read_to_string("/proc/self/maps").map(|t| parse_exec_maps(&t)).unwrap_or_default();
        Symbolizer { cache: HashMap::new(), maps, exe }
    }

    /// Addresses resolved so far.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The frames at return address `addr`, innermost first.
    pub fn resolve(&mut self, addr: usize) -> Arc<[Frame]> {
        if let Some(f) = self.cache.get(&addr) {
            return f.clone();
        }
        let mapping = self.maps.iter().find(|(s, e, _)| *s <= addr && addr < *e);
        let in_exe = matches!((mapping, &self.exe), (Some((_, _, p)), Some(exe)) if p == exe);
        let frames: Vec<Frame> = if in_exe {
            let mut frames = Vec::new();
            // A return address points past the call; step back into it.
            backtrace::resolve(addr.saturating_sub(1) as *mut std::ffi::c_void, |sym| {
                frames.push(Frame {
                    function: sym.name().map_or_else(|| format!("{addr:#x}"), |n| format!("{n:#}")),
                    file: sym.filename().map(|p| p.to_string_lossy().into_owned()),
                    line: sym.lineno(),
                });
            });
            if frames.is_empty() {
                frames.push(Frame { function: format!("{addr:#x}"), file: None, line: None });
            }
            frames
        } else {
            let name = match mapping {
                Some((start, _, path)) => {
                    let lib = path.rsplit('/').next().unwrap_or(path);
                    format!("{lib}+{:#x}", addr - start)
                }
                None => format!("{addr:#x}"),
            };
            vec![Frame { function: name, file: None, line: None }]
        };
        let frames: Arc<[Frame]> = frames.into();
        self.cache.insert(addr, frames.clone());
        frames
    }
}

/// Executable mappings (with a path) from the text of `/proc/self/maps`.
fn parse_exec_maps(text: &str) -> Vec<(usize, usize, String)> {
    parse_maps(text).into_iter().filter(|m| m.executable).map(|m| (m.start, m.end, m.path)).collect()
}

/// One file-backed mapping of a `/proc/<pid>/maps` text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub start: usize,
    pub end: usize,
    /// Offset in the file of `start`.
    pub offset: u64,
    pub executable: bool,
    pub path: String,
}

/// The mappings of a `/proc/<pid>/maps` text that have a file path.
pub(crate) fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let range = parts.next()?;
            let perms = parts.next()?;
            let offset = u64::from_str_radix(parts.next()?, 16).ok()?;
            let path = parts.nth(2)?;
            if !path.starts_with('/') {
                return None;
            }
            let (s, e) = range.split_once('-')?;
            Some(Mapping { start: usize::from_str_radix(s, 16).ok()?, end: usize::from_str_radix(e, 16).ok()?, offset, executable: perms.contains('x'), path: path.to_string() })
        })
        .collect()
}

/// Where the allocators' own frames are: jemalloc, the profiler's allocator switch and its
/// copy of dhat. Every stack opens with them.
const ALLOCATOR_FILES: &[&str] = &["tikv-jemalloc", "profiler/src/alloc.rs", "vendor/dhat/src/"];

/// Whether a frame is inside an allocator (see [`ALLOCATOR_FILES`]).
pub fn is_allocator(frame: &Frame) -> bool {
    frame.file.as_deref().is_some_and(|p| ALLOCATOR_FILES.iter().any(|a| p.contains(a)))
}

/// Whether a frame is plumbing: the allocator, the Rust and C++ standard libraries, a
/// crate from the registry, libtorch's headers (tch's C++ glue is compiled into the
/// executable), a shared library, or anything without a source location.
pub fn is_plumbing(frame: &Frame) -> bool {
    let Some(file) = &frame.file else { return true };
    const OUTSIDE: &[&str] = &["/rustc/", "/.cargo/registry/", "/.cargo/git/", "/library/std/", "/library/core/", "/library/alloc/", "/rustlib/", "/out/build/src/", "/site-packages/torch/", "/include/c++/", "/usr/include/"];
    // The profiler's own attribution code.
    const OURS: &[&str] = &["profiler/src/heap/"];
    const MACHINERY: &[&str] = &["profiler::alloc", "tikv_jemalloc", "dhat::", "__rust", "alloc::alloc::"];
    is_allocator(frame) || OUTSIDE.iter().chain(OURS).any(|p| file.contains(p)) || MACHINERY.iter().any(|m| frame.function.contains(m))
}

/// Crates whose functions are never the program's own: the standard library, the test
/// harness, this profiler and its allocators, and common infrastructure crates.
const NOT_THE_PROGRAM: &[&str] = &[
    "std", "core", "alloc", "test", "profiler", "profiler_api", "dhat", "tikv_jemallocator", "tikv_jemalloc_sys", "tikv_jemalloc_ctl", "backtrace", "hashbrown", "libc", "rayon", "rayon_core", "crossbeam_epoch", "crossbeam_deque", "crossbeam_channel", "tokio", "serde", "serde_json", "csv", "regex", "tch", "torch_sys", "anyhow",
];

/// Whether a frame without a source location is still recognisably the program's own: a
/// Rust path (`userproj::step`, `<userproj::Model as Trait>::f`) outside
/// [`NOT_THE_PROGRAM`]. A release build without line tables has no file or line, but its
/// symbols still name the function.
pub fn is_program_symbol(frame: &Frame) -> bool {
    if frame.file.is_some() || frame.function.contains("+0x") {
        return false;
    }
    let name = frame.function.trim_start_matches('<').trim_start_matches('&').trim_start_matches("mut ").trim_start_matches("dyn ");
    match name.split_once("::") {
        Some((krate, _)) => !krate.is_empty() && krate.chars().all(|c| c.is_alphanumeric() || c == '_') && !NOT_THE_PROGRAM.contains(&krate),
        None => false,
    }
}

/// How to get file:line into a site found by symbol only.
pub const NO_LINE_TABLES: &str = "no line tables: set debug = \"line-tables-only\" in the profile";

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn a_function_of_ours() -> usize {
        // The return address of a call made from here lies inside this function.
        let mut addr = 0usize;
        backtrace::trace(|f| {
            addr = f.ip() as usize + 1; // as a return address would be
            false
        });
        std::hint::black_box(addr)
    }

    #[test]
    fn resolves_our_own_code_to_file_and_line_and_caches() {
        let mut s = Symbolizer::new();
        let addr = a_function_of_ours();
        let frames = s.resolve(addr);
        assert!(frames.iter().any(|f| f.file.as_deref().is_some_and(|p| p.ends_with(".rs"))), "{frames:?}");
        let n = s.cached();
        s.resolve(addr);
        assert_eq!(s.cached(), n);
    }

    #[test]
    fn plumbing_rules() {
        let f = |function: &str, file: Option<&str>| Frame { function: function.into(), file: file.map(Into::into), line: Some(1) };
        assert!(is_plumbing(&f("libtorch_cpu.so+0x10", None)));
        assert!(is_plumbing(&f("alloc::vec::Vec<T>::push", Some("/rustc/abc/library/alloc/src/vec/mod.rs"))));
        assert!(is_plumbing(&f("tch::wrappers::tensor::Tensor::copy", Some("/root/.cargo/registry/src/x/tch-0.24.0/src/x.rs"))));
        assert!(is_plumbing(&f("alloc", Some("/work/main/profiler/src/alloc.rs"))));
        assert!(is_plumbing(&f("alloc", Some("/work/main/vendor/dhat/src/lib.rs"))));
        assert!(is_plumbing(&f("prof_backtrace_impl", Some("/w/target/release/build/tikv-jemalloc-sys-7f98/out/build/src/prof_sys.c"))));
        assert!(!is_plumbing(&f("reference_trainer::validate::validate_epoch", Some("reference-trainer/src/validate.rs"))));
    }

    #[test]
    fn paths_are_relative_to_their_source_root() {
        assert_eq!(relative("/rustc/5980761/library/alloc/src/alloc.rs"), "rust:library/alloc/src/alloc.rs");
        assert_eq!(relative("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tch-0.24.0/src/tensor/convert.rs"), "crates.io:tch-0.24.0/src/tensor/convert.rs");
        assert_eq!(relative("reference-trainer/src/validate.rs"), "reference-trainer/src/validate.rs");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(relative(&cwd.join("src/x.rs").to_string_lossy()), "src/x.rs");
    }

    #[test]
    fn program_symbols_without_line_tables() {
        let f = |function: &str| Frame { function: function.into(), file: None, line: None };
        assert!(is_program_symbol(&f("userproj::step")));
        assert!(is_program_symbol(&f("<userproj::Model as core::ops::Drop>::drop")));
        for other in ["alloc::raw_vec::RawVec<T>::grow", "<alloc::vec::Vec<T> as core::clone::Clone>::clone", "test::run_test", "profiler::flat::FlatMemory::assert", "libc.so.6+0x29d90", "0x55d0", "main", "_start"] {
            assert!(!is_program_symbol(&f(other)), "{other}");
        }
        let with_file = Frame { function: "userproj::step".into(), file: Some("src/lib.rs".into()), line: Some(1) };
        assert!(!is_program_symbol(&with_file), "frames with a file are judged by is_plumbing");
    }

    #[test]
    fn parses_exec_maps() {
        let maps = "55d0-55e0 r-xp 00000000 08:01 1 /usr/bin/diagnose\n55e0-55f0 rw-p 00000000 08:01 1 /usr/bin/diagnose\n7f00-7f10 r-xp 00000000 00:00 0 [vdso]\n";
        assert_eq!(parse_exec_maps(maps), vec![(0x55d0, 0x55e0, "/usr/bin/diagnose".to_string())]);
    }
}
