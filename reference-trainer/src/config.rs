//! The trainer's knobs: command-line flags, presets from the seed incident, validation.
//!
//! Flags are `Option`s so that a preset supplies defaults and an explicit flag still
//! wins: explicit flag > preset > built-in default.

use clap::{Args, ValueEnum};

/// Presets from `MEMORY_LEAK_FIXES_SUMMARY.md`, scaled in image size to run on a laptop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// The seed's original values: triplet batch 64, 8 workers, 20 validation episodes.
    SeedBefore,
    /// The seed's fixes: triplet batch 8, 4 workers, 10 validation episodes.
    SeedAfter,
}

/// A switchable leak. Each lives in one named function so attribution can name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Leak {
    /// Validation lists (ST-IoUs, boxes, scores, classes) kept across epochs
    /// (`validate::keep_validation_accumulators`): the seed's root cause.
    ValidationAccumulators,
    /// `clear_cache()` never called; the model's prototype cache grows every episode
    /// (`model::FewShotModel::cache_prototypes`).
    ModelCache,
    /// The frame cache has no capacity bound (`data::FrameCache::insert_unbounded`).
    FrameCache,
    /// A validation loss is kept in a history without detaching, keeping its autograd
    /// graph and saved activations alive (`validate::record_val_loss_with_graph`).
    AutogradGraph,
    /// Validation outputs are kept on the device (`validate::keep_outputs_on_device`);
    /// CUDA only.
    GpuTensors,
}

impl Leak {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Leak::ValidationAccumulators => "validation-accumulators",
            Leak::ModelCache => "model-cache",
            Leak::FrameCache => "frame-cache",
            Leak::AutogradGraph => "autograd-graph",
            Leak::GpuTensors => "gpu-tensors",
        }
    }
}

/// The trainer's command-line flags (flattened into `diagnose run`).
#[derive(Args, Clone, Debug, Default)]
pub struct TrainerArgs {
    /// Start from a preset of the seed incident (explicit flags still win).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Epochs to train.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Training episodes per epoch.
    #[arg(long)]
    pub episodes_per_epoch: Option<u32>,
    /// Classes per episode.
    #[arg(long)]
    pub n_way: Option<u32>,
    /// Support samples per class.
    #[arg(long)]
    pub k_shot: Option<u32>,
    /// Query samples per class.
    #[arg(long)]
    pub n_query: Option<u32>,
    /// Augmented views per support sample.
    #[arg(long)]
    pub num_aug: Option<u32>,
    /// Train a triplet-loss branch too (true/false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub use_triplet: Option<bool>,
    /// Fraction of episodes followed by a triplet batch.
    #[arg(long)]
    pub triplet_ratio: Option<f64>,
    /// Anchor/positive/negative triples per triplet batch.
    #[arg(long)]
    pub triplet_batch_size: Option<u32>,
    /// Data-loader worker threads.
    #[arg(long)]
    pub num_workers: Option<u32>,
    /// Decoded frames kept in the LRU frame cache.
    #[arg(long)]
    pub frame_cache_size: Option<u32>,
    /// Validation episodes per epoch.
    #[arg(long)]
    pub val_episodes: Option<u32>,
    /// Frame side in pixels.
    #[arg(long)]
    pub image_size: Option<u32>,
    /// Frames per clip.
    #[arg(long)]
    pub frames: Option<u32>,
    /// Random seed (data and weights).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Learning rate (Adam).
    #[arg(long)]
    pub lr: Option<f64>,
    /// cpu or cuda (or cuda:N).
    #[arg(long)]
    pub device: Option<String>,
    /// Inject a leak (repeatable).
    #[arg(long = "leak", value_enum)]
    pub leaks: Vec<Leak>,
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Epochs to train.
    pub epochs: u32,
    /// Training episodes per epoch.
    pub episodes_per_epoch: u32,
    /// Classes per episode.
    pub n_way: u32,
    /// Support samples per class.
    pub k_shot: u32,
    /// Query samples per class.
    pub n_query: u32,
    /// Augmented views per support sample.
    pub num_aug: u32,
    /// Triplet branch on.
    pub use_triplet: bool,
    /// Fraction of episodes with a triplet batch.
    pub triplet_ratio: f64,
    /// Triples per triplet batch.
    pub triplet_batch_size: u32,
    /// Data-loader worker threads.
    pub num_workers: u32,
    /// LRU frame-cache capacity (frames).
    pub frame_cache_size: u32,
    /// Validation episodes per epoch.
    pub val_episodes: u32,
    /// Frame side in pixels (a multiple of 4).
    pub image_size: u32,
    /// Frames per clip.
    pub frames: u32,
    /// Classes in the synthetic dataset.
    pub num_classes: u32,
    /// Videos per class in the synthetic dataset.
    pub videos_per_class: u32,
    /// Random seed.
    pub seed: u64,
    /// Learning rate.
    pub lr: f64,
    /// CUDA device index, or `None` for CPU.
    pub cuda: Option<usize>,
    /// Injected leaks.
    pub leaks: Vec<Leak>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            epochs: 3,
            episodes_per_epoch: 30,
            n_way: 4,
            k_shot: 1,
            n_query: 8,
            num_aug: 5,
            use_triplet: true,
            triplet_ratio: 0.3,
            triplet_batch_size: 8,
            num_workers: 4,
            frame_cache_size: 500,
            val_episodes: 10,
            image_size: 64,
            frames: 6,
            num_classes: 16,
            videos_per_class: 1000,
            seed: 0,
            lr: 1e-3,
            cuda: None,
            leaks: Vec::new(),
        }
    }
}

