//! `diagnose watch`: its flags and the command itself. `diagnose` links no libtorch (that
//! is `diagnose-run`'s, which alone would hold ~180 MB before main), so the watcher stays
//! small beside the trainer it watches and is not what the OOM killer picks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use profiler::report::{self, human_bytes};
use regex::Regex;

use crate::shared::{emit, exit_because, timestamp, EXIT_LEAK, EXIT_MAX_MEMORY, EXIT_USAGE};

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Output folder (default: reports/watch-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write into an output folder that already holds files.
    #[arg(long)]
    pub force: bool,
    /// Watch this running process instead of starting a command (until it exits or Ctrl-C).
    #[arg(long, conflicts_with = "command")]
    pub pid: Option<u32>,
    /// Time between samples of the process tree (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Between boundaries, read PSS and USS (a page-table walk: about 10 ms per Python
    /// process with torch) at most this often; other samples read RSS alone.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub pss_interval: Duration,
    /// Boundaries read PSS and USS at the first 12 epoch ends, then only while those
    /// readings take under this share of one core (e.g. 0.5%); the others read RSS, and
    /// the ledger counts them. `off`: at every boundary, whatever it costs.
    #[arg(long, value_name = "PERCENT|off", default_value = "0.5%", value_parser = parse_pss_budget)]
    pub pss_budget: PssShare,
    /// Do not start the command in a memory cgroup of its own. By default, where the
    /// watcher may make one (root, or a delegated cgroup v2), the tree's PSS is the
    /// cgroup's anon + shmem: the kernel's count, at every sample, for no page walk.
    #[arg(long)]
    pub no_own_cgroup: bool,
    /// Log lines matching this regex are epoch boundaries; its first capture group, if
    /// any, is the epoch index.
    #[arg(long, default_value = profiler::watch::DEFAULT_EPOCH_PATTERN, value_parser = parse_regex)]
    pub epoch_pattern: Regex,
    /// Log lines matching REGEX are boundaries named NAME (repeatable), e.g.
    /// validation_start='^Validat'.
    #[arg(long = "phase", value_name = "NAME=REGEX", value_parser = parse_phase)]
    pub phases: Vec<(String, Regex)>,
    /// Fixed windows (e.g. 60s) stand in for epochs, for programs that mark none.
    #[arg(long, value_parser = parse_duration)]
    pub window: Option<Duration>,
    /// Fail (exit code 4) when the tree's memory (PSS) passes this (e.g. 20G, 512M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<u64>,
    /// With --max-memory: write the report, then stop the command (SIGTERM, then SIGKILL).
    #[arg(long, requires = "max_memory")]
    pub kill_at_limit: bool,
    /// Exit with code 3 if the verdict is "growing".
    #[arg(long)]
    pub fail_on_leak: bool,
    /// Once growth is confirmed at an epoch end: write the full report, stop the command
    /// (SIGTERM, then SIGKILL 5 s later) and exit with code 3.
    #[arg(long)]
    pub stop_on_leak: bool,
    /// Python trainers: at each epoch end, take a census of the main process's live
    /// objects and name the containers that grow (objects.csv), what their tensors keep
    /// through autograd graphs, and how much of the growth Python objects account for
    /// (the rest: native code or the C allocator). Needs no change to the script.
    #[arg(long, conflicts_with_all = ["pid", "no_inject"])]
    pub python_objects: bool,
    /// With --python-objects: full censuses in forked DataLoader workers too, not only
    /// their datasets' containers. A full census writes the reference count of every
    /// object a worker shares with the trainer, so the worker copies those pages (its
    /// USS steps up once).
    #[arg(long, requires = "python_objects")]
    pub python_objects_workers: bool,
    /// Do not inject the helper into Python commands. The helper (a sitecustomize put
    /// first on PYTHONPATH) finds epochs from DataLoader passes: a new pass over the
    /// training loader ends an epoch, passes over the others are validation.
    #[arg(long)]
    pub no_inject: bool,
    /// With no epoch boundary for this long, fall back to fixed windows a tenth as long
    /// (10m: 60 s windows); 0 never does.
    #[arg(long, default_value = "10m", value_parser = parse_duration_or_zero)]
    pub auto_window: Duration,
    /// With --python-objects: trace Python allocations (tracemalloc, 4 frames, from
    /// torch's import on) to say where the growing containers' newest items were
    /// allocated. Slows Python code that allocates much (measured in docs/what-holds-it.md).
    #[arg(long, requires = "python_objects")]
    pub python_tracemalloc: bool,
    /// PyTorch trainers on CUDA: switch on PyTorch's own allocation history (Python
    /// frames, live blocks only) at the first CUDA initialisation, and at each epoch end
    /// reduce torch.cuda.memory._snapshot() in the process to live CUDA bytes per
    /// allocating line: the lines whose memory grows are named (gpu_sites.csv), and the
    /// allocator's counters tell a leak from caching, fragmentation, or a near-OOM.
    #[arg(long, conflicts_with_all = ["pid", "no_inject"])]
    pub gpu_sites: bool,
    /// Python trainers: name the C and C++ functions (a C extension's, libtorch's) that
    /// hold the native memory of the main process, per epoch (native_sites.csv). The
    /// command runs with diagnose's sampling jemalloc preloaded (LD_PRELOAD,
    /// libdiagnose_jemalloc.so next to diagnose); the helper dumps its heap profile at
    /// each epoch end.
    #[arg(long, conflicts_with_all = ["pid", "no_inject"])]
    pub native_sites: bool,
    /// Receive markers on a socket bound at PATH (in a folder of yours that no one else
    /// can write to), not in a private folder: for a process watched with --pid, which
    /// learns the path from whoever starts the watch (diagnose_memory.watching() and the
    /// pytest plugin do).
    #[arg(long, value_name = "PATH")]
    pub marker_socket: Option<PathBuf>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

/// Publishing the live state to Prometheus (shared by `run` and `watch`).
#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Serve the current state in Prometheus' text format at http://ADDR/metrics while the
    /// job runs (e.g. 127.0.0.1:9464; prefer loopback). GET /metrics only.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Write the same atomically to DIR/diagnose.prom at every boundary, for
    /// node_exporter's textfile collector.
    #[arg(long, value_name = "DIR")]
    pub metrics_textfile: Option<PathBuf>,
}

