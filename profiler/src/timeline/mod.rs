//! The timeline: one row per boundary, the format shared by the writer and the reader.
//!
//! `timeline.csv` is plain CSV: its first line is the header, so any CSV reader opens it
//! as it is. The facts about the run that a report needs later (format version, memory
//! limit and where it came from, GPU state, what recorded it) are in `run.json` beside it:
//!
//! ```text
//! {"format":3,"mem_limit_bytes":25769803776,"mem_limit_source":"cgroup-v1","recorder":"run"}
//! ```
//!
//! Formats 1 and 2 put those facts in a `# profiler-timeline format=N ...` comment line
//! before the header; such files still load.
//!
//! The columns are the fields of [`Row`], in order; [`COLUMNS`] documents each one and a
//! test keeps the two in step.

mod reader;
mod writer;

pub(crate) use reader::complete_lines;
pub use reader::{read_timeline, stream_timeline, Timeline, TimelineError};
pub use writer::TimelineWriter;

use serde::{Deserialize, Serialize};

/// The version written in `run.json` (formats 1 and 2: in the timeline's first line).
pub const FORMAT_VERSION: u32 = 3;

/// The sidecar holding the run's facts, beside `timeline.csv`.
pub const RUN_FILE: &str = "run.json";

/// Format 1 had the columns before `tree_rss_bytes`; such files still load.
pub const FORMAT_1_COLUMNS: usize = 23;

/// Format 2 had the columns before `heap_peak_bytes`; such files still load.
pub const FORMAT_2_COLUMNS: usize = 45;

/// Facts recorded once, in `run.json` (formats 1 and 2: the timeline's first line).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimelineMeta {
    /// The memory the process may use: the smaller of MemTotal and the cgroup limit.
    pub mem_limit_bytes: Option<u64>,
    /// Where that limit came from (`meminfo`, `cgroup-v1`, `cgroup-v2`).
    pub mem_limit_source: Option<String>,
    /// Whether GPU columns are filled, and if not why (see `GpuStatus::to_token`).
    pub gpu: Option<String>,
    /// What recorded the rows: `run` (in-process profiler) or `watch` (from outside).
    pub recorder: Option<String>,
    /// With `watch --window`: epoch ends are fixed windows of this many seconds.
    pub window_s: Option<f64>,
    /// Windows were not asked for: no epoch boundary came in this many seconds, and the
    /// watch fell back to them.
    pub windows_after_s: Option<f64>,
    /// `watch --pid`: the process was running before the watch (log lines and markers
    /// cannot reach us).
    pub attached: Option<bool>,
    /// `watch --pid`: how many seconds the process had been running when the watch
    /// began (its start-up may be over); absent when the watch started the command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_age_s: Option<f64>,
    /// `watch`: how often boundaries read PSS and USS (a page walk per process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pss_budget: Option<PssBudget>,
    /// `watch`: the command ran in this memory cgroup of its own, and `tree_pss_bytes` is
    /// its anon + shmem (the kernel's count) rather than a sum of page walks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_pss_from_cgroup: Option<String>,
}

/// A watch reads PSS and USS at its first `always_full_epoch_ends` epoch ends, then at a
/// boundary only while those readings take under `cpu_share` of one core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PssBudget {
    /// Epoch ends always read in full.
    pub always_full_epoch_ends: u32,
    /// The share of one core (0.005: 0.5 %) the readings may take after them.
    pub cpu_share: f64,
}

/// `run.json`: the format version, then the facts.
#[derive(Serialize, Deserialize)]
pub(crate) struct RunFacts {
    pub format: u32,
    #[serde(flatten)]
    pub meta: TimelineMeta,
}

