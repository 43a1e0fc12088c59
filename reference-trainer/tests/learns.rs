//! The trainer learns: on a fixed seed the training loss falls over a few epochs, and the
//! validation metrics are computed (in range, not constant).

use reference_trainer::{train, Config};

#[global_allocator]
static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;

#[test]
fn loss_decreases_on_a_fixed_seed() {
    let cfg = Config { epochs: 3, episodes_per_epoch: 10, val_episodes: 3, num_workers: 2, seed: 11, ..Config::default() };
    let report = train(&cfg, &mut profiler::NoMarker);
    let losses: Vec<f64> = report.epochs.iter().map(|e| e.train_loss).collect();
    assert!(losses.windows(2).all(|w| w[1] < w[0]) && losses[2] < 0.9 * losses[0], "training loss did not fall: {losses:?}");
    for e in &report.epochs {
        assert!((0.0..=1.0).contains(&e.val.st_iou) && (0.0..=1.0).contains(&e.val.map50), "{e:?}");
        assert_eq!(e.leak_bytes, 0);
    }
    assert!(report.epochs.iter().any(|e| e.val.map50 > 0.0), "mAP is never positive");
}