impl Config {
    /// Whether a leak is injected.
    pub fn has_leak(&self, leak: Leak) -> bool {
        self.leaks.contains(&leak)
    }

    /// The tch device.
    pub fn device(&self) -> tch::Device {
        self.cuda.map_or(tch::Device::Cpu, tch::Device::Cuda)
    }
}

impl TrainerArgs {
    /// Resolve flags over the preset over the defaults, and check every value.
    pub fn resolve(&self) -> Result<Config, String> {
        let mut c = Config::default();
        match self.preset {
            Some(Preset::SeedBefore) => {
                c.triplet_batch_size = 64;
                c.num_workers = 8;
                c.val_episodes = 20;
            }
            Some(Preset::SeedAfter) | None => {}
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(epochs, episodes_per_epoch, n_way, k_shot, n_query, num_aug, use_triplet,
             triplet_ratio, triplet_batch_size, num_workers, frame_cache_size, val_episodes,
             image_size, frames, seed, lr);
        c.leaks = self.leaks.clone();
        c.leaks.dedup();
        c.cuda = match self.device.as_deref().unwrap_or("cpu") {
            "cpu" => None,
            "cuda" => Some(0),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Some(i),
                _ => return Err(format!("--device must be cpu, cuda or cuda:N, not '{other}'")),
            },
        };
        c.validate()?;
        Ok(c)
    }
}

impl Config {
    /// Check values that the types alone do not rule out.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--epochs", self.epochs),
            ("--episodes-per-epoch", self.episodes_per_epoch),
            ("--n-way", self.n_way),
            ("--k-shot", self.k_shot),
            ("--n-query", self.n_query),
            ("--num-workers", self.num_workers),
            ("--frame-cache-size", self.frame_cache_size),
            ("--val-episodes", self.val_episodes),
            ("--frames", self.frames),
        ];
        for (flag, v) in positive {
            if v == 0 {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        if self.n_way < 2 || self.n_way > self.num_classes {
            return Err(format!("--n-way must be between 2 and {} (the dataset's classes), not {}", self.num_classes, self.n_way));
        }
        if self.image_size < 16 || self.image_size % 4 != 0 {
            return Err(format!("--image-size must be a multiple of 4 and at least 16, not {}", self.image_size));
        }
        if !(0.0..=1.0).contains(&self.triplet_ratio) {
            return Err(format!("--triplet-ratio must be between 0 and 1, not {}", self.triplet_ratio));
        }
        if self.use_triplet && self.triplet_batch_size == 0 {
            return Err("--triplet-batch-size must be at least 1 when the triplet branch is on".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("--lr must be a positive number, not {}", self.lr));
        }
        if let Some(i) = self.cuda {
            if !tch::Cuda::is_available() {
                return Err("--device cuda: CUDA is not available (no GPU, driver or CUDA build of libtorch)".into());
            }
            let n = tch::Cuda::device_count() as usize;
            if i >= n {
                return Err(format!("--device cuda:{i}: only {n} CUDA device(s)"));
            }
        }
        if self.has_leak(Leak::GpuTensors) && self.cuda.is_none() {
            return Err("--leak gpu-tensors needs --device cuda (it keeps tensors in GPU memory)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TrainerArgs,
    }

    fn resolve(argv: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("t").chain(argv.iter().copied())).map_err(|e| e.to_string())?;
        cli.args.resolve()
    }

    #[test]
    fn presets_and_overrides() {
        let before = resolve(&["--preset", "seed-before"]).unwrap();
        assert_eq!((before.triplet_batch_size, before.num_workers, before.val_episodes), (64, 8, 20));
        let after = resolve(&["--preset", "seed-after"]).unwrap();
        assert_eq!((after.triplet_batch_size, after.num_workers, after.val_episodes), (8, 4, 10));
        let mixed = resolve(&["--preset", "seed-before", "--num-workers", "2"]).unwrap();
        assert_eq!((mixed.triplet_batch_size, mixed.num_workers), (64, 2));
        assert!(!resolve(&["--use-triplet", "false"]).unwrap().use_triplet);
        assert!(resolve(&["--use-triplet"]).unwrap().use_triplet);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        assert!(resolve(&["--n-way", "0"]).unwrap_err().contains("--n-way"));
        assert!(resolve(&["--frame-cache-size", "-5"]).is_err());
        assert!(resolve(&["--leak", "memory-everywhere"]).unwrap_err().contains("memory-everywhere"));
        assert!(resolve(&["--triplet-ratio", "1.5"]).unwrap_err().contains("--triplet-ratio"));
        assert!(resolve(&["--device", "tpu"]).unwrap_err().contains("--device"));
        if !tch::Cuda::is_available() {
            assert!(resolve(&["--device", "cuda"]).unwrap_err().contains("CUDA is not available"));
            assert!(resolve(&["--leak", "gpu-tensors"]).unwrap_err().contains("--device cuda"));
        }
    }

    #[test]
    fn leaks_repeat() {
        let c = resolve(&["--leak", "model-cache", "--leak", "frame-cache"]).unwrap();
        assert!(c.has_leak(Leak::ModelCache) && c.has_leak(Leak::FrameCache));
    }
}