/// One boundary's measurements. Empty (`None`) where a source is off or unavailable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // documented column by column in COLUMNS
pub struct Row {
    pub t_s: f64,
    pub phase: String,
    pub epoch: Option<u32>,
    pub episode: Option<u64>,
    pub label: String,
    pub rss_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub pss_bytes: Option<u64>,
    pub je_allocated_bytes: Option<u64>,
    pub je_active_bytes: Option<u64>,
    pub je_resident_bytes: Option<u64>,
    pub je_mapped_bytes: Option<u64>,
    pub je_retained_bytes: Option<u64>,
    pub je_metadata_bytes: Option<u64>,
    pub heap_exact_bytes: Option<u64>,
    pub heap_exact_blocks: Option<u64>,
    pub gpu_device_used_bytes: Option<u64>,
    pub gpu_process_used_bytes: Option<u64>,
    pub gpu_allocated_bytes: Option<u64>,
    pub gpu_reserved_bytes: Option<u64>,
    pub gpu_peak_allocated_bytes: Option<u64>,
    pub gpu_peak_reserved_bytes: Option<u64>,
    pub user_bytes: Option<u64>,
    // Columns added in format 2: a watched process tree (`diagnose watch`), the memory
    // cgroup and the machine. A format-1 file lacks them; they read as empty.
    #[serde(default)]
    pub tree_rss_bytes: Option<u64>,
    #[serde(default)]
    pub tree_pss_bytes: Option<u64>,
    #[serde(default)]
    pub tree_uss_bytes: Option<u64>,
    #[serde(default)]
    pub tree_swap_bytes: Option<u64>,
    #[serde(default)]
    pub tree_processes: Option<u64>,
    #[serde(default)]
    pub main_rss_bytes: Option<u64>,
    #[serde(default)]
    pub main_pss_bytes: Option<u64>,
    #[serde(default)]
    pub main_uss_bytes: Option<u64>,
    #[serde(default)]
    pub workers_rss_bytes: Option<u64>,
    #[serde(default)]
    pub workers_pss_bytes: Option<u64>,
    #[serde(default)]
    pub workers_uss_bytes: Option<u64>,
    #[serde(default)]
    pub workers_count: Option<u64>,
    #[serde(default)]
    pub cgroup_usage_bytes: Option<u64>,
    #[serde(default)]
    pub cgroup_limit_bytes: Option<u64>,
    #[serde(default)]
    pub cgroup_working_set_bytes: Option<u64>,
    #[serde(default)]
    pub cgroup_anon_bytes: Option<u64>,
    #[serde(default)]
    pub cgroup_file_bytes: Option<u64>,
    #[serde(default)]
    pub cgroup_shmem_bytes: Option<u64>,
    #[serde(default)]
    pub cgroup_oom_kills: Option<u64>,
    #[serde(default)]
    pub system_used_bytes: Option<u64>,
    #[serde(default)]
    pub shm_used_bytes: Option<u64>,
    #[serde(default)]
    pub gpu_tree_used_bytes: Option<u64>,
    // Added in format 3.
    #[serde(default)]
    pub heap_peak_bytes: Option<u64>,
}

