//! Native call sites of a watched process (`watch --native-sites`): the C and C++
//! functions that hold its malloc'd memory, from the heap profiles that our preloaded
//! jemalloc (native-sampler/, `libdiagnose_jemalloc.so`) dumps at each epoch end.
//!
//! The dumps come from another process, so their addresses are resolved here, out of
//! process, from the mappings jemalloc appends to each dump (`MAPPED_LIBRARIES`, its
//! `/proc/self/maps`) and the mapped files themselves (addr2line: DWARF where the file
//! has it, else its symbol table). Sites then go through the same [`SiteTable`] and
//! the same classification as `run --attribute`'s, into `native/sites.csv` and
//! `native/heap_sites.csv`; the report writes `native_sites.csv`.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::attribution::{describe_stack, load_jemalloc_text, read_err, SiteTable};
use super::symbols::{parse_maps, relative, Frame, Mapping};
use crate::error::Error;

/// The folder of a run holding the native sites' rows (`sites.csv`, `heap_sites.csv`).
pub const NATIVE_DIR: &str = "native";
/// Where the helper dumps heap profiles (`epoch-N.heap`), under the run folder.
pub const DUMPS_DIR: &str = "native/dumps";
/// The report's file: one row per native site, the columns of `callsites.csv`.
pub const NATIVE_SITES_FILE: &str = "native_sites.csv";
/// The preloadable sampling jemalloc, looked for next to the `diagnose` binary.
pub const NATIVE_LIBRARY: &str = "libdiagnose_jemalloc.so";
/// Callers kept in a native site's key, after the allocating function.
const CALLERS_IN_KEY: usize = 2;

/// One frame of another process: what it resolved to, and the file it is in.
#[derive(Clone, Debug)]
struct NativeFrame {
    /// The mapped file's name ("libkeep.so"), or "?" outside any mapping.
    lib: Arc<str>,
    frame: Frame,
}

/// A mapped file, opened once per run: its symbols and where its segments belong.
struct Library {
    loader: Option<addr2line::Loader>,
    /// (file offset, virtual address, size in the file) of each PT_LOAD segment.
    segments: Vec<(u64, u64, u64)>,
}

impl Library {
    fn open(path: &str) -> Library {
        Library { loader: addr2line::Loader::new(path).ok(), segments: load_segments(path).unwrap_or_default() }
    }

    /// The address in the file's own terms (what its symbols use) of `offset` bytes
    /// into the file.
    fn svma(&self, offset: u64) -> Option<u64> {
        let (off, vaddr, _) = self.segments.iter().find(|(o, _, size)| *o <= offset && offset < o + size.max(&1))?;
        Some(offset - off + vaddr)
    }
}

/// The PT_LOAD segments of an ELF file, from its program headers (read from the
/// file's start only: they are there, and libtorch is hundreds of MB).
fn load_segments(path: &str) -> Option<Vec<(u64, u64, u64)>> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let mut head = Vec::new();
    fs::File::open(path).ok()?.take(64 * 1024).read_to_end(&mut head).ok()?;
    let header = object::elf::FileHeader64::<object::Endianness>::parse(head.as_slice()).ok()?;
    let endian = header.endian().ok()?;
    let segments = header.program_headers(endian, head.as_slice()).ok()?;
    Some(
        segments
            .iter()
            .filter(|p| p.p_type(endian) == object::elf::PT_LOAD)
            .map(|p| (p.p_offset(endian), p.p_vaddr(endian), p.p_filesz(endian)))
            .collect(),
    )
}

/// Resolves another process's return addresses, given its mappings. Files and
/// resolved addresses are cached for the run (addresses by file and file offset, so
/// that they hold across processes and address-space layouts).
#[derive(Default)]
pub struct ProcessSymbolizer {
    libraries: HashMap<String, Library>,
    cache: HashMap<(Arc<str>, u64), Arc<[NativeFrame]>>,
    names: HashMap<String, Arc<str>>,
}

