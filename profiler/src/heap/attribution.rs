//! Streams per-site live bytes at each epoch end, and writes the growth profile at the end.
//!
//! The live heap by stack comes from one of two profilers ([`StackSource`]); everything
//! after that (symbols, sites, rows, growth) is the same for both.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::jeprof::{activate_sampling, dump_profile};
use super::symbols::{is_allocator, is_plumbing, is_program_symbol, relative, Frame, Symbolizer, NO_LINE_TABLES};
use crate::error::Error;

/// Each site seen, once: `site, function, location, stack`.
pub const SITES_FILE: &str = "sites.csv";
/// Live bytes per site per snapshot: `epoch, site, bytes`.
pub const SITE_ROWS_FILE: &str = "heap_sites.csv";
/// The program's own callers that, with the allocating frame, tell sites apart.
const CALLERS_IN_KEY: usize = 3;
/// Frames kept in a site's stack description.
const MAX_STACK_FRAMES: usize = 40;

/// Where the live heap by call stack comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StackSource {
    /// jemalloc's sampling profiler: Rust and libtorch (C++) allocations alike, live bytes
    /// estimated from samples (one per 512 KiB allocated, on average). Snapshots:
    /// `heap/epoch-N.heap` (jeprof's format).
    JemallocSampled,
    /// dhat: every Rust allocation, exactly; allocations made in C++ (libtorch's tensors)
    /// are not seen. Snapshots: `dhat/epoch-N.json` (DHAT's viewer opens it) and
    /// `heap/epoch-N.live` (the same live heap with raw addresses, for the growth profile).
    DhatExact,
}

impl StackSource {
    /// Words for reports: "sampled live heap (jemalloc: Rust and C++)".
    pub fn describe(self) -> &'static str {
        match self {
            StackSource::JemallocSampled => "sampled live heap (jemalloc: Rust and C++)",
            StackSource::DhatExact => "exact live Rust heap (dhat; C++ allocations not seen)",
        }
    }
}

/// One stack of a live-heap snapshot: return addresses from the allocation outwards.
#[derive(Debug)]
pub(crate) struct LiveStack {
    pub(crate) addrs: Vec<usize>,
    pub(crate) bytes: f64,
}

/// The folder of DHAT's per-epoch JSON files in exact mode.
pub const DHAT_DIR: &str = "dhat";
/// dhat keeps this many frames of each allocation's backtrace (its default, 10, often
/// ends inside the allocator's callers, before the program's own frame).
pub const DHAT_MAX_FRAMES: usize = 64;

/// A site's description (one row of `sites.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteInfo {
    /// Site id, from 0 in order of first appearance.
    pub site: u32,
    /// The first frame in the program's own source.
    pub function: String,
    /// Its file:line.
    pub location: String,
    /// The program's own callers of that frame, nearest first, " <- " between them: the
    /// same line reached by different paths (validation's forward, the triplet branch's)
    /// is a different site. (Absent in files from before this column: empty.)
    #[serde(default)]
    pub via: String,
    /// Frames from the allocation outwards, " <- " between them.
    pub stack: String,
}

/// Live bytes of one site at one snapshot (one row of `heap_sites.csv`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteRow {
    /// The epoch whose end the snapshot was taken at.
    pub epoch: u32,
    /// Site id.
    pub site: u32,
    /// Estimated live bytes (jemalloc's unbiased estimate from its samples).
    pub bytes: u64,
}

/// The attribution state of a run.
pub struct HeapAttribution {
    source: StackSource,
    dir: PathBuf,
    symbols: Symbolizer,
    table: SiteTable,
    snapshots: Vec<(u32, PathBuf)>,
}

/// The sites seen so far and the two files they stream to (`sites.csv`, each site once;
/// `heap_sites.csv`, live bytes per site per snapshot) in one folder. Shared by the
/// in-process attribution and the native sites of a watched process
/// ([`super::native`]), which choose the site of a stack each their own way.
pub(crate) struct SiteTable {
    dir: PathBuf,
    site_ids: HashMap<(String, String, String), u32>,
    sites: csv::Writer<File>,
    rows: csv::Writer<File>,
}

impl SiteTable {
    /// Create `sites.csv` and `heap_sites.csv` in `dir` (which must exist).
    pub(crate) fn create(dir: &Path) -> Result<Self, Error> {
        let open = |name: &str| {
            let p = dir.join(name);
            csv::Writer::from_path(&p).map_err(|e| out_err(&p, e))
        };
        Ok(SiteTable { dir: dir.to_path_buf(), site_ids: HashMap::new(), sites: open(SITES_FILE)?, rows: open(SITE_ROWS_FILE)? })
    }

