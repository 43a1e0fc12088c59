//! # reference-trainer
//!
//! A stage-2 few-shot video trainer in tch, modelled on the trainer of the seed incident
//! (`MEMORY_LEAK_FIXES_SUMMARY.md`): episodic n-way training with augmented support
//! views, a triplet-loss branch, a frame cache, data-loader workers, and a validation
//! loop that accumulates predictions to compute ST-IoU and mAP@0.5. Every knob the
//! incident names is a flag ([`TrainerArgs`]), and [`Leak`]s reproduce its causes.
//!
//! It knows only the profiler's instrumentation API, [`profiler_api::Marker`].
#![deny(missing_docs)]

pub mod config;
pub mod cuda;
pub mod data;
pub mod episode;
pub mod metrics;
pub mod model;
pub mod train;
pub mod validate;

pub use config::{Config, Leak, Preset, TrainerArgs};
pub use train::{train, train_with, EpochReport, TrainReport};
