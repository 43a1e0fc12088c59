//! Python objects from the censuses of a watched trainer (`objects/epoch-N.json`, written
//! by `python/diagnose_census.py`): each named container and each type, its bytes and
//! items at every epoch end, classed like every other series. A container that grows is
//! named by the path that keeps it alive (`Trainer.all_pred_bboxes`). DataLoader workers
//! forked from the trainer write their own censuses (`epoch-N-worker-PID.json`); a
//! persistent worker's series are followed as `worker PID: ...`. Distributed ranks other
//! than the first process (torch.multiprocessing.spawn, torchrun) write
//! `epoch-N-rank-R.json`, followed as `rank R: ...`.
//!
//! Besides containers, a census reports lone tensors whose graph grows (`tensor`), arrays
//! held directly as an attribute's value (`value`: one ndarray made larger each epoch is
//! a new object every time, followed by its name), and nn.Module hook dicts (`hooks`:
//! items are hooks, classed by their count).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::verdict::{classify, Class, Tolerance};
use super::theil_sen;
use crate::error::Error;

/// Census counts are exact (no sampling): growth under 4 KiB or 1 % of the level per
/// epoch is noise (a dict resizing, a few strings).
pub const OBJECT_TOLERANCE: Tolerance = Tolerance { floor_bytes: 4096.0, relative: 0.01, span_epochs: super::verdict::REFERENCE_SPAN_EPOCHS, settling: 0.0 };

#[derive(Deserialize)]
struct CensusFile {
    epoch: u32,
    /// The process that took it, and whether it was the trainer (`main`) or a process
    /// forked from it (`worker`, a DataLoader worker).
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    seconds: f64,
    #[serde(default)]
    objects: Option<u64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    containers: Vec<ContainerRow>,
    #[serde(default)]
    types: Vec<TypeRow>,
    /// Objects a step could not inspect (their class raised), and the types skipped.
    #[serde(default)]
    skipped_objects: u64,
    #[serde(default)]
    skipped_types: Vec<SkippedType>,
    /// A worker's light census: its dataset's containers only.
    #[serde(default)]
    light: bool,
    /// Bytes of every type counted (not only the top rows written), and of them the CPU
    /// tensors' and numpy arrays' storage (which glibc's malloc holds).
    #[serde(default)]
    total_bytes: Option<u64>,
    #[serde(default)]
    array_bytes: Option<u64>,
    /// glibc's malloc counters (mallinfo2) at the census.
    #[serde(default)]
    malloc: Option<MallocRow>,
    /// A distributed rank's census: its rank.
    #[serde(default)]
    rank: Option<u32>,
    /// Whether the census got the autograd gate (`ok`), or why not (`timeout`,
    /// `inside backward`, `not installed`): graphs were then not walked.
    #[serde(default)]
    graph_gate: Option<String>,
    /// What the census searched beyond gc-tracked objects.
    #[serde(default)]
    searched: Option<Searched>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Searched {
    /// Untracked dicts and arrays reached through instances, modules and closures.
    #[serde(default)]
    untracked: bool,
    /// More owners than the census searches: some were left out.
    #[serde(default)]
    truncated: bool,
}

#[derive(Deserialize)]
struct SkippedType {
    #[serde(rename = "type")]
    type_name: String,
    count: u64,
}

#[derive(Deserialize, Clone, Copy)]
struct MallocRow {
    in_use: u64,
    free: u64,
}

#[derive(Deserialize)]
struct ContainerRow {
    name: String,
    #[serde(rename = "type")]
    type_name: Option<String>,
    items: u64,
    bytes: u64,
    #[serde(default)]
    allocated_at: Option<String>,
    /// `tensor` for a lone tensor followed for its autograd graph; else a container.
    #[serde(default)]
    kind: Option<String>,
    /// What its tensors keep alive through their autograd graphs: nodes, and the bytes of
    /// the tensors saved for backward (included in `bytes`).
    #[serde(default)]
    graph_nodes: u64,
    #[serde(default)]
    graph_bytes: u64,
}

#[derive(Deserialize)]
struct TypeRow {
    #[serde(rename = "type")]
    type_name: String,
    count: u64,
    bytes: u64,
}

/// The verdict on one container or type.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectVerdict {
    /// `container` or `type`.
    pub kind: &'static str,
    /// The referrer path (containers) or the type's name.
    pub name: String,
    /// The container's type (list, dict, ...); for a type, the type itself.
    pub type_name: String,
    /// flat / bounded / growing / insufficient.
    pub class: Class,
    /// Bytes per epoch after warm-up.
    pub slope_bytes_per_epoch: Option<f64>,
    /// 90 % interval of the slope.
    pub slope_interval: Option<(f64, f64)>,
    /// Items (containers) or objects (types) per epoch after warm-up.
    pub items_per_epoch: Option<f64>,
    /// (epoch, bytes, items) at each census.
    pub by_epoch: Vec<(u32, u64, u64)>,
    /// With --python-tracemalloc: where its newest item was allocated, at the last census.
    pub allocated_at: Option<String>,
    /// Of the bytes per epoch, those of tensors saved for backward that its tensors keep
    /// alive through their autograd graphs.
    pub graph_bytes_per_epoch: Option<f64>,
    /// Autograd graph nodes its tensors keep, per epoch.
    pub graph_nodes_per_epoch: Option<f64>,
}