impl ProcessSymbolizer {
    /// Addresses resolved so far.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The frames at return address `addr` of a process mapped as `maps`, innermost first.
    fn resolve(&mut self, maps: &[Mapping], addr: usize) -> Arc<[NativeFrame]> {
        let Some(m) = maps.iter().find(|m| m.start <= addr && addr < m.end) else {
            let frame = Frame { function: format!("{addr:#x}"), file: None, line: None };
            return vec![NativeFrame { lib: "?".into(), frame }].into();
        };
        // A return address points past the call instruction: look up the byte before.
        let offset = (addr - m.start) as u64 + m.offset;
        let path: Arc<str> = self.names.entry(m.path.clone()).or_insert_with(|| m.path.as_str().into()).clone();
        if let Some(f) = self.cache.get(&(path.clone(), offset)) {
            return f.clone();
        }
        let lib: Arc<str> = m.path.rsplit('/').next().unwrap_or(&m.path).into();
        let library = self.libraries.entry(m.path.clone()).or_insert_with(|| Library::open(&m.path));
        let mut frames = Vec::new();
        if let (Some(loader), Some(svma)) = (&library.loader, library.svma(offset)) {
            let probe = svma.saturating_sub(1);
            if let Ok(mut iter) = loader.find_frames(probe) {
                while let Ok(Some(f)) = iter.next() {
                    let Some(name) = f.function.as_ref().and_then(|n| n.demangle().ok()) else { continue };
                    let (file, line) = f.location.map_or((None, None), |l| (l.file.map(str::to_string), l.line));
                    frames.push(Frame { function: name.into_owned(), file, line });
                }
            }
            if frames.is_empty() {
                if let Some(name) = loader.find_symbol(probe) {
                    let name = addr2line::demangle_auto(name.into(), None).into_owned();
                    frames.push(Frame { function: name, file: None, line: None });
                }
            }
        }
        if frames.is_empty() {
            frames.push(Frame { function: format!("{lib}+{offset:#x}"), file: None, line: None });
        }
        let frames: Arc<[NativeFrame]> = frames.into_iter().map(|frame| NativeFrame { lib: lib.clone(), frame }).collect();
        self.cache.insert((path, offset), frames.clone());
        frames
    }
}

/// Functions that only pass an allocation on: the C allocation API and our wrappers,
/// C++'s operator new and standard containers, libtorch's CPU allocator and its generic
/// tensor constructors (every operator's output goes through `at::detail::empty_*`),
/// CPython's allocator functions. The site is the first frame past them: the operator.
const ALLOCATION_API: &[&str] = &[
    "malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc", "operator new", "_Znwm", "_Znam",
    "std::", "void std::", "c10::alloc_cpu", "c10::DefaultCPUAllocator", "c10::Allocator", "c10::ProfiledCPUMemoryReporter", "c10::InefficientStdFunctionContext",
    "c10::make_intrusive", "c10::TensorImpl::", "c10::StorageImpl::", "at::detail::empty", "at::empty", "at::native::empty", "at::_ops::empty", "at::TensorBase::", "at::Tensor::",
    "PyMem_", "_PyMem_", "PyObject_Malloc", "PyObject_Calloc", "PyObject_Realloc", "_PyObject_Malloc", "_PyObject_Calloc", "_PyObject_Realloc", "_PyObject_GC_", "gc_alloc", "_PyObject_New", "PyObject_GC_",
];

/// Parts of libtorch's names that only pass an output tensor on: a structured kernel's
/// `set_output_raw_strided`, TensorIterator's set-up, the dispatcher's kernel wrappers.
/// Past them: the operator's `at::meta::structured_<op>::meta` or `at::_ops::<op>::call`.
const PASSES_ON: &[&str] = &["::set_output_raw_strided(", "::set_output_strided(", "at::TensorIteratorBase::", "at::TensorIterator::", "c10::impl::wrap_kernel_functor_unboxed_", "c10::impl::make_boxed_from_unboxed_functor"];