/// A column's name and what it holds, in file order (docs/output-files.md documents each, checked by tests/readme.rs).
pub const COLUMNS: &[(&str, &str)] = &[
    ("t_s", "seconds since the profiler started (monotonic clock)"),
    ("phase", "boundary kind: start, episode_end, triplet_end, validation_start, validation_end, epoch_end, finish, or a custom name"),
    ("epoch", "epoch index from 0 (empty if not given)"),
    ("episode", "episode/step index from 0 within the run (empty if not given)"),
    ("label", "free-form text given by the program"),
    ("rss_bytes", "resident set size of the process (VmRSS, /proc/self/status)"),
    ("peak_rss_bytes", "highest RSS since the previous boundary (VmHWM, reset at each boundary through /proc/self/clear_refs; the lifetime peak where the kernel refuses the reset)"),
    ("pss_bytes", "proportional set size (/proc/self/smaps_rollup): shared pages split among the processes sharing them; read at start, validation, epoch end and finish, empty at episode/triplet ends (it costs ~200 µs) and where unreadable"),
    ("je_allocated_bytes", "bytes in live allocations (jemalloc stats.allocated): Rust and libtorch C++ heap"),
    ("je_active_bytes", "bytes in pages holding live allocations (stats.active)"),
    ("je_resident_bytes", "bytes of allocator pages resident in RAM, incl. metadata and dirty unused pages (stats.resident)"),
    ("je_mapped_bytes", "bytes in extents mapped by the allocator (stats.mapped)"),
    ("je_retained_bytes", "virtual memory kept by the allocator but returned to the OS (stats.retained); not resident"),
    ("je_metadata_bytes", "allocator bookkeeping (stats.metadata)"),
    ("heap_exact_bytes", "exact live Rust heap bytes counted by dhat (exact mode only)"),
    ("heap_exact_blocks", "exact live Rust heap blocks counted by dhat (exact mode only)"),
    ("gpu_device_used_bytes", "GPU memory in use on the device, all processes (NVML)"),
    ("gpu_process_used_bytes", "GPU memory used by this process (NVML per-process)"),
    ("gpu_allocated_bytes", "bytes in live tensors in libtorch's CUDA caching allocator"),
    ("gpu_reserved_bytes", "bytes the caching allocator holds from the driver (allocated + cached free blocks)"),
    ("gpu_peak_allocated_bytes", "peak of gpu_allocated_bytes so far"),
    ("gpu_peak_reserved_bytes", "peak of gpu_reserved_bytes so far"),
    ("user_bytes", "a byte count the program reports about itself (the reference trainer: bytes its injected leaks hold)"),
    ("tree_rss_bytes", "watch: RSS summed over every process of the watched tree; an overcount, since pages shared between processes (fork, libraries, /dev/shm) are counted once per process"),
    ("tree_pss_bytes", "watch: PSS summed over the tree (smaps_rollup) of the memory its processes own (anonymous and shared memory, Pss_Anon + Pss_Shmem; not the libraries' code or files read, whose share moves whenever another process on the machine maps the same library): each shared page split among its sharers, so this is the memory the tree holds; the overall verdict reads it; where the command runs in a memory cgroup of its own (run.json's tree_pss_from_cgroup: as root, or in a delegated cgroup v2), that cgroup's anon + shmem instead, the same sum counted by the kernel, at every sample; otherwise read at boundaries and every --pss-interval, empty at the samples between"),
    ("tree_uss_bytes", "watch: USS summed over the tree: pages only one process maps and has written (Private_Dirty: heaps, and shared pages copied), what would be freed if every process exited; read at boundaries and every --pss-interval, empty at the samples between"),
    ("tree_swap_bytes", "watch: swap used by the tree (Swap in smaps_rollup); read at boundaries and every --pss-interval, empty at the samples between"),
    ("tree_processes", "watch: processes in the tree at this sample"),
    ("main_rss_bytes", "watch: RSS of the main process (the command, past wrappers such as bash or env)"),
    ("main_pss_bytes", "watch: PSS of the main process; read at boundaries and every --pss-interval, empty at the samples between"),
    ("main_uss_bytes", "watch: USS of the main process: a leak in the trainer itself shows here; read at boundaries and every --pss-interval, empty at the samples between"),
    ("workers_rss_bytes", "watch: RSS summed over the main process's descendants (DataLoader workers, subprocesses); empty when there are none"),
    ("workers_pss_bytes", "watch: PSS summed over the workers; read at boundaries and every --pss-interval, empty at the samples between"),
    ("workers_uss_bytes", "watch: USS summed over the workers: a leak in the workers, or copy-on-write copies of what they share with the main process; read at boundaries and every --pss-interval, empty at the samples between"),
    ("workers_count", "watch: how many workers were alive"),
    ("cgroup_usage_bytes", "memory charged to the memory cgroup of the process (v1 memory.usage_in_bytes, v2 memory.current), page cache included"),
    ("cgroup_limit_bytes", "that cgroup's limit (v1 memory.limit_in_bytes, v2 memory.max); empty when unlimited"),
    ("cgroup_working_set_bytes", "usage minus inactive page cache, as the kubelet counts it for evictions"),
    ("cgroup_anon_bytes", "anonymous memory in the cgroup (v1 total_rss, v2 anon); with cgroup_shmem_bytes, what reclaim cannot drop: the out-of-memory projection reads their sum against cgroup_limit_bytes"),
    ("cgroup_file_bytes", "page cache in the cgroup (v1 total_cache, v2 file)"),
    ("cgroup_shmem_bytes", "shared memory and tmpfs in the cgroup (v1 total_shmem, v2 shmem)"),
    ("cgroup_oom_kills", "OOM kills in the cgroup so far (v1 memory.oom_control oom_kill, v2 memory.events oom_kill)"),
    ("system_used_bytes", "the machine's memory in use: MemTotal minus MemAvailable (/proc/meminfo); the projection reads it when no cgroup limit applies"),
    ("shm_used_bytes", "bytes in use on /dev/shm (PyTorch passes worker tensors through shared memory)"),
    ("gpu_tree_used_bytes", "watch: GPU memory of every process in the tree, summed over devices (NVML per-process)"),
    ("heap_peak_bytes", "run: highest heap since the previous boundary: heap allocated at that boundary plus the recording thread's highest net allocation since (jemalloc's thread.peak, reset at each boundary); what the phase that just ended needed at its height"),
];