/// How much of the main process's growth Python objects account for, and where the rest
/// is by glibc's malloc: slopes per epoch over the censuses.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Accounting {
    /// All Python objects the census counted (tensors and arrays by their storage).
    pub python_bytes_per_epoch: f64,
    /// Of them, CPU tensors' and numpy arrays' storage (held in malloc).
    pub array_bytes_per_epoch: f64,
    /// glibc malloc: bytes in use (heap chunks and mmapped blocks).
    pub malloc_in_use_bytes_per_epoch: Option<f64>,
    /// glibc malloc: bytes held free in its arenas.
    pub malloc_free_bytes_per_epoch: Option<f64>,
}

/// A DataLoader worker's containers and types are followed when it took at least this
/// many censuses (persistent workers); a worker made for one epoch has one.
pub const MIN_WORKER_CENSUSES: usize = 3;

/// What the censuses found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Censuses {
    /// Containers then types, growing first, then by bytes. A worker's are named
    /// `worker PID: ...`.
    pub objects: Vec<ObjectVerdict>,
    /// Censuses of the trainer's main process read.
    pub count: usize,
    /// Censuses of its forked workers read.
    pub worker_count: usize,
    /// The longest census, seconds.
    pub max_seconds: f64,
    /// Live gc-tracked objects at the largest census.
    pub max_objects: u64,
    /// Errors the helper reported (the first few).
    pub errors: Vec<String>,
    /// Censuses of the main process that failed.
    pub failed: usize,
    /// Censuses of forked workers that failed.
    pub worker_failed: usize,
    /// The most objects one census could not inspect.
    pub skipped_objects: u64,
    /// The types of the objects skipped.
    pub skipped_types: Vec<String>,
    /// Worker censuses that were light (the dataset's containers only).
    pub light_worker_count: usize,
    /// The main process's objects against its malloc counters (3 censuses or more).
    pub accounting: Option<Accounting>,
    /// Censuses of distributed ranks (other than the main process) read.
    pub rank_count: usize,
    /// Censuses of the main process (or ranks) that wanted to walk autograd graphs but
    /// could not get the autograd gate: their bytes leave graphs out.
    pub graphs_not_walked: usize,
    /// Why those censuses could not get the gate (`timeout`, `inside backward`, ...).
    pub gate_reasons: Vec<String>,
    /// Every census of the main process searched untracked holders (dicts of arrays,
    /// arrays held as attribute values) through instances, modules and closures.
    pub untracked_searched: bool,
    /// Some census had more owners than it searches.
    pub search_truncated: bool,
}

impl Censuses {
    /// What the censuses of the main process looked at, for the ledger's words.
    pub fn searched(&self) -> &'static str {
        match (self.untracked_searched, self.search_truncated) {
            (true, false) => "gc-tracked objects, and the dicts and arrays that instances, modules and closures hold",
            (true, true) => "gc-tracked objects, and the dicts and arrays held by the first 500,000 instances, modules and closures",
            (false, _) => "gc-tracked objects and the containers holding them (not dicts or arrays that gc does not track)",
        }
    }

    /// Lines for the ledger: the program's lines whose live allocations grow
    /// (--python-tracemalloc), and how the censuses went (graphs not walked).
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let lines: Vec<String> = self
            .objects
            .iter()
            .filter(|o| o.kind == "line" && o.class == Class::Growing && o.slope_bytes_per_epoch.unwrap_or(0.0) >= 64.0 * 1024.0)
            .take(3)
            .map(|o| {
                let code = if o.type_name.is_empty() { String::new() } else { format!("`{}` at ", o.type_name) };
                format!("{code}{} {}/epoch", o.name, crate::format::signed_bytes(o.slope_bytes_per_epoch.unwrap_or(0.0)))
            })
            .collect();
        if !lines.is_empty() {
            out.push(format!(
                "Python lines whose live allocations grow from epoch end to epoch end (tracemalloc; numpy's buffers included, torch's tensors not): {}.",
                lines.join("; ")
            ));
        }
        if self.graphs_not_walked > 0 {
            out.push(format!(
                "{} census(es) walked no autograd graphs ({}): the bytes they give leave out the tensors that kept tensors' graphs hold.",
                self.graphs_not_walked,
                self.gate_reasons.iter().map(|r| match r.as_str() {
                    "timeout" => "a backward pass ran all through the wait for the autograd gate",
                    "inside backward" => "taken inside a backward pass",
                    "not installed" => "the autograd gate could not be installed",
                    _ => "no autograd gate",
                }).collect::<Vec<_>>().join("; ")
            ));
        }
        out
    }
}