/// Files whose frames are the allocator or the C and C++ runtimes (their functions are
/// never the one that keeps memory).
fn is_runtime(lib: &str) -> bool {
    lib == NATIVE_LIBRARY || ["libc.so", "libc-", "libstdc++", "libgcc_s", "ld-linux", "libm.so", "libpthread"].iter().any(|p| lib.starts_with(p))
}

/// The Python interpreter itself (the executable or libpython): its frames sit under
/// every C extension's, and its own allocations are Python objects' (the census's part).
fn is_interpreter(lib: &str) -> bool {
    lib.starts_with("python") || lib.starts_with("libpython")
}

fn is_plumbing(f: &NativeFrame) -> bool {
    // A frame with line tables is judged as `run --attribute` judges it (Rust's and C++'s
    // standard libraries, jemalloc's sources, registry crates).
    is_runtime(&f.lib)
        || ALLOCATION_API.iter().any(|a| f.frame.function.starts_with(a))
        || PASSES_ON.iter().any(|p| f.frame.function.contains(p))
        || (f.frame.file.is_some() && super::symbols::is_plumbing(&f.frame))
}

/// The site of a stack, innermost first: `(function, location, via)`. The site is the
/// first frame past the allocation API outside the interpreter (the C extension's or
/// libtorch's function that asked for the memory); an allocation the interpreter made
/// for itself is named by its interpreter function. Location: file:line where the file
/// has line tables, else the file's name ("libkeep.so").
fn site_of(frames: &[NativeFrame]) -> (String, String, String) {
    let candidates: Vec<usize> = (0..frames.len()).filter(|&i| !is_plumbing(&frames[i])).collect();
    let Some(&site) = candidates.iter().find(|&&i| !is_interpreter(&frames[i].lib)).or(candidates.first()) else {
        return ("<allocator only>".into(), String::new(), String::new());
    };
    let f = &frames[site];
    let location = match (&f.frame.file, f.frame.line) {
        (Some(file), line) => format!("{}:{}", relative(file), line.unwrap_or(0)),
        (None, _) => f.lib.to_string(),
    };
    // A closure's name says little; name the function it is in (as `run --attribute`).
    let mut function = f.frame.function.clone();
    if function.starts_with("{closure") {
        if let Some(outer) = frames[site + 1..].iter().find(|o| !o.frame.function.starts_with('{') && !is_plumbing(o)) {
            function = format!("{function} in {}", outer.frame.function);
        }
    }
    let mut via: Vec<&str> = Vec::new();
    for c in &frames[site + 1..] {
        if via.len() == CALLERS_IN_KEY || is_interpreter(&c.lib) {
            break;
        }
        if !is_plumbing(c) && c.frame.function != f.frame.function && via.last() != Some(&c.frame.function.as_str()) {
            via.push(&c.frame.function);
        }
    }
    (function, location, via.join(" <- "))
}

/// Frames for [`describe_stack`]: the interpreter's and unresolved frames fold by file
/// ("python3.11 (x31)"), others read "function (file:line)" or "function (lib)".
fn stack_text(frames: &[NativeFrame]) -> String {
    let shown: Vec<Frame> = frames
        .iter()
        .skip_while(|f| is_plumbing(f))
        .map(|f| {
            if is_interpreter(&f.lib) || f.frame.function.starts_with(&*f.lib) {
                Frame { function: format!("{}+", f.lib), file: None, line: None }
            } else if f.frame.file.is_some() {
                f.frame.clone()
            } else {
                Frame { function: f.frame.function.clone(), file: Some(f.lib.to_string()), line: None }
            }
        })
        .collect();
    describe_stack(shown.iter())
}

/// A heap dump's mappings: the lines after `MAPPED_LIBRARIES:`.
fn dump_maps(text: &str) -> Vec<Mapping> {
    text.split_once("MAPPED_LIBRARIES:").map(|(_, maps)| parse_maps(maps)).unwrap_or_default()
}

/// Reduces the helper's dumps, as they appear, to per-site rows.
pub struct NativeSites {
    dumps: PathBuf,
    table: SiteTable,
    symbols: ProcessSymbolizer,
    /// The last dump reduced: kept (for jeprof), its predecessors deleted.
    last: Option<PathBuf>,
}