/// The memory series the analysis and the plots know about, with a display name.
/// `rss_in_use_bytes` and `cgroup_unreclaimable_bytes` are derived, not columns: see
/// [`Row::series`].
pub const MEMORY_SERIES: &[(&str, &str)] = &[
    ("rss_bytes", "RSS"),
    ("rss_in_use_bytes", "RSS in use"),
    ("pss_bytes", "PSS"),
    ("je_allocated_bytes", "heap allocated"),
    ("je_active_bytes", "heap active"),
    ("je_resident_bytes", "allocator resident"),
    ("je_retained_bytes", "allocator retained"),
    ("heap_exact_bytes", "exact Rust heap"),
    ("gpu_device_used_bytes", "GPU device used"),
    ("gpu_process_used_bytes", "GPU process used"),
    ("gpu_allocated_bytes", "GPU allocated"),
    ("gpu_reserved_bytes", "GPU reserved"),
    ("tree_pss_bytes", "tree PSS"),
    ("tree_rss_bytes", "summed RSS (overcount)"),
    ("tree_uss_bytes", "tree USS"),
    ("main_rss_bytes", "main process RSS"),
    ("main_uss_bytes", "main process USS"),
    ("workers_rss_bytes", "workers RSS"),
    ("workers_uss_bytes", "workers USS"),
    ("cgroup_unreclaimable_bytes", "cgroup anon+shmem"),
    ("system_used_bytes", "machine memory used"),
    ("shm_used_bytes", "/dev/shm used"),
    ("gpu_tree_used_bytes", "GPU used by the tree"),
];

impl Row {
    /// RSS minus the pages jemalloc holds without live allocations in them (resident −
    /// active: freed pages not yet purged, and allocator metadata). Those pages come and
    /// go with jemalloc's decay timing, which makes raw RSS at epoch ends jitter by tens
    /// of MB; what remains is the RSS that live heap, fragmentation inside active pages,
    /// and memory outside the allocator account for.
    pub fn rss_in_use(&self) -> Option<u64> {
        let idle = self.je_resident_bytes?.saturating_sub(self.je_active_bytes?);
        Some(self.rss_bytes?.saturating_sub(idle))
    }