/// The ledger line for a growing object that is not a container: an array held as an
/// attribute's value that grows, or hooks that pile up. `None` for other kinds.
pub fn special_line(o: &ObjectVerdict) -> Option<String> {
    use crate::format::{human_bytes, signed_bytes};
    let last = o.by_epoch.last().map_or(0, |p| p.1);
    let at = o.allocated_at.as_deref().map(|a| a.split_once(' ').map_or(a, |x| x.1));
    match o.kind {
        "value" => Some(format!(
            "Python: {} ({}, {}/epoch) keeps growing: one array made larger every epoch (`np.concatenate` or `torch.cat` onto what it held), a new object each time under the same name; it holds {} at the last census.{} Keep a list of the epoch's arrays and reset it each epoch, or keep only what you need (a running sum, the last epoch's).",
            o.name,
            o.type_name,
            signed_bytes(o.slope_bytes_per_epoch.unwrap_or(0.0)),
            human_bytes(last as f64),
            at.map_or(String::new(), |a| format!(" The array held now was made at {a}."))
        )),
        "hooks" => {
            let hooks = o.by_epoch.last().map_or(0, |p| p.2);
            let newest = o.allocated_at.as_deref().unwrap_or("").trim_start_matches("hook ");
            Some(format!(
                "Python: hooks pile up on {}: {:+.1} hooks/epoch ({hooks} at the last census){}. Something registers a hook again at every epoch and never removes the one before: keep the handle that `register_*_hook` returns and call `handle.remove()`, or register once.",
                o.name,
                o.items_per_epoch.unwrap_or(0.0),
                if newest.is_empty() { String::new() } else { format!("; the newest, {newest}") }
            ))
        }
        _ => None,
    }
}

/// Errors kept for the report; the rest are counted.
const MAX_ERRORS: usize = 3;

/// Every `*.json` file in `folder` (none when it does not exist), each parsed as a `T`;
/// one that is not is an error naming it as not `what`.
pub(crate) fn read_json_files<T: serde::de::DeserializeOwned>(folder: &Path, what: &str) -> Result<Vec<T>, Error> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Ok(Vec::new()) };
    let mut files = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Output { path: path.clone(), source })?;
            files.push(serde_json::from_str(&text).map_err(|e| Error::Config(format!("{}: not {what}: {e}", path.display())))?);
        }
    }
    Ok(files)
}

/// Read `dir/objects/epoch-*.json`; `None` when there are none.
pub fn read_censuses(dir: &Path) -> Result<Option<Censuses>, Error> {
    let mut files: Vec<CensusFile> = read_json_files(&dir.join("objects"), "a census file")?;
    if files.is_empty() {
        return Ok(None);
    }
    files.sort_by_key(|f| f.epoch);
    Ok(Some(analyze_censuses(&files)))
}

