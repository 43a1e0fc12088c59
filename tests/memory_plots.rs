//! memory.png of recorded watch runs (tests/fixtures/plots/: a clean run, a main-process
//! leak, a leak in the DataLoader workers, copy-on-read, a run stopped at --max-memory,
//! a run without epoch lines; all GPU-less): the image has the size the plot planned,
//! every series the legend names has points, no legend entry names a series the run did
//! not record, and the title carries the verdict. The PNGs are kept in the target's test
//! folder (`target/tmp/plots/`) for people to look at; docs/plots/ holds a copy.

use std::path::Path;

use profiler::report::{draw_memory, rebuild};

const SCENARIOS: &[(&str, &str)] = &[
    ("clean", "flat"),
    ("main-leak", "growing"),
    ("worker-leak", "growing"),
    ("cow", "flat"),
    ("killed", "growing"),
    ("nolines", "insufficient"),
];

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// A copy of a recorded run's folder (the reports are written into it), and its analysis.
fn recorded(name: &str) -> (tempfile::TempDir, profiler::Analysis) {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plots").join(name);
    for f in ["timeline.csv", "run.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let a = rebuild(dir.path()).unwrap();
    (dir, a)
}

#[test]
fn memory_plots_of_recorded_runs() {
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plots");
    std::fs::create_dir_all(&keep).unwrap();
    for (name, verdict) in SCENARIOS {
        let (dir, a) = recorded(name);
        assert_eq!(a.verdict, *verdict, "{name}");
        let png = dir.path().join("memory.png");
        let plot = draw_memory(&a, &png).unwrap();
        let _ = std::fs::copy(&png, keep.join(format!("{name}.png")));
        assert_eq!(png_size(&png), plot.size, "{name}");
        assert_eq!(plot.title, format!("Verdict: {verdict}"), "{name}");
        assert!(!plot.subtitle.is_empty(), "{name}: no reason under the verdict");
        assert!(!plot.panels.is_empty(), "{name}");
        for s in plot.panels.iter().flat_map(|p| &p.series) {
            let data = a.plot.series.iter().find(|d| d.column == s.column);
            assert!(data.is_some_and(|d| !d.points.is_empty()) && s.points > 0, "{name}: legend names {} without points", s.label);
        }
        let legend = plot.legend();
        assert_eq!(legend.iter().any(|l| l == "validation"), !a.plot.validations.is_empty(), "{name}: {legend:?}");
        assert_eq!(legend.iter().any(|l| l.starts_with("epoch end")), !a.plot.epoch_ends.is_empty(), "{name}: {legend:?}");
        // The tree's figures are the command's, never the watcher's fork before the exec.
        if let Some(pss) = a.plot.series.iter().find(|s| s.column == "tree_pss_bytes") {
            assert!(pss.points.iter().all(|p| p.1 > 8 << 20), "{name}: a pre-exec PSS point is drawn: {:?}", &pss.points[..3.min(pss.points.len())]);
        }
        let total = a.phases.iter().find(|p| p.phase == "peak total").unwrap();
        assert!(total.peak("tree_pss_bytes").is_some_and(|b| b > 8 << 20), "{name}: peak total tree PSS is the pre-exec value");
    }
}

#[test]
fn small_series_get_their_own_panel() {
    let (_dir, a) = recorded("worker-leak");
    let plot = profiler::report::plan_memory(&a);
    let panel_of = |c: &str| plot.panels.iter().position(|p| p.series.iter().any(|s| s.column == c));
    assert_ne!(panel_of("workers_uss_bytes"), panel_of("tree_rss_bytes"), "{plot:?}");
    let workers = plot.panels.iter().flat_map(|p| &p.series).find(|s| s.column == "workers_uss_bytes").unwrap();
    assert!(workers.trend.as_deref().is_some_and(|t| t.starts_with('+') && t.ends_with("/epoch")), "{workers:?}");
}

/// A watched command of one process, leaking under a memory cgroup: its tree PSS and its
/// USS run on each other (PSS is drawn wide beneath, not hidden), the cgroup's limit
/// stands near the data (a line) and the projected out-of-memory point falls within half
/// the run's length again (drawn, and named in the legend).
#[test]
fn one_process_shows_pss_under_uss_and_the_limit_and_the_projected_oom() {
    use profiler::timeline::{Row, TimelineMeta, TimelineWriter};
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let meta = TimelineMeta { mem_limit_bytes: Some(380 * MIB), mem_limit_source: Some("cgroup-v2".into()), recorder: Some("watch".into()), ..TimelineMeta::default() };
    let mut w = TimelineWriter::create(&dir.path().join("timeline.csv"), &meta).unwrap();
    for epoch in 0..8u32 {
        for k in 0..6u64 {
            let pss = 200 * MIB + 16 * MIB * epoch as u64 + k * MIB;
            let phase = if k == 5 { "epoch_end" } else { "sample" };
            w.append(&Row {
                t_s: (epoch * 6) as f64 + k as f64 + 1.0,
                phase: phase.into(),
                epoch: (k == 5).then_some(epoch),
                tree_rss_bytes: Some(pss + 300 * MIB),
                tree_pss_bytes: Some(pss),
                main_uss_bytes: Some(pss - 3 * MIB),
                tree_processes: Some(1),
                cgroup_limit_bytes: Some(380 * MIB),
                cgroup_anon_bytes: Some(pss),
                cgroup_shmem_bytes: Some(0),
                ..Row::default()
            })
            .unwrap();
        }
    }
    drop(w);
    let a = rebuild(dir.path()).unwrap();
    assert_eq!(a.verdict, "growing");
    let png = dir.path().join("memory.png");
    let plot = draw_memory(&a, &png).unwrap();
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plots");
    std::fs::create_dir_all(&keep).unwrap();
    let _ = std::fs::copy(&png, keep.join("one-process-oom.png"));
    let pss = plot.panels.iter().flat_map(|p| &p.series).find(|s| s.column == "tree_pss_bytes").unwrap();
    assert_eq!(pss.under.as_deref(), Some("main_uss_bytes"), "{plot:?}");
    let limit = plot.limit.as_ref().expect("the limit is known");
    assert_eq!(limit.bytes, 380 * MIB);
    assert!(limit.on_scale, "{limit:?}");
    let [from, to] = limit.oom.expect("the projected out-of-memory point is within reach");
    assert!(from.0 < to.0 && to.0 <= 1.5 * a.duration_s && to.1 == (380 * MIB) as f64, "{limit:?}");
    let legend = plot.legend();
    assert!(legend.iter().any(|l| l.starts_with("memory limit 380.0 MiB")), "{legend:?}");
    assert!(legend.iter().any(|l| l.starts_with("OOM projected: epoch") && !l.contains("off plot")), "{legend:?}");
    assert_eq!(png_size(&png), plot.size);
}

/// Recorded runs whose machine limit stands far above the data: the limit is named in the
/// legend, off scale, and no series is flattened for it.
#[test]
fn a_far_limit_is_named_not_drawn() {
    let (_dir, a) = recorded("main-leak");
    let plot = profiler::report::plan_memory(&a);
    let limit = plot.limit.as_ref().unwrap();
    assert!(!limit.on_scale && limit.oom.is_none(), "{limit:?}");
    assert!(plot.legend().iter().any(|l| l.starts_with("memory limit") && l.ends_with("off scale")), "{:?}", plot.legend());
}