    /// The id of the site `(function, location, via)`; a new one is written to
    /// `sites.csv` with `stack` (called only then).
    pub(crate) fn id_of(&mut self, function: String, location: String, via: String, stack: impl FnOnce() -> String) -> Result<u32, Error> {
        let key = (function, location, via);
        if let Some(&id) = self.site_ids.get(&key) {
            return Ok(id);
        }
        let id = self.site_ids.len() as u32;
        let info = SiteInfo { site: id, function: key.0.clone(), location: key.1.clone(), via: key.2.clone(), stack: stack() };
        let path = self.dir.join(SITES_FILE);
        self.sites.serialize(&info).map_err(|e| out_err(&path, e))?;
        self.sites.flush().map_err(|e| out_err(&path, e))?;
        self.site_ids.insert(key, id);
        Ok(id)
    }

    /// Append one snapshot's bytes per site, the largest first.
    pub(crate) fn write_snapshot(&mut self, epoch: u32, bytes_by_site: HashMap<u32, f64>) -> Result<(), Error> {
        let mut rows: Vec<(u32, f64)> = bytes_by_site.into_iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        let path = self.dir.join(SITE_ROWS_FILE);
        for (site, bytes) in rows {
            let row = SiteRow { epoch, site, bytes: bytes.round() as u64 };
            self.rows.serialize(row).map_err(|e| out_err(&path, e))?;
        }
        self.rows.flush().map_err(|e| out_err(&path, e))
    }
}

pub(crate) fn out_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Output { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) }
}

impl HeapAttribution {
    /// Create the site files in `dir` and, for jemalloc, switch its sampling on. For
    /// dhat, start its profiler after this (with [`DHAT_MAX_FRAMES`]), so that this
    /// state is not counted as the program's.
    pub fn start(dir: &Path, source: StackSource) -> Result<Self, Error> {
        if source == StackSource::JemallocSampled {
            activate_sampling(true)?;
        }
        let mut folders = vec![dir.join("heap")];
        if source == StackSource::DhatExact {
            folders.push(dir.join(DHAT_DIR));
        }
        for folder in &folders {
            fs::create_dir_all(folder).map_err(|e| out_err(folder, e))?;
        }
        Ok(HeapAttribution { source, dir: dir.to_path_buf(), symbols: Symbolizer::new(), table: SiteTable::create(dir)?, snapshots: Vec::new() })
    }

    /// Take the live heap at the end of `epoch` and append its per-site bytes.
    pub fn snapshot(&mut self, epoch: u32) -> Result<(), Error> {
        match self.source {
            StackSource::JemallocSampled => {
                let path = self.dir.join("heap").join(format!("epoch-{epoch}.heap"));
                dump_profile(&path)?;
                // Our own parsing and symbol cache are not the program's memory: do not
                // sample them.
                activate_sampling(false)?;
                let result = load_jemalloc(&path).and_then(|stacks| self.attribute(epoch, &path, stacks));
                activate_sampling(true)?;
                result
            }
            // Likewise not counted by dhat. Exact mode's path switch stays on: a block
            // dhat counted must be freed through it, whichever thread frees it.
            StackSource::DhatExact => dhat::untracked(|| {
                let json = self.dir.join(DHAT_DIR).join(format!("epoch-{epoch}.json"));
                // The JSON and the live heap describe one instant: their bytes agree.
                let live = dhat::save_snapshot(&json).map_err(|e| out_err(&json, e))?;
                let stacks: Vec<LiveStack> = live.into_iter().map(|pp| LiveStack { addrs: pp.ips, bytes: pp.curr_bytes as f64 }).collect();
                let path = self.dir.join("heap").join(format!("epoch-{epoch}.live"));
                save_live(&path, &stacks)?;
                self.attribute(epoch, &path, stacks)
            }),
        }
    }

    fn attribute(&mut self, epoch: u32, path: &Path, stacks: Vec<LiveStack>) -> Result<(), Error> {
        let mut bytes_by_site: HashMap<u32, f64> = HashMap::new();
        for stack in &stacks {
            let frames: Vec<Frame> = stack.addrs.iter().flat_map(|&a| self.symbols.resolve(a).to_vec()).collect();
            let site = self.site_of(&frames)?;
            *bytes_by_site.entry(site).or_default() += stack.bytes;
        }
        self.table.write_snapshot(epoch, bytes_by_site)?;
        self.snapshots.push((epoch, path.to_path_buf()));
        Ok(())
    }

