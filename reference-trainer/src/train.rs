//! The training loop: episodes from the data-loader workers, a prototype classification
//! loss and a detection loss per episode, an optional triplet batch, validation every
//! epoch and the epoch's clean-up. Instrumented at episode end, triplet end, validation
//! start and end, and epoch end.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

use crate::config::{Config, Leak};
use crate::data::{Dataset, EpisodeSpec, FrameCache, Loader, TripletBatch};
use crate::episode::{episode_losses, Forward};
use crate::model::FewShotModel;
use crate::validate::{validate_epoch, Retained, ValMetrics};
use profiler_api::{Boundary, Marker, Phase};

/// Streams of episodes: training epochs use `TRAIN_STREAM + epoch`, validation always
/// the same episodes.
const TRAIN_STREAM: u64 = 1000;
const VAL_STREAM: u64 = 1;

/// Triplet margin loss on normalised embeddings.
fn triplet_loss(model: &FewShotModel, batch: &TripletBatch, device: Device) -> Tensor {
    let embed = |clips: &Tensor| {
        let clips = clips.to_device(device);
        let n = clips.size()[0];
        let e = model.embed(&model.features(&clips), n);
        &e / e.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-6)
    };
    let (a, p, n) = (embed(&batch.anchor), embed(&batch.positive), embed(&batch.negative));
    let d = |x: &Tensor, y: &Tensor| (x - y).pow_tensor_scalar(2).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    (d(&a, &p) - d(&a, &n) + 0.5).relu().mean(Kind::Float)
}

/// One epoch's results.
#[derive(Clone, Debug)]
pub struct EpochReport {
    /// Epoch index.
    pub epoch: u32,
    /// Mean training loss.
    pub train_loss: f64,
    /// Triplet batches run.
    pub triplet_batches: u32,
    /// Validation results.
    pub val: ValMetrics,
    /// Bytes the injected leaks hold at epoch end, where known
    /// (autograd-graph's graph size cannot be read from libtorch and is not counted).
    pub leak_bytes: u64,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// The whole run's results.
#[derive(Clone, Debug, Default)]
pub struct TrainReport {
    /// Per epoch.
    pub epochs: Vec<EpochReport>,
}

/// Train for `cfg.epochs`, marking boundaries on `marker`.
pub fn train(cfg: &Config, marker: &mut dyn Marker) -> TrainReport {
    train_with(cfg, marker, &mut |_| {})
}

/// [`train`], calling `on_epoch` as each epoch ends (so that a run killed later still
/// showed how far it got). Stops early, after an epoch end, when the marker asks.
pub fn train_with(cfg: &Config, marker: &mut dyn Marker, on_epoch: &mut dyn FnMut(&EpochReport)) -> TrainReport {
    tch::manual_seed(cfg.seed as i64);
    let device = cfg.device();
    let dataset = Arc::new(Dataset {
        seed: cfg.seed,
        num_classes: cfg.num_classes,
        videos_per_class: cfg.videos_per_class,
        frames: cfg.frames,
        size: cfg.image_size,
    });
    let frame_bytes = 3 * (cfg.image_size as u64).pow(2);
    let cache = Arc::new(Mutex::new(FrameCache::new(cfg.frame_cache_size as usize, cfg.has_leak(Leak::FrameCache), frame_bytes)));
    let mut model = FewShotModel::new(device);
    let mut opt = nn::Adam::default().build(&model.vs, cfg.lr).expect("optimizer over the model's parameters");
    let mut retained = Retained::default();
    let views_per_way = (cfg.k_shot * (cfg.num_aug + 1)) as i64;
    let train_spec = EpisodeSpec {
        n_way: cfg.n_way,
        k_shot: cfg.k_shot,
        n_query: cfg.n_query,
        num_aug: cfg.num_aug,
        triplet_ratio: if cfg.use_triplet { cfg.triplet_ratio } else { 0.0 },
        triplet_batch_size: cfg.triplet_batch_size,
    };
    let val_spec = EpisodeSpec { triplet_ratio: 0.0, num_aug: 0, ..train_spec.clone() };

    let mut report = TrainReport::default();
    let mut step = 0u64;
    for epoch in 0..cfg.epochs {
        let started = Instant::now();
        let loader = Loader::start(dataset.clone(), cache.clone(), train_spec.clone(), TRAIN_STREAM + epoch as u64, cfg.episodes_per_epoch as u64, cfg.num_workers);
        let (mut loss_sum, mut triplets) = (0.0, 0);
        for episode in loader {
            let fwd = Forward::run(&model, &episode, device);
            let losses = episode_losses(&fwd, &episode, device);
            opt.backward_step(&losses.total);
            loss_sum += losses.total.double_value(&[]);
            model.cache_prototypes(&episode.way_classes, &fwd.support_features, views_per_way);
            drop(fwd);
            marker.episode_end(epoch, step);
            if let Some(batch) = &episode.triplet {
                let loss = triplet_loss(&model, batch, device);
                opt.backward_step(&loss);
                triplets += 1;
                marker.mark(Boundary::new(Phase::TripletEnd).epoch(epoch).episode(step));
            }
            step += 1;
        }

        let val_loader = Loader::start(dataset.clone(), cache.clone(), val_spec.clone(), VAL_STREAM, cfg.val_episodes as u64, cfg.num_workers);
        let val = validate_epoch(&model, cfg, val_loader, epoch, marker, &mut retained);

        // The seed's epoch clean-up (fix 2): clear the model's caches, empty CUDA's cache.
        if !cfg.has_leak(Leak::ModelCache) {
            model.clear_cache();
        }
        if cfg.cuda.is_some() {
            crate::cuda::empty_cache();
        }
        let leak_bytes = leak_bytes(cfg, &model, &cache, &retained);
        let train_loss = loss_sum / cfg.episodes_per_epoch as f64;
        let label = format!("train_loss={train_loss:.4} val_loss={:.4} st_iou={:.4} map50={:.4}", val.loss, val.st_iou, val.map50);
        marker.mark(Boundary::new(Phase::EpochEnd).epoch(epoch).episode(step).label(label).user_bytes(leak_bytes));
        report.epochs.push(EpochReport {
            epoch,
            train_loss,
            triplet_batches: triplets,
            val,
            leak_bytes,
            seconds: started.elapsed().as_secs_f64(),
        });
        on_epoch(report.epochs.last().expect("just pushed"));
        if marker.stop_requested() {
            break;
        }
    }
    report
}

/// Bytes the active leaks hold right now, where they can be counted.
fn leak_bytes(cfg: &Config, model: &FewShotModel, cache: &Mutex<FrameCache>, retained: &Retained) -> u64 {
    let mut total = 0;
    if cfg.has_leak(Leak::ValidationAccumulators) {
        total += retained.accumulators.iter().map(|a| a.bytes()).sum::<u64>();
    }
    if cfg.has_leak(Leak::ModelCache) {
        total += model.cache_bytes();
    }
    if cfg.has_leak(Leak::FrameCache) {
        total += cache.lock().unwrap().bytes_over_capacity();
    }
    if cfg.has_leak(Leak::GpuTensors) {
        total += retained.device_outputs.iter().map(crate::validate::tensor_bytes).sum::<u64>();
    }
    total
}