impl MetricsArgs {
    /// The exporter, if asked for; binds now, so a bad address fails before the job runs.
    pub fn exporter(&self) -> anyhow::Result<Option<profiler::metrics::MetricsExporter>> {
        if self.metrics_listen.is_none() && self.metrics_textfile.is_none() {
            return Ok(None);
        }
        let meta = profiler::metrics::live_meta();
        Ok(Some(profiler::metrics::MetricsExporter::start(meta, self.metrics_listen, self.metrics_textfile.as_deref())?))
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Duration::from_secs_f64(secs),
        _ => humantime::parse_duration(s).map_err(|e| e.to_string())?,
    };
    if d < Duration::from_millis(10) {
        return Err("must be at least 10ms".into());
    }
    Ok(d)
}

/// `--pss-budget`: a share of one core, or `None` for `off`.
#[derive(Clone, Copy, Debug)]
pub struct PssShare(pub Option<f64>);

fn parse_pss_budget(s: &str) -> Result<PssShare, String> {
    if s.trim() == "off" {
        return Ok(PssShare(None));
    }
    let percent = s.trim().strip_suffix('%').ok_or("a share of one core with %, e.g. 0.5%, or off")?;
    match percent.trim().parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(PssShare(Some(p / 100.0))),
        _ => Err("a share of one core above 0% and at most 100%, e.g. 0.5%, or off".into()),
    }
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| e.to_string())
}

fn parse_phase(s: &str) -> Result<(String, Regex), String> {
    let (name, pattern) = s.split_once('=').ok_or("expected NAME=REGEX")?;
    let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok || matches!(name, "start" | "finish" | "sample") {
        return Err(format!("bad phase name '{name}' (letters, digits, _ . -; not start, finish or sample)"));
    }
    Ok((name.to_string(), parse_regex(pattern)?))
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::Config::new().with_binary().parse_size(s).map_err(|e| e.to_string())
}

