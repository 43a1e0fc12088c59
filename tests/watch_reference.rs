//! The reference trainer's own binary watched from outside (its epochs marked through
//! `profiler_api::SocketMarker`) against `diagnose run` on the same flags from inside:
//! the same verdict both ways, leak and clean, and slopes that agree within what the
//! allocator's kept pages explain. The measured ratio is printed.

use crate::common::*;

const FLAGS: &[&str] = &["--episodes-per-epoch", "8", "--val-episodes", "5", "--epochs", "6"];

/// (summary of `watch`, summary of `run`) for the trainer with `leak` flags.
fn both(leak: &[&str]) -> (serde_json::Value, serde_json::Value) {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let trainer = workspace_bin("reference-trainer");
    let mut cmd = vec![trainer.to_str().unwrap()];
    cmd.extend_from_slice(leak);
    cmd.extend_from_slice(FLAGS);
    // Epochs come from markers alone: the trainer prints its epochs only at the end.
    let (o, watched) = watch(&dir.path().join("watch"), &["--epoch-pattern", "^NEVER$"], &cmd);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut extra = vec!["--no-progress"];
    extra.extend_from_slice(leak);
    extra.extend_from_slice(FLAGS);
    let (_, ran) = run_into(&dir.path().join("run"), &extra);
    (watched.unwrap(), ran)
}

fn slope(s: &serde_json::Value, column: &str) -> f64 {
    series(s, column)["slope_bytes_per_epoch"].as_f64().unwrap()
}

#[test]
#[ignore = "soak: SOAK=1 scripts/test (about 35 s; run and watch are each tested on the seed's leak by default)"]
fn validation_accumulators_grow_seen_from_outside_and_inside() {
    let (w, r) = both(&["--leak", "validation-accumulators"]);
    assert_eq!(w["epochs"], 6, "the socket marker's epochs");
    assert_eq!((w["verdict"].as_str(), r["verdict"].as_str()), (Some("growing"), Some("growing")));
    assert_eq!(class_of(&w, "main_uss_bytes"), "growing");
    let outside = slope(&w, "main_uss_bytes");
    // The watched binary returns its freed pages at epoch ends; RSS in use is the run's
    // RSS without the pages its allocator keeps: the same quantity.
    let inside_rss = slope(&r, "rss_in_use_bytes");
    let leak = r["user_bytes_per_epoch"].as_f64().unwrap();
    eprintln!(
        "watch main USS {:.1} MiB/epoch, run RSS in use {:.1} MiB/epoch ({:.2}x), run heap {:.1} MiB/epoch, leak {:.1} MiB/epoch",
        outside / 1048576.0, inside_rss / 1048576.0, outside / inside_rss, slope(&r, "je_allocated_bytes") / 1048576.0, leak / 1048576.0
    );
    assert!(outside >= 0.9 * leak, "outside {outside} < leak {leak}");
    assert!(outside / inside_rss > 0.7 && outside / inside_rss < 1.5, "outside {outside} vs inside RSS in use {inside_rss}");
}

#[test]
#[ignore = "soak: SOAK=1 scripts/test (about 18 s; clean_run and the watched clean loops cover both sides)"]
fn clean_trainer_is_flat_from_outside_and_inside() {
    let (w, r) = both(&[]);
    assert_eq!(w["epochs"], 6);
    assert_eq!((w["verdict"].as_str(), r["verdict"].as_str()), (Some("flat"), Some("flat")), "{}\n{}", ledger(&w), ledger(&r));
}