impl NativeSites {
    /// Create `native/` and `native/dumps/` in the run folder `run_dir`.
    pub fn create(run_dir: &Path) -> Result<Self, Error> {
        let dumps = run_dir.join(DUMPS_DIR);
        fs::create_dir_all(&dumps).map_err(|e| super::attribution::out_err(&dumps, e))?;
        Ok(NativeSites { dumps, table: SiteTable::create(&run_dir.join(NATIVE_DIR))?, symbols: ProcessSymbolizer::default(), last: None })
    }

    /// Reduce every complete dump (`epoch-N.heap`; the helper renames it so when
    /// written) in epoch order; each is deleted once reduced, but the latest. One that
    /// cannot be read is renamed `.bad` (not read again) and the first such error
    /// returned after the others are reduced. Returns how many were reduced.
    pub fn reduce_ready(&mut self) -> Result<usize, Error> {
        let mut ready: Vec<(u32, PathBuf)> = fs::read_dir(&self.dumps)
            .map_err(|e| read_err(&self.dumps, e))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let epoch = name.to_str()?.strip_prefix("epoch-")?.strip_suffix(".heap")?.parse().ok()?;
                Some((epoch, e.path()))
            })
            .filter(|(_, p)| Some(p) != self.last.as_ref())
            .collect();
        ready.sort();
        let mut first_error = None;
        let mut reduced = 0;
        for (epoch, path) in &ready {
            if let Err(e) = self.reduce(*epoch, path) {
                let _ = fs::rename(path, path.with_extension("heap.bad"));
                first_error.get_or_insert(e);
                continue;
            }
            reduced += 1;
            if let Some(previous) = self.last.replace(path.clone()) {
                let _ = fs::remove_file(previous);
            }
        }
        first_error.map_or(Ok(reduced), Err)
    }

    /// One dump's live bytes per site, appended for `epoch`.
    fn reduce(&mut self, epoch: u32, path: &Path) -> Result<(), Error> {
        let text = fs::read_to_string(path).map_err(|e| read_err(path, e))?;
        let maps = dump_maps(&text);
        let stacks = load_jemalloc_text(path, &text)?;
        let mut bytes_by_site: HashMap<u32, f64> = HashMap::new();
        for stack in stacks {
            let frames: Vec<NativeFrame> = stack.addrs.iter().flat_map(|&a| self.symbols.resolve(&maps, a).to_vec()).collect();
            let (function, location, via) = site_of(&frames);
            let site = self.table.id_of(function, location, via, || stack_text(&frames))?;
            *bytes_by_site.entry(site).or_default() += stack.bytes;
        }
        // The mapped files (libtorch's and CUDA's are hundreds of MB) count in our RSS
        // while open: close them; resolved addresses stay cached, so later dumps reopen
        // only the files of addresses not seen before.
        self.symbols.libraries.clear();
        // Their symbol tables were ours for a moment (about 100 MiB for libtorch and
        // CUDA's): give the pages back (the profiler's jemalloc keeps freed pages).
        crate::purge_freed_pages();
        self.table.write_snapshot(epoch, bytes_by_site)
    }
}