/// `diagnose watch --help`'s closing text: boundaries, then the exit codes.
pub fn watch_help() -> String {
    format!("{WATCH_BOUNDARIES}\n\n{}", crate::shared::exit_help("watch"))
}

const WATCH_BOUNDARIES: &str = "\
Boundaries, so epochs are compared with epochs:
  log lines   --epoch-pattern (default: 'Epoch 3', 'epoch 3/50', '[Epoch 3]' ...) and --phase NAME=REGEX
  markers     the command finds a socket path in $DIAGNOSE_MARKER_SOCKET; python/diagnose_markers.py
              (epoch_end(3), validation_start(3), ...) and profiler_api::SocketMarker send to it.
              Once a marker epoch arrives, log-line epochs are ignored. With --pid, --marker-socket PATH
              binds it where the watched process can be told (diagnose_memory.watching() does).
  windows     --window 60s: fixed windows stand in for epochs (the verdict is then per window)";

/// One status line per epoch on stderr, between the command's own lines.
fn epoch_status(row: &profiler::Row) {
    let b = |v: Option<u64>| v.map_or("?".into(), |b| human_bytes(b as f64));
    let mut line = format!("diagnose: epoch {}: tree PSS {}", row.epoch.map_or("?".into(), |e| e.to_string()), b(row.tree_pss_bytes));
    // USS is read at some epoch ends only (the page-walk budget): said where it was.
    if row.main_uss_bytes.is_some() {
        line.push_str(&format!(", main USS {}", b(row.main_uss_bytes)));
    }
    if let (Some(n), Some(_)) = (row.workers_count.filter(|n| *n > 0), row.workers_uss_bytes) {
        line.push_str(&format!(", {n} workers USS {}", b(row.workers_uss_bytes)));
    }
    profiler::watch::console::status_line(&line);
}