    fn site_of(&mut self, frames: &[Frame]) -> Result<u32, Error> {
        // A frame with a location in the program's source; failing that (a release build
        // without line tables), a frame whose symbol names the program's own function.
        let has_source = |f: &Frame| !is_plumbing(f);
        let is_own: &dyn Fn(&Frame) -> bool = if frames.iter().any(has_source) { &has_source } else { &is_program_symbol };
        let site_index = frames.iter().position(is_own);
        let via = site_index
            .map(|i| {
                frames[i + 1..]
                    .iter()
                    .filter(|f| is_own(f) && !f.function.starts_with('{'))
                    .take(CALLERS_IN_KEY)
                    .map(|f| f.function.as_str())
                    .collect::<Vec<_>>()
                    .join(" <- ")
            })
            .unwrap_or_default();
        let (function, location) = match site_index {
            Some(i) => {
                let f = &frames[i];
                // A closure's name says little; name the function it is in.
                let mut function = f.function.clone();
                if function.starts_with("{closure") {
                    if let Some(outer) = frames[i + 1..].iter().find(|o| !o.function.starts_with('{')) {
                        function = format!("{function} in {}", outer.function);
                    }
                }
                let location = match (&f.file, f.line) {
                    (Some(file), line) => format!("{}:{}", relative(file), line.unwrap_or(0)),
                    (None, _) => NO_LINE_TABLES.to_string(),
                };
                (function, location)
            }
            None => ("<no frame in the program's source>".to_string(), String::new()),
        };
        // The allocator's own frames open every stack and say nothing: start after them.
        self.table.id_of(function, location, via, || describe_stack(frames.iter().skip_while(|f| is_allocator(f))))
    }

    /// Stop sampling and write the growth from the first post-warm-up snapshot to the
    /// last as `growth.pb.gz` (pprof) and `growth.svg` (flamegraph), if there are two.
    /// `warmup(n)` says how many of n snapshots are warm-up: the analysis owns that rule
    /// (callers pass `analysis::warmup_epochs`), so the heap profiles, which
    /// sit below it, never reach up for it.
    pub fn finish(&mut self, warmup: impl Fn(usize) -> usize) -> Result<(), Error> {
        let first = warmup(self.snapshots.len());
        match self.source {
            StackSource::JemallocSampled => {
                let _ = activate_sampling(false);
                self.write_growth(first)
            }
            StackSource::DhatExact => dhat::untracked(|| self.write_growth(first)),
        }
    }

    fn write_growth(&mut self, first: usize) -> Result<(), Error> {
        let n = self.snapshots.len();
        if n < 2 || first >= n - 1 {
            return Ok(());
        }
        let load = |p: &Path| match self.source {
            StackSource::JemallocSampled => load_jemalloc(p),
            StackSource::DhatExact => load_live(p),
        };
        let (before, after) = (load(&self.snapshots[first].1)?, load(&self.snapshots[n - 1].1)?);
        let mut weights: HashMap<Vec<usize>, f64> = HashMap::new();
        for s in after {
            *weights.entry(s.addrs).or_default() += s.bytes;
        }
        for s in before {
            *weights.entry(s.addrs).or_default() -= s.bytes;
        }
        let mut growth = pprof_util::StackProfile::default();
        for (mut addrs, weight) in weights.into_iter().filter(|(_, w)| *w > 0.0) {
            addrs.reverse(); // pprof_util keeps stacks outermost first
            growth.push_stack(pprof_util::WeightedStack { addrs, weight }, None);
        }
        let pb = self.dir.join("growth.pb.gz");
        fs::write(&pb, growth.to_pprof(("inuse_space", "bytes"), ("space", "bytes"), None)).map_err(|e| out_err(&pb, e))?;
        if !growth.stacks.is_empty() {
            let mut opts = pprof_util::FlamegraphOptions::default();
            opts.title = format!("Heap growth, end of epoch {} to end of epoch {}", self.snapshots[first].0, self.snapshots[n - 1].0);
            opts.count_name = "bytes".into();
            let svg = growth.to_flamegraph(&mut opts).map_err(|e| Error::HeapProfile(e.to_string()))?;
            let path = self.dir.join("growth.svg");
            fs::write(&path, svg).map_err(|e| out_err(&path, e))?;
        }
        Ok(())
    }
}

pub(crate) fn read_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::HeapProfile(format!("{}: {e}", path.display()))
}

/// A jemalloc heap dump's stacks, from the allocation outwards.
pub(crate) fn load_jemalloc(path: &Path) -> Result<Vec<LiveStack>, Error> {
    let file = File::open(path).map_err(|e| read_err(path, e))?;
    stacks_of(path, pprof_util::parse_jeheap(BufReader::new(file), None))
}

/// The same, from a dump's text already read (`path` names it in errors).
pub(crate) fn load_jemalloc_text(path: &Path, text: &str) -> Result<Vec<LiveStack>, Error> {
    stacks_of(path, pprof_util::parse_jeheap(text.as_bytes(), None))
}