/// The preloadable sampling jemalloc: `DIAGNOSE_NATIVE_LIBRARY` if set, else
/// [`NATIVE_LIBRARY`] next to the running executable (where cargo and the wheel put it).
pub fn find_native_library() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("DIAGNOSE_NATIVE_LIBRARY") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(Error::Config(format!("DIAGNOSE_NATIVE_LIBRARY={}: no such file", p.display()))) };
    }
    let exe = std::env::current_exe().map_err(|e| Error::Config(format!("cannot find our own executable: {e}")))?;
    let lib = exe.with_file_name(NATIVE_LIBRARY);
    if lib.is_file() {
        return Ok(lib);
    }
    Err(Error::Config(format!(
        "--native-sites needs {} next to {} (build it: cargo build --release --manifest-path native-sampler/Cargo.toml --target-dir target), or DIAGNOSE_NATIVE_LIBRARY set to its path",
        NATIVE_LIBRARY,
        exe.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(lib: &str, function: &str) -> NativeFrame {
        NativeFrame { lib: lib.into(), frame: Frame { function: function.into(), file: None, line: None } }
    }

    #[test]
    fn the_site_is_past_the_allocator_and_outside_the_interpreter() {
        let stack = [
            frame(NATIVE_LIBRARY, "malloc"),
            frame("libkeep.so", "keep"),
            frame("libkeep.so", "keep_bytes"),
            frame("libffi.so.8", "ffi_call_unix64"),
            frame("libffi.so.8", "ffi_call"),
            frame("python3.11", "_PyEval_EvalFrameDefault"),
            frame("python3.11", "_PyEval_EvalFrameDefault"),
        ];
        assert_eq!(site_of(&stack), ("keep".into(), "libkeep.so".into(), "keep_bytes <- ffi_call_unix64".into()));
        assert_eq!(stack_text(&stack), "keep (libkeep.so) <- keep_bytes (libkeep.so) <- ffi_call_unix64 (libffi.so.8) <- ffi_call (libffi.so.8) <- python3.11 (x2)");
        let torch = [
            frame("libc10.so", "c10::alloc_cpu(unsigned long)"),
            frame("libtorch_cpu.so", "at::detail::empty_generic(...)"),
            frame("libtorch_cpu.so", "at::detail::empty_cpu(...)"),
            frame("libtorch_cpu.so", "at::(anonymous namespace)::structured_clamp_min_out_functional::set_output_raw_strided(long)"),
            frame("libtorch_cpu.so", "at::TensorIteratorBase::fast_set_up(at::TensorIteratorConfig const&)"),
            frame("libtorch_cpu.so", "at::native::randn(...)"),
            frame("python3.11", "x"),
        ];
        assert_eq!(site_of(&torch).0, "at::native::randn(...)", "the operator, past the generic tensor constructors");
        let interpreter = [frame("python3.11", "PyMem_Malloc"), frame("python3.11", "list_resize"), frame("python3.11", "_PyEval_EvalFrameDefault")];
        assert_eq!(site_of(&interpreter), ("list_resize".into(), "python3.11".into(), String::new()));
        assert_eq!(site_of(&[frame(NATIVE_LIBRARY, "malloc")]).0, "<allocator only>");
    }

    #[test]
    fn a_dump_that_cannot_be_read_is_set_aside_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut sites = NativeSites::create(dir.path()).unwrap();
        let dumps = dir.path().join(DUMPS_DIR);
        fs::write(dumps.join("epoch-3.heap"), "not a heap profile\n").unwrap();
        let e = sites.reduce_ready().unwrap_err().to_string();
        assert!(e.contains("epoch-3.heap"), "{e}");
        assert!(dumps.join("epoch-3.heap.bad").exists());
        assert_eq!(sites.reduce_ready().unwrap(), 0, "not read again");
    }

    #[test]
    fn mappings_come_from_the_dump_s_tail() {
        let text = "heap_v2/524288\n  t*: 1: 8 [0: 0]\n@ 0x7f01\n  t*: 1: 8 [0: 0]\n\nMAPPED_LIBRARIES:\n7f00-7f10 r-xp 00001000 fe:00 1 /lib/libkeep.so\n7f10-7f20 rw-p 00000000 00:00 0 \n";
        let maps = dump_maps(text);
        assert_eq!(maps.len(), 1);
        assert_eq!((maps[0].start, maps[0].offset, maps[0].path.as_str()), (0x7f00, 0x1000, "/lib/libkeep.so"));
        let mut s = ProcessSymbolizer::default();
        let f = s.resolve(&maps, 0x7f01);
        assert_eq!(f[0].frame.function, "libkeep.so+0x1001", "a file that cannot be read: named by file and offset");
        assert_eq!(s.resolve(&maps, 0x1).first().unwrap().lib.as_ref(), "?");
    }
}
