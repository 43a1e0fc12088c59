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

#[test]
fn memory_plots_of_recorded_runs() {
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plots");
    std::fs::create_dir_all(&keep).unwrap();
    for (name, verdict) in SCENARIOS {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plots").join(name);
        for f in ["timeline.csv", "run.json"] {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        let a = rebuild(dir.path()).unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plots/worker-leak");
    for f in ["timeline.csv", "run.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let a = rebuild(dir.path()).unwrap();
    let plot = profiler::report::plan_memory(&a);
    let panel_of = |c: &str| plot.panels.iter().position(|p| p.series.iter().any(|s| s.column == c));
    assert_ne!(panel_of("workers_uss_bytes"), panel_of("tree_rss_bytes"), "{plot:?}");
    let workers = plot.panels.iter().flat_map(|p| &p.series).find(|s| s.column == "workers_uss_bytes").unwrap();
    assert!(workers.trend.as_deref().is_some_and(|t| t.starts_with('+') && t.ends_with("/epoch")), "{workers:?}");
}