fn analyze_censuses(files: &[CensusFile]) -> Censuses {
    // name -> (type, epoch -> (bytes, items)); a container replaced under the same name
    // within one census (the old one reported empty) adds up.
    // Keyed by (process prefix, name): "" for the trainer, "worker PID: " for a worker.
    let mut containers: BTreeMap<(String, String), (String, BTreeMap<u32, (u64, u64)>)> = BTreeMap::new();
    let mut allocated_at: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut types: BTreeMap<(String, String), BTreeMap<u32, (u64, u64)>> = BTreeMap::new();
    let worker_prefix = |f: &CensusFile| match (f.role.as_deref(), f.pid, f.rank) {
        (Some("worker"), Some(pid), _) => Some(format!("worker {pid}: ")),
        (Some("rank"), _, Some(rank)) => Some(format!("rank {rank}: ")),
        _ => None,
    };
    let is_rank = |f: &CensusFile| f.role.as_deref() == Some("rank") && f.rank.is_some();
    let rank_count = files.iter().filter(|f| is_rank(f)).count();
    let worker_count = files.iter().filter(|f| worker_prefix(f).is_some()).count() - rank_count;
    let mut out = Censuses { count: files.len() - worker_count - rank_count, worker_count, rank_count, ..Censuses::default() };
    let mains: Vec<&CensusFile> = files.iter().filter(|f| worker_prefix(f).is_none() && f.error.is_none()).collect();
    out.untracked_searched = !mains.is_empty() && mains.iter().all(|f| f.searched.is_some_and(|s| s.untracked));
    out.search_truncated = mains.iter().any(|f| f.searched.is_some_and(|s| s.truncated));
    let mut reasons = std::collections::BTreeSet::new();
    for f in files.iter().filter(|f| f.role.as_deref() != Some("worker")) {
        if let Some(g) = f.graph_gate.as_deref().filter(|g| *g != "ok") {
            out.graphs_not_walked += 1;
            reasons.insert(g.to_string());
        }
    }
    out.gate_reasons = reasons.into_iter().collect();
    let mut skipped_types = std::collections::BTreeSet::new();
    // The main process's totals per epoch: Python objects, arrays, malloc in use and free.
    let mut totals: Vec<(f64, [Option<f64>; 4])> = Vec::new();
    let mut graphs: BTreeMap<(String, String), BTreeMap<u32, (u64, u64)>> = BTreeMap::new();
    let mut kinds: BTreeMap<(String, String), &'static str> = BTreeMap::new();
    for f in files {
        let prefix = worker_prefix(f).unwrap_or_default();
        out.max_seconds = out.max_seconds.max(f.seconds);
        out.max_objects = out.max_objects.max(f.objects.unwrap_or(0));
        out.light_worker_count += usize::from(f.light && !prefix.is_empty());
        if let Some(e) = &f.error {
            if prefix.is_empty() || is_rank(f) {
                out.failed += 1;
            } else {
                out.worker_failed += 1;
            }
            if out.errors.len() < MAX_ERRORS {
                out.errors.push(format!("{prefix}epoch {}: {e}", f.epoch));
            }
        }
        out.skipped_objects = out.skipped_objects.max(f.skipped_objects);
        skipped_types.extend(f.skipped_types.iter().filter(|t| t.count > 0).map(|t| t.type_name.clone()));
        if prefix.is_empty() && f.error.is_none() {
            let m = f.malloc;
            totals.push((f.epoch as f64, [f.total_bytes.map(|b| b as f64), f.array_bytes.map(|b| b as f64), m.map(|m| m.in_use as f64), m.map(|m| m.free as f64)]));
        }
        for c in &f.containers {
            let key = (prefix.clone(), c.name.clone());
            let entry = containers.entry(key.clone()).or_insert_with(|| (String::new(), BTreeMap::new()));
            if let Some(t) = &c.type_name {
                entry.0 = t.clone();
            }
            if let Some(at) = &c.allocated_at {
                allocated_at.insert(key.clone(), at.clone());
            }
            match c.kind.as_deref() {
                Some("tensor") => kinds.insert(key.clone(), "tensor"),
                Some("value") => kinds.insert(key.clone(), "value"),
                Some("hooks") => kinds.insert(key.clone(), "hooks"),
                Some("line") => kinds.insert(key.clone(), "line"),
                _ => None,
            };
            let g = graphs.entry(key).or_default().entry(f.epoch).or_insert((0, 0));
            g.0 += c.graph_bytes;
            g.1 += c.graph_nodes;
            let v = entry.1.entry(f.epoch).or_insert((0, 0));
            v.0 += c.bytes;
            v.1 += c.items;
        }
        for t in &f.types {
            types.entry((prefix.clone(), t.type_name.clone())).or_default().insert(f.epoch, (t.bytes, t.count));
        }
    }
    out.skipped_types = skipped_types.into_iter().take(10).collect();
    out.accounting = accounting(&totals);
    // A worker that lived for an epoch or two (recreated every epoch) has no trend.
    let followed = |prefix: &str, by: &BTreeMap<u32, (u64, u64)>| prefix.is_empty() || by.len() >= MIN_WORKER_CENSUSES;
    containers.retain(|(prefix, _), (_, by)| followed(prefix, by));
    types.retain(|(prefix, _), by| followed(prefix, by));
    let verdict = |kind, name: String, type_name: String, by: &BTreeMap<u32, (u64, u64)>| {
        let by_epoch: Vec<(u32, u64, u64)> = by.iter().map(|(e, (b, i))| (*e, *b, *i)).collect();
        let bytes: Vec<(f64, f64)> = by_epoch.iter().map(|p| (p.0 as f64, p.1 as f64)).collect();
        let items: Vec<(f64, f64)> = by_epoch.iter().map(|p| (p.0 as f64, p.2 as f64)).collect();
        let c = classify(&bytes, OBJECT_TOLERANCE);
        ObjectVerdict {
            kind,
            name,
            type_name,
            class: c.class,
            slope_bytes_per_epoch: c.trend.map(|t| t.slope),
            slope_interval: c.trend.and_then(|t| t.interval()),
            // Over the epochs the byte slope was fitted on (from the knee, for late growth).
            items_per_epoch: theil_sen(&c.fitted(&items, |p| p.0)).map(|t| t.slope),
            by_epoch,
            allocated_at: None,
            graph_bytes_per_epoch: None,
            graph_nodes_per_epoch: None,
        }
    };
    let mut objects: Vec<ObjectVerdict> = containers
        .into_iter()
        .map(|(key, (t, by))| {
            let kind = kinds.get(&key).copied().unwrap_or("container");
            let mut v = verdict(kind, format!("{}{}", key.0, key.1), t, &by);
            if kind == "hooks" {
                v = hooks_verdict(v);
            }
            // The graph's share, over the epochs the container's bytes were fitted on.
            let g: Vec<(f64, f64, f64)> = graphs.get(&key).map_or(Vec::new(), |g| g.iter().map(|(e, (b, n))| (*e as f64, *b as f64, *n as f64)).collect());
            let slope_of = |col: fn(&(f64, f64, f64)) -> f64| {
                let pts: Vec<(f64, f64)> = g.iter().map(|x| (x.0, col(x))).collect();
                pts.iter().any(|p| p.1 > 0.0).then(|| theil_sen(&pts).map(|t| t.slope)).flatten()
            };
            ObjectVerdict {
                allocated_at: allocated_at.get(&key).cloned(),
                graph_bytes_per_epoch: slope_of(|x| x.1),
                graph_nodes_per_epoch: slope_of(|x| x.2),
                ..v
            }
        })
        .collect();
    let mut by_type: Vec<ObjectVerdict> = types.into_iter().map(|((prefix, t), by)| sampled_type_verdict(verdict("type", format!("{prefix}{t}"), t, &by))).collect();
    let rank = |v: &ObjectVerdict| (v.class != Class::Growing, -(v.slope_bytes_per_epoch.unwrap_or(0.0) as i64));
    objects.sort_by_key(rank);
    by_type.sort_by_key(rank);
    objects.extend(by_type);
    out.objects = objects;
    out
}