pub fn watch_cmd(args: WatchArgs) -> anyhow::Result<ExitCode> {
    use profiler::watch::{Target, WatchOptions};
    let target = match args.pid {
        Some(pid) => Target::Pid(pid),
        None if args.command.is_empty() => {
            eprintln!("error: give a command after `--` (diagnose watch -- python train.py) or --pid PID");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        None => Target::Command(args.command.clone()),
    };
    // Bad input fails before anything is created or started.
    profiler::watch::check_target(&target)?;
    let out = args.out.clone().unwrap_or_else(|| Path::new("reports").join(format!("watch-{}", timestamp())));
    report::prepare_out_dir(&out, args.force)?;
    let mut metrics = args.metrics.exporter()?;
    let stop_on_leak = args.stop_on_leak;
    let opts = WatchOptions {
        interval: args.interval,
        full_interval: args.pss_interval,
        pss_budget: args.pss_budget.0.map(|cpu_share| profiler::timeline::PssBudget { cpu_share, ..profiler::watch::DEFAULT_PSS_BUDGET }),
        own_cgroup: !args.no_own_cgroup,
        epoch_pattern: Some(args.epoch_pattern),
        phases: args.phases,
        window: args.window,
        max_memory: args.max_memory,
        kill_at_limit: args.kill_at_limit,
        inject: !args.no_inject,
        python_objects: args.python_objects,
        census_workers: args.python_objects_workers,
        auto_window: Some(args.auto_window).filter(|d| !d.is_zero()),
        python_tracemalloc: args.python_tracemalloc,
        gpu_sites: args.gpu_sites,
        native_sites: args.native_sites,
        stop_on_leak: args.stop_on_leak,
        marker_socket: args.marker_socket.clone(),
        on_verdict: Some(Box::new(move |status: &profiler::live::LiveStatus| {
            let stop = if stop_on_leak && status.growing { " — stopping the command (--stop-on-leak)" } else { "" };
            profiler::watch::console::status_line(&format!("diagnose: {}{stop}", status.line));
        })),
        on_row: Some(Box::new(move |row: &profiler::Row, ranks: &std::collections::BTreeMap<u32, profiler::watch::RankMem>| {
            if row.phase == "epoch_end" {
                epoch_status(row);
            }
            if row.phase == "windows" {
                profiler::watch::console::status_line(&format!("diagnose: {}", row.label));
            }
            if let Some(m) = &mut metrics {
                m.observe_ranks(ranks.iter().map(|(r, v)| (*r, [("rss", Some(v.rss)), ("pss", v.pss), ("uss", v.uss), ("gpu", v.gpu)])));
                m.observe(row);
            }
        })),
        ..WatchOptions::default()
    };
    eprintln!("diagnose: watching {}; recording into {}", match &target {
        Target::Pid(p) => format!("pid {p} (Ctrl-C stops watching)"),
        Target::Command(c) => c[0].to_string_lossy().into_owned(),
    }, out.display());
    let watched = profiler::watch::watch(&target, &out, opts)?;
    if watched.markers_rejected > 0 {
        eprintln!("diagnose: {} marker datagram(s) were malformed or from another user and were ignored", watched.markers_rejected);
    }
    // A share of one core means something only over a while: start-up dominates a
    // command that ends at once (it read 112 % for `true`).
    let share = if watched.wall_s >= 5.0 { format!(" ({:.2} % of one core)", 100.0 * watched.own_cpu_s / watched.wall_s) } else { String::new() };
    eprintln!(
        "diagnose: the watcher used {:.2} s of CPU in {:.1} s{share}, at most {} resident",
        watched.own_cpu_s, watched.wall_s, human_bytes(watched.own_peak_rss_bytes as f64)
    );
    let analysis = report::rebuild(&out)?;
    emit(&report::text_summary(&analysis));
    emit(&format!("reports: {}\n", out.display()));
    // Gates first, each saying so on stderr; only then the command's own code, also said,
    // so that a gate's 3 or 4 is never mistaken for the command's.
    if watched.max_memory_passed_at.is_some() {
        let what = analysis.max_memory.as_ref().map_or(String::new(), |m| format!(" ({})", m.label));
        return Ok(exit_because(EXIT_MAX_MEMORY, &format!("the tree passed --max-memory{what}")));
    }
    if let Some(epoch) = watched.stopped_on_leak {
        emit(&format!("stopped early (--stop-on-leak): growth confirmed at the end of epoch {epoch}\n"));
        return Ok(exit_because(EXIT_LEAK, "--stop-on-leak stopped the command"));
    }
    if args.fail_on_leak && analysis.verdict == "growing" {
        return Ok(exit_because(EXIT_LEAK, "--fail-on-leak and the verdict is growing"));
    }
    let code = watched.exit.shell_code().clamp(0, 255) as u8;
    if code != 0 {
        return Ok(exit_because(code, "the command's own exit code"));
    }
    Ok(ExitCode::SUCCESS)
}


#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        w: WatchArgs,
    }

    #[test]
    fn watch_takes_a_command_or_a_pid() {
        let cli = Cli::try_parse_from(["diagnose watch", "--interval", "250ms", "--phase", "validation_start=^Validat", "--max-memory", "20G", "--", "python", "train.py", "--epochs", "3"]).unwrap();
        let w = cli.w;
        assert_eq!(w.command, ["python", "train.py", "--epochs", "3"]);
        assert_eq!(w.interval, Duration::from_millis(250));
        assert_eq!(w.max_memory, Some(20 << 30));
        assert_eq!(w.phases[0].0, "validation_start");
        assert!(Cli::try_parse_from(["diagnose watch", "--pid", "1", "--", "ls"]).is_err());
        assert!(Cli::try_parse_from(["diagnose watch", "--epoch-pattern", "(", "--", "ls"]).is_err());
        assert!(Cli::try_parse_from(["diagnose watch", "--phase", "finish=x", "--", "ls"]).is_err());
        assert!(Cli::try_parse_from(["diagnose watch", "--kill-at-limit", "--", "ls"]).is_err());
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    }

}