fn stacks_of(path: &Path, profile: anyhow::Result<pprof_util::StackProfile>) -> Result<Vec<LiveStack>, Error> {
    let profile = profile.map_err(|e| read_err(path, e))?;
    // parse_jeheap stores stacks outermost first.
    Ok(profile.iter().map(|(s, _)| LiveStack { addrs: s.addrs.iter().rev().copied().collect(), bytes: s.weight }).collect())
}

/// Write a live heap as lines of `bytes addr addr ...` (hex addresses, allocation first).
fn save_live(path: &Path, stacks: &[LiveStack]) -> Result<(), Error> {
    let write = || -> std::io::Result<()> {
        let mut w = BufWriter::new(File::create(path)?);
        for s in stacks {
            write!(w, "{}", s.bytes)?;
            for a in &s.addrs {
                write!(w, " {a:x}")?;
            }
            writeln!(w)?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_data()
    };
    write().map_err(|e| out_err(path, e))
}

/// Read what [`save_live`] wrote.
fn load_live(path: &Path) -> Result<Vec<LiveStack>, Error> {
    let file = File::open(path).map_err(|e| read_err(path, e))?;
    let mut stacks = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| read_err(path, e))?;
        let bad = || read_err(path, format!("line {}: expected `bytes addr addr ...`", i + 1));
        let mut parts = line.split_whitespace();
        let bytes: f64 = parts.next().and_then(|b| b.parse().ok()).ok_or_else(bad)?;
        let addrs = parts.map(|a| usize::from_str_radix(a, 16).map_err(|_| bad())).collect::<Result<_, _>>()?;
        stacks.push(LiveStack { addrs, bytes });
    }
    Ok(stacks)
}

/// Frames joined by " <- ", with each run of frames inside one shared library folded
/// into one entry ("libtorch_cpu.so (x23)"): libtorch alone can be dozens deep.
pub(crate) fn describe_stack<'a>(frames: impl Iterator<Item = &'a Frame>) -> String {
    let mut parts: Vec<(String, usize)> = Vec::new();
    for f in frames {
        let library = f.file.is_none().then(|| f.function.split_once('+').map(|(lib, _)| lib.to_string())).flatten();
        match (&library, parts.last_mut()) {
            (Some(lib), Some((last, n))) if last == lib => *n += 1,
            (Some(lib), _) => parts.push((lib.clone(), 1)),
            (None, _) => parts.push((f.describe(), 0)),
        }
        if parts.len() >= MAX_STACK_FRAMES {
            break;
        }
    }
    parts
        .into_iter()
        .map(|(text, n)| if n > 1 { format!("{text} (x{n})") } else { text })
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// Read `sites.csv` and `heap_sites.csv` from a run folder (`None` if attribution was off).
/// A partial last line (a killed run) is end of data; anything else malformed is an error
/// naming the file and line.
pub fn read_sites(dir: &Path) -> Result<Option<(Vec<SiteInfo>, Vec<SiteRow>)>, Error> {
    let (sites_path, rows_path) = (dir.join(SITES_FILE), dir.join(SITE_ROWS_FILE));
    if !sites_path.exists() || !rows_path.exists() {
        return Ok(None);
    }
    Ok(Some((read_complete_rows(&sites_path)?, read_complete_rows(&rows_path)?)))
}

fn read_complete_rows<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, Error> {
    let malformed = |line: u64, message: String| {
        Error::Timeline(crate::timeline::TimelineError::Malformed { path: path.to_path_buf(), line, message })
    };
    let text = fs::read_to_string(path).map_err(|e| malformed(0, e.to_string()))?;
    let complete = crate::timeline::complete_lines(&text);
    let mut out = Vec::new();
    for (i, r) in csv::Reader::from_reader(complete.as_bytes()).deserialize().enumerate() {
        out.push(r.map_err(|e: csv::Error| malformed(i as u64 + 2, e.to_string()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epoch-1.live");
        let stacks = vec![LiveStack { addrs: vec![0x55d0_1234, 0x7f00_0001], bytes: 4096.0 }, LiveStack { addrs: vec![], bytes: 8.0 }];
        save_live(&path, &stacks).unwrap();
        let back = load_live(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].addrs.clone(), back[0].bytes), (stacks[0].addrs.clone(), 4096.0));
        fs::write(&path, "12 zz\n").unwrap();
        assert!(load_live(&path).unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn library_frames_fold_and_own_frames_stay() {
        let lib = |off: u32| Frame { function: format!("libtorch_cpu.so+{off:#x}"), file: None, line: None };
        let own = Frame { function: "validate_epoch".into(), file: Some("src/validate.rs".into()), line: Some(3) };
        let mut frames: Vec<Frame> = (0..60).map(lib).collect();
        frames.push(own);
        let text = describe_stack(frames.iter());
        assert_eq!(text, "libtorch_cpu.so (x60) <- validate_epoch (src/validate.rs:3)");
    }
}