    /// The value of a memory column (or the derived `rss_in_use_bytes`) by name.
    pub fn series(&self, column: &str) -> Option<u64> {
        match column {
            "rss_in_use_bytes" => self.rss_in_use(),
            "rss_bytes" => self.rss_bytes,
            "peak_rss_bytes" => self.peak_rss_bytes,
            "heap_peak_bytes" => self.heap_peak_bytes,
            "pss_bytes" => self.pss_bytes,
            "je_allocated_bytes" => self.je_allocated_bytes,
            "je_active_bytes" => self.je_active_bytes,
            "je_resident_bytes" => self.je_resident_bytes,
            "je_mapped_bytes" => self.je_mapped_bytes,
            "je_retained_bytes" => self.je_retained_bytes,
            "je_metadata_bytes" => self.je_metadata_bytes,
            "heap_exact_bytes" => self.heap_exact_bytes,
            "heap_exact_blocks" => self.heap_exact_blocks,
            "gpu_device_used_bytes" => self.gpu_device_used_bytes,
            "gpu_process_used_bytes" => self.gpu_process_used_bytes,
            "gpu_allocated_bytes" => self.gpu_allocated_bytes,
            "gpu_reserved_bytes" => self.gpu_reserved_bytes,
            "gpu_peak_allocated_bytes" => self.gpu_peak_allocated_bytes,
            "gpu_peak_reserved_bytes" => self.gpu_peak_reserved_bytes,
            "user_bytes" => self.user_bytes,
            "tree_rss_bytes" => self.tree_rss_bytes,
            "tree_pss_bytes" => self.tree_pss_bytes,
            "tree_uss_bytes" => self.tree_uss_bytes,
            "tree_swap_bytes" => self.tree_swap_bytes,
            "tree_processes" => self.tree_processes,
            "main_rss_bytes" => self.main_rss_bytes,
            "main_pss_bytes" => self.main_pss_bytes,
            "main_uss_bytes" => self.main_uss_bytes,
            "workers_rss_bytes" => self.workers_rss_bytes,
            "workers_pss_bytes" => self.workers_pss_bytes,
            "workers_uss_bytes" => self.workers_uss_bytes,
            "workers_count" => self.workers_count,
            "cgroup_usage_bytes" => self.cgroup_usage_bytes,
            "cgroup_limit_bytes" => self.cgroup_limit_bytes,
            "cgroup_working_set_bytes" => self.cgroup_working_set_bytes,
            "cgroup_anon_bytes" => self.cgroup_anon_bytes,
            "cgroup_file_bytes" => self.cgroup_file_bytes,
            "cgroup_shmem_bytes" => self.cgroup_shmem_bytes,
            "cgroup_oom_kills" => self.cgroup_oom_kills,
            "system_used_bytes" => self.system_used_bytes,
            "shm_used_bytes" => self.shm_used_bytes,
            "gpu_tree_used_bytes" => self.gpu_tree_used_bytes,
            // What the cgroup holds that reclaim cannot drop (swap aside): its OOM killer
            // fires when this meets the limit.
            "cgroup_unreclaimable_bytes" => Some(self.cgroup_anon_bytes? + self.cgroup_shmem_bytes.unwrap_or(0)),
            _ => None,
        }
    }
}

/// The epoch-end rows that close their epoch: where one epoch is marked twice in a row
/// (a log line, then a marker), its last mark. The analysis reads epochs the same way.
pub fn last_epoch_ends(rows: &[Row]) -> Vec<&Row> {
    let mut out: Vec<&Row> = Vec::new();
    for r in rows.iter().filter(|r| r.phase == "epoch_end") {
        if out.last().is_some_and(|l| l.epoch == r.epoch) {
            out.pop();
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented columns are exactly the serialized ones, in the same order.
    #[test]
    fn columns_match_row_fields() {
        let mut w = csv::Writer::from_writer(vec![]);
        w.serialize(Row::default()).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let documented: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        assert_eq!(header, documented);
    }

    #[test]
    fn every_memory_series_is_readable() {
        let mut row = Row::default();
        row.rss_bytes = Some(1);
        for (name, _) in MEMORY_SERIES.iter().filter(|(n, _)| !matches!(*n, "rss_in_use_bytes" | "cgroup_unreclaimable_bytes")) {
            assert!(COLUMNS.iter().any(|(c, _)| c == name), "{name} undocumented");
        }
        assert_eq!(row.series("rss_bytes"), Some(1));
        let row = Row { rss_bytes: Some(500), je_resident_bytes: Some(200), je_active_bytes: Some(120), ..Row::default() };
        assert_eq!(row.series("rss_in_use_bytes"), Some(420));
        assert_eq!(Row::default().rss_in_use(), None);
    }
}
