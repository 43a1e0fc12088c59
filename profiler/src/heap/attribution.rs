//! Streams per-site live bytes at each epoch end, and writes the growth profile at the end.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::jeprof::{activate_sampling, dump_profile};
use super::symbols::{is_plumbing, relative, Frame, Symbolizer};
use crate::error::Error;

/// Each site seen, once: `site, function, location, stack`.
pub const SITES_FILE: &str = "sites.csv";
/// Live bytes per site per snapshot: `epoch, site, bytes`.
pub const SITE_ROWS_FILE: &str = "heap_sites.csv";
/// The program's own callers that, with the allocating frame, tell sites apart.
const CALLERS_IN_KEY: usize = 3;
/// Frames kept in a site's stack description.
const MAX_STACK_FRAMES: usize = 40;

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
    dir: PathBuf,
    symbols: Symbolizer,
    site_ids: HashMap<(String, String, String), u32>,
    sites: csv::Writer<File>,
    rows: csv::Writer<File>,
    snapshots: Vec<(u32, PathBuf)>,
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Output { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) }
}

impl HeapAttribution {
    /// Switch jemalloc's sampling on and create the site files in `dir`.
    pub fn start(dir: &Path) -> Result<Self, Error> {
        activate_sampling(true)?;
        let heap_dir = dir.join("heap");
        fs::create_dir_all(&heap_dir).map_err(|e| out_err(&heap_dir, e))?;
        let open = |name: &str| {
            let p = dir.join(name);
            csv::Writer::from_path(&p).map_err(|e| out_err(&p, e))
        };
        Ok(HeapAttribution {
            dir: dir.to_path_buf(),
            symbols: Symbolizer::new(),
            site_ids: HashMap::new(),
            sites: open(SITES_FILE)?,
            rows: open(SITE_ROWS_FILE)?,
            snapshots: Vec::new(),
        })
    }

    /// Dump the sampled heap at the end of `epoch` and append its per-site bytes.
    pub fn snapshot(&mut self, epoch: u32) -> Result<(), Error> {
        let path = self.dir.join("heap").join(format!("epoch-{epoch}.heap"));
        dump_profile(&path)?;
        // Our own parsing and symbol cache are not the program's memory: do not sample them.
        activate_sampling(false)?;
        let result = self.attribute_dump(epoch, &path);
        activate_sampling(true)?;
        result
    }

    fn attribute_dump(&mut self, epoch: u32, path: &Path) -> Result<(), Error> {
        let path = path.to_path_buf();
        let file = File::open(&path).map_err(|e| Error::HeapProfile(format!("{}: {e}", path.display())))?;
        let profile = pprof_util::parse_jeheap(BufReader::new(file), None)
            .map_err(|e| Error::HeapProfile(format!("{}: {e}", path.display())))?;

        let mut bytes_by_site: HashMap<u32, f64> = HashMap::new();
        for (stack, _) in profile.iter() {
            // parse_jeheap stores stacks outermost first; walk from the allocation out.
            let frames: Vec<Frame> = stack.addrs.iter().rev().flat_map(|&a| self.symbols.resolve(a).to_vec()).collect();
            let site = self.site_of(&frames)?;
            *bytes_by_site.entry(site).or_default() += stack.weight;
        }
        let mut rows: Vec<(u32, f64)> = bytes_by_site.into_iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (site, bytes) in rows {
            let row = SiteRow { epoch, site, bytes: bytes.round() as u64 };
            self.rows.serialize(row).map_err(|e| out_err(&self.dir.join(SITE_ROWS_FILE), e))?;
        }
        self.rows.flush().map_err(|e| out_err(&self.dir.join(SITE_ROWS_FILE), e))?;
        self.snapshots.push((epoch, path));
        Ok(())
    }

    fn site_of(&mut self, frames: &[Frame]) -> Result<u32, Error> {
        let site_index = frames.iter().position(|f| !is_plumbing(f));
        let via = site_index
            .map(|i| {
                frames[i + 1..]
                    .iter()
                    .filter(|f| !is_plumbing(f) && !f.function.starts_with('{'))
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
                (function, format!("{}:{}", relative(f.file.as_deref().unwrap_or("?")), f.line.unwrap_or(0)))
            }
            None => ("<no frame in the program's source>".to_string(), String::new()),
        };
        let key = (function.clone(), location.clone(), via.clone());
        if let Some(&id) = self.site_ids.get(&key) {
            return Ok(id);
        }
        let id = self.site_ids.len() as u32;
        // The allocator's own frames open every stack and say nothing: start after them.
        let in_allocator = |f: &&Frame| f.file.as_deref().is_some_and(|p| p.contains("tikv-jemalloc") || p.contains("profiler/src/alloc.rs"));
        let stack = describe_stack(frames.iter().skip_while(in_allocator));
        let info = SiteInfo { site: id, function, location, via, stack };
        let path = self.dir.join(SITES_FILE);
        self.sites.serialize(&info).map_err(|e| out_err(&path, e))?;
        self.sites.flush().map_err(|e| out_err(&path, e))?;
        self.site_ids.insert(key, id);
        Ok(id)
    }

    /// Stop sampling and write the growth from the first post-warm-up snapshot to the
    /// last as `growth.pb.gz` (pprof) and `growth.svg` (flamegraph), if there are two.
    pub fn finish(&mut self) -> Result<(), Error> {
        let _ = activate_sampling(false);
        let n = self.snapshots.len();
        let first = crate::analysis::warmup_epochs(n);
        if n < 2 || first >= n - 1 {
            return Ok(());
        }
        let parse = |p: &Path| -> Result<pprof_util::StackProfile, Error> {
            let f = File::open(p).map_err(|e| Error::HeapProfile(format!("{}: {e}", p.display())))?;
            pprof_util::parse_jeheap(BufReader::new(f), None).map_err(|e| Error::HeapProfile(format!("{}: {e}", p.display())))
        };
        let (before, after) = (parse(&self.snapshots[first].1)?, parse(&self.snapshots[n - 1].1)?);
        let mut weights: HashMap<Vec<usize>, f64> = HashMap::new();
        for (s, _) in after.iter() {
            *weights.entry(s.addrs.clone()).or_default() += s.weight;
        }
        for (s, _) in before.iter() {
            *weights.entry(s.addrs.clone()).or_default() -= s.weight;
        }
        let mut growth = pprof_util::StackProfile::default();
        for (addrs, weight) in weights.into_iter().filter(|(_, w)| *w > 0.0) {
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

/// Frames joined by " <- ", with each run of frames inside one shared library folded
/// into one entry ("libtorch_cpu.so (x23)"): libtorch alone can be dozens deep.
fn describe_stack<'a>(frames: impl Iterator<Item = &'a Frame>) -> String {
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
    fn library_frames_fold_and_own_frames_stay() {
        let lib = |off: u32| Frame { function: format!("libtorch_cpu.so+{off:#x}"), file: None, line: None };
        let own = Frame { function: "validate_epoch".into(), file: Some("src/validate.rs".into()), line: Some(3) };
        let mut frames: Vec<Frame> = (0..60).map(lib).collect();
        frames.push(own);
        let text = describe_stack(frames.iter());
        assert_eq!(text, "libtorch_cpu.so (x60) <- validate_epoch (src/validate.rs:3)");
    }
}