/// A type other than tensors and arrays is sized from a sample of its instances: with as
/// many instances at every census, bytes that rise are the sample's, not the program's
/// (`list`: 11216 at every census of a clean trainer, sized 1.1 then 2.7 MB). Growing
/// only when the count rises too.
fn sampled_type_verdict(mut v: ObjectVerdict) -> ObjectVerdict {
    let exact = v.type_name.starts_with("torch.Tensor") || v.type_name == "numpy.ndarray";
    let count_rose = match (v.by_epoch.first(), v.by_epoch.last()) {
        (Some(a), Some(b)) => b.2 > a.2 && v.items_per_epoch.is_some_and(|s| s > 0.0),
        _ => false,
    };
    if v.class == Class::Growing && !exact && !count_rose {
        v.class = Class::Flat;
    }
    v
}

/// Hooks are classed by their count, not their bytes (a hook is a few hundred bytes):
/// growing when at least one more is added every other epoch, steadily (the count rose
/// by 2 or more and never fell over the censuses); flat otherwise.
fn hooks_verdict(mut v: ObjectVerdict) -> ObjectVerdict {
    let items: Vec<(f64, f64)> = v.by_epoch.iter().map(|p| (p.0 as f64, p.2 as f64)).collect();
    let slope = theil_sen(&items).map(|t| t.slope);
    let rose = match (items.first(), items.last()) {
        (Some(a), Some(b)) => b.1 - a.1,
        _ => 0.0,
    };
    let monotone = items.windows(2).all(|w| w[1].1 >= w[0].1);
    v.items_per_epoch = slope;
    v.class = if items.len() < 3 {
        Class::Insufficient
    } else if slope.unwrap_or(0.0) >= 0.5 && rose >= 2.0 && monotone {
        Class::Growing
    } else {
        Class::Flat
    };
    v
}

/// Slopes of the main process's totals over its censuses (3 at least).
fn accounting(totals: &[(f64, [Option<f64>; 4])]) -> Option<Accounting> {
    let slope = |i: usize| -> Option<f64> {
        let pts: Vec<(f64, f64)> = totals.iter().filter_map(|(e, v)| Some((*e, v[i]?))).collect();
        (pts.len() >= 3).then(|| theil_sen(&pts).map(|t| t.slope)).flatten()
    };
    Some(Accounting {
        python_bytes_per_epoch: slope(0)?,
        array_bytes_per_epoch: slope(1).unwrap_or(0.0),
        malloc_in_use_bytes_per_epoch: slope(2),
        malloc_free_bytes_per_epoch: slope(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, bytes: u64, items: u64) -> ContainerRow {
        ContainerRow { name: name.to_string(), type_name: Some("list".into()), items, bytes, allocated_at: None, kind: None, graph_nodes: 0, graph_bytes: 0 }
    }

    fn file(epoch: u32, containers: &[(&str, u64, u64)]) -> CensusFile {
        CensusFile {
            epoch,
            pid: None,
            role: None,
            seconds: 0.1 * epoch as f64,
            objects: Some(1000),
            error: None,
            containers: containers.iter().map(|(n, b, i)| row(n, *b, *i)).collect(),
            types: vec![TypeRow { type_name: "torch.Tensor(cpu)".into(), count: 10 * epoch as u64, bytes: 1 << 20 }],
            skipped_objects: 0,
            skipped_types: Vec::new(),
            light: false,
            total_bytes: None,
            array_bytes: None,
            malloc: None,
            rank: None,
            graph_gate: None,
            searched: None,
        }
    }

    #[test]
    fn growing_lists_rank_first_and_a_full_cache_is_not_growing() {
        let files: Vec<CensusFile> = (1..8u32)
            .map(|e| file(e, &[("Trainer.cache", 400_000 * e.min(4) as u64, 100 * e.min(4) as u64), ("Trainer.all_pred_bboxes", 413_000 * e as u64, 400 * e as u64)]))
            .collect();
        let c = analyze_censuses(&files);
        let top = &c.objects[0];
        assert_eq!((top.name.as_str(), top.class), ("Trainer.all_pred_bboxes", Class::Growing));
        assert!((top.slope_bytes_per_epoch.unwrap() - 413_000.0).abs() < 1.0);
        assert!((top.items_per_epoch.unwrap() - 400.0).abs() < 1e-9);
        let cache = c.objects.iter().find(|o| o.name == "Trainer.cache").unwrap();
        assert_eq!(cache.class, Class::Bounded);
        assert_eq!(c.count, 7);
        assert!((c.max_seconds - 0.7).abs() < 1e-9);
        assert!(c.objects.iter().any(|o| o.kind == "type" && o.class == Class::Flat));
    }

    #[test]
    fn a_sampled_type_whose_count_holds_is_not_growing() {
        // A clean trainer's censuses (census_trainer.py --mode clean): 11216 lists at every
        // census, sized from a sample at 1.5, 1.1, 1.1, 1.2, 1.4, 2.7 MB.
        let sizes = [1_520_863u64, 1_098_663, 1_098_663, 1_199_197, 1_414_224, 2_740_770];
        let files: Vec<CensusFile> = sizes
            .iter()
            .enumerate()
            .map(|(e, b)| CensusFile { types: vec![TypeRow { type_name: "list".into(), count: 11216, bytes: *b }, TypeRow { type_name: "dict".into(), count: 5000 + 1000 * e as u64, bytes: 1_000_000 * (e as u64 + 1) }], ..file(e as u32, &[]) })
            .collect();
        let c = analyze_censuses(&files);
        let class = |n: &str| c.objects.iter().find(|o| o.kind == "type" && o.name == n).unwrap().class;
        assert_eq!(class("list"), Class::Flat);
        // Counted more at every census: growing.
        assert_eq!(class("dict"), Class::Growing);
    }

    #[test]
    fn a_list_that_starts_growing_late_is_growing_since_then() {
        // Flat at 100 items for 8 epochs, then 400 items (413 kB) more per epoch.
        let files: Vec<CensusFile> = (1..15u32)
            .map(|e| {
                let items = 100 + 400 * e.saturating_sub(8) as u64;
                file(e, &[("Trainer.late", items * 1032, items), ("Trainer.cache", 400_000, 100)])
            })
            .collect();
        let c = analyze_censuses(&files);
        let top = &c.objects[0];
        assert_eq!((top.name.as_str(), top.class), ("Trainer.late", Class::Growing), "{top:?}");
        assert!((top.slope_bytes_per_epoch.unwrap() - 412_800.0).abs() < 1.0, "{top:?}");
        assert!((top.items_per_epoch.unwrap() - 400.0).abs() < 1e-9, "{top:?}");
        assert_eq!(c.objects.iter().find(|o| o.name == "Trainer.cache").unwrap().class, Class::Flat);
    }

    #[test]
    fn persistent_workers_are_followed_apart_and_short_lived_ones_dropped() {
        let worker = |e: u32, pid: u32, bytes: u64| CensusFile { pid: Some(pid), role: Some("worker".into()), ..file(e, &[("Ds.seen", bytes, bytes / 1024)]) };
        let mut files = Vec::new();
        for e in 1..7u32 {
            files.push(file(e, &[("Ds.seen", 50_000, 50)])); // the trainer's copy stays
            files.push(worker(e, 100, 1_000_000 * e as u64)); // a persistent worker keeps 1 MB/epoch
            files.push(worker(e, 200 + e, 9_000_000 * e as u64)); // a worker per epoch: one census each
        }
        let c = analyze_censuses(&files);
        assert_eq!((c.count, c.worker_count), (6, 12));
        let top = &c.objects[0];
        assert_eq!((top.name.as_str(), top.class), ("worker 100: Ds.seen", Class::Growing), "{:?}", c.objects);
        assert!((top.slope_bytes_per_epoch.unwrap() - 1_000_000.0).abs() < 1.0);
        assert_eq!(c.objects.iter().find(|o| o.name == "Ds.seen").unwrap().class, Class::Flat);
        assert!(!c.objects.iter().any(|o| o.name.starts_with("worker 20")), "one-census workers dropped");
        assert!(c.objects.iter().any(|o| o.name == "worker 100: torch.Tensor(cpu)" && o.type_name == "torch.Tensor(cpu)"), "a worker's types too");
    }

    #[test]
    fn a_container_replaced_under_its_name_adds_up() {
        let files = vec![file(1, &[("m.buf", 100, 1)]), file(2, &[("m.buf", 0, 0), ("m.buf", 200, 2)])];
        let c = analyze_censuses(&files);
        assert_eq!(c.objects[0].by_epoch, vec![(1, 100, 1), (2, 200, 2)]);
    }

    #[test]
    fn a_list_kept_with_its_graphs_says_how_much_is_graph() {
        let files: Vec<CensusFile> = (1..7u32)
            .map(|e| {
                let mut f = file(e, &[]);
                f.containers.push(ContainerRow { graph_nodes: 120 * e as u64, graph_bytes: 25_000_000 * e as u64, ..row("Trainer.val_logits", 25_005_000 * e as u64, 10 * e as u64) });
                f.containers.push(ContainerRow { kind: Some("tensor".into()), graph_nodes: 900 * e as u64, graph_bytes: 3_000_000 * e as u64, ..row("Trainer.total_loss", 3_000_000 * e as u64, 900 * e as u64) });
                f
            })
            .collect();
        let c = analyze_censuses(&files);
        let logits = c.objects.iter().find(|o| o.name == "Trainer.val_logits").unwrap();
        assert_eq!((logits.kind, logits.class), ("container", Class::Growing));
        assert!((logits.graph_bytes_per_epoch.unwrap() - 25e6).abs() < 1.0);
        assert!((logits.graph_nodes_per_epoch.unwrap() - 120.0).abs() < 1e-9);
        let loss = c.objects.iter().find(|o| o.name == "Trainer.total_loss").unwrap();
        assert_eq!((loss.kind, loss.class), ("tensor", Class::Growing));
        // Without graphs, no graph share.
        let plain: Vec<CensusFile> = (1..7u32).map(|e| file(e, &[("Trainer.kept", 5_000 * e as u64, 10 * e as u64)])).collect();
        assert_eq!(analyze_censuses(&plain).objects[0].graph_bytes_per_epoch, None);
    }

    #[test]
    fn values_hooks_and_ranks_are_followed_by_name() {
        let files: Vec<CensusFile> = (1..7u32)
            .flat_map(|e| {
                let mut f = file(e, &[]);
                // One ndarray made larger each epoch; hooks added each epoch; hooks that stay.
                f.containers.push(ContainerRow { kind: Some("value".into()), type_name: Some("ndarray".into()), ..row("Trainer.val_probs", 16_000_000 * e as u64, 40_000 * e as u64) });
                f.containers.push(ContainerRow { kind: Some("hooks".into()), type_name: Some("_forward_hooks".into()), ..row("Net.fc._forward_hooks", 150 * e as u64, e as u64 + 1) });
                f.containers.push(ContainerRow { kind: Some("hooks".into()), ..row("Net.conv._forward_hooks", 300, 2) });
                f.graph_gate = Some(if e == 3 { "timeout".into() } else { "ok".into() });
                f.searched = Some(Searched { untracked: true, truncated: false });
                let r = CensusFile { pid: Some(77), role: Some("rank".into()), rank: Some(1), ..file(e, &[("Trainer.kept", 8_000_000 * e as u64, 10 * e as u64)]) };
                vec![f, r]
            })
            .collect();
        let c = analyze_censuses(&files);
        assert_eq!((c.count, c.rank_count, c.worker_count), (6, 6, 0));
        let v = c.objects.iter().find(|o| o.name == "Trainer.val_probs").unwrap();
        assert_eq!((v.kind, v.class), ("value", Class::Growing));
        let line = special_line(v).unwrap();
        assert!(line.starts_with("Python: Trainer.val_probs (ndarray, +15.3 MiB/epoch) keeps growing"), "{line}");
        let h = c.objects.iter().find(|o| o.name == "Net.fc._forward_hooks").unwrap();
        assert_eq!((h.kind, h.class), ("hooks", Class::Growing), "{h:?}");
        assert!(special_line(h).unwrap().contains("hooks pile up on Net.fc._forward_hooks: +1.0 hooks/epoch (7 at the last census)"));
        assert_eq!(c.objects.iter().find(|o| o.name == "Net.conv._forward_hooks").unwrap().class, Class::Flat);
        let r = c.objects.iter().find(|o| o.name == "rank 1: Trainer.kept").unwrap();
        assert_eq!(r.class, Class::Growing);
        assert_eq!((c.graphs_not_walked, c.gate_reasons.clone()), (1, vec!["timeout".to_string()]));
        assert!(c.notes()[0].contains("a backward pass ran all through"), "{:?}", c.notes());
        assert!(c.untracked_searched && c.searched().contains("instances, modules and closures"));
        // A line whose live allocations grow (tracemalloc).
        let lines: Vec<CensusFile> = (1..6u32)
            .map(|e| file(e, &[]))
            .map(|mut f| {
                let e = f.epoch as u64;
                f.containers.push(ContainerRow { kind: Some("line".into()), type_name: Some("self.p = np.concatenate([self.p, q])".into()), ..row("train.py:41", 16_000_000 * e, 3) });
                f
            })
            .collect();
        let c = analyze_censuses(&lines);
        assert!(c.notes()[0].contains("`self.p = np.concatenate([self.p, q])` at train.py:41 +15.3 MiB/epoch"), "{:?}", c.notes());
        assert!(!c.untracked_searched && c.searched().contains("not dicts or arrays that gc does not track"), "older censuses say nothing of it");
    }

    #[test]
    fn failures_and_skips_are_counted_and_totals_accounted() {
        let mut files: Vec<CensusFile> = (1..6u32)
            .map(|e| CensusFile {
                total_bytes: Some(50_000_000 + 200_000 * e as u64),
                array_bytes: Some(1_000_000),
                malloc: Some(MallocRow { in_use: 80_000_000 + 10_000_000 * e as u64, free: 5_000_000 }),
                skipped_objects: 3,
                skipped_types: vec![SkippedType { type_name: "Hostile".into(), count: 3 }],
                ..file(e, &[])
            })
            .collect();
        files.push(CensusFile { error: Some("AttributeError: x".into()), ..file(6, &[]) });
        files.push(CensusFile { error: Some("AttributeError: y".into()), pid: Some(9), role: Some("worker".into()), ..file(6, &[]) });
        let c = analyze_censuses(&files);
        assert_eq!((c.failed, c.worker_failed, c.count, c.worker_count), (1, 1, 6, 1));
        assert_eq!((c.skipped_objects, c.skipped_types.clone()), (3, vec!["Hostile".to_string()]));
        let a = c.accounting.unwrap();
        assert!((a.python_bytes_per_epoch - 200_000.0).abs() < 1.0, "{a:?}");
        assert!((a.malloc_in_use_bytes_per_epoch.unwrap() - 10e6).abs() < 1.0);
        assert_eq!(a.malloc_free_bytes_per_epoch, Some(0.0));
    }
}
