//! Boundaries: the points in a training loop where memory is recorded.
//!
//! A program marks a boundary through the [`Marker`] trait; the `profiler` crate's `Profiler`
//! implements it by recording one timeline row, [`NoMarker`] by doing nothing (for builds
//! that are not being profiled).

use std::fmt;
use std::str::FromStr;

/// Which kind of point in the loop a boundary is. Only boundaries of the same kind are
/// comparable: RSS right after validation and RSS at an episode end differ by design.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// The profiler started (one row, before any work).
    Start,
    /// A training episode (or step) finished.
    EpisodeEnd,
    /// A triplet-loss batch finished.
    TripletEnd,
    /// Validation is about to start.
    ValidationStart,
    /// Validation finished (its results computed).
    ValidationEnd,
    /// An epoch finished: the natural point for a trend.
    EpochEnd,
    /// The profiler stopped (one row, at the end of a clean run).
    Finish,
    /// A named phase of the user's own.
    Custom(String),
}

impl Phase {
    /// The name written in the timeline's `phase` column.
    pub fn as_str(&self) -> &str {
        match self {
            Phase::Start => "start",
            Phase::EpisodeEnd => "episode_end",
            Phase::TripletEnd => "triplet_end",
            Phase::ValidationStart => "validation_start",
            Phase::ValidationEnd => "validation_end",
            Phase::EpochEnd => "epoch_end",
            Phase::Finish => "finish",
            Phase::Custom(name) => name,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "start" => Phase::Start,
            "episode_end" => Phase::EpisodeEnd,
            "triplet_end" => Phase::TripletEnd,
            "validation_start" => Phase::ValidationStart,
            "validation_end" => Phase::ValidationEnd,
            "epoch_end" => Phase::EpochEnd,
            "finish" => Phase::Finish,
            other => Phase::Custom(other.to_string()),
        })
    }
}

/// One boundary: its phase, indices, a free-form label and an optional byte count the
/// program reports about itself (the size of a cache, bytes a known leak holds, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Boundary {
    /// Which kind of point this is.
    pub phase: Phase,
    /// Epoch index, from 0.
    pub epoch: Option<u32>,
    /// Episode or step index within the run, from 0.
    pub episode: Option<u64>,
    /// Free text written as is into the `label` column.
    pub label: String,
    /// A byte count of the program's own, written to `user_bytes`.
    pub user_bytes: Option<u64>,
}

impl Boundary {
    /// A boundary of this phase with no indices.
    pub fn new(phase: Phase) -> Self {
        Boundary { phase, epoch: None, episode: None, label: String::new(), user_bytes: None }
    }
    /// Set the epoch index.
    pub fn epoch(mut self, epoch: u32) -> Self {
        self.epoch = Some(epoch);
        self
    }
    /// Set the episode (step) index.
    pub fn episode(mut self, episode: u64) -> Self {
        self.episode = Some(episode);
        self
    }
    /// Set the free-form label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    /// Report a byte count of the program's own.
    pub fn user_bytes(mut self, bytes: u64) -> Self {
        self.user_bytes = Some(bytes);
        self
    }
}

/// Something that takes boundaries. Instrumented code depends on this trait only.
pub trait Marker {
    /// Record one boundary.
    fn mark(&mut self, boundary: Boundary);

    /// A training episode (step) ended.
    fn episode_end(&mut self, epoch: u32, episode: u64) {
        self.mark(Boundary::new(Phase::EpisodeEnd).epoch(epoch).episode(episode));
    }
    /// Validation is about to start.
    fn validation_start(&mut self, epoch: u32) {
        self.mark(Boundary::new(Phase::ValidationStart).epoch(epoch));
    }
    /// Validation ended.
    fn validation_end(&mut self, epoch: u32) {
        self.mark(Boundary::new(Phase::ValidationEnd).epoch(epoch));
    }
    /// An epoch ended.
    fn epoch_end(&mut self, epoch: u32) {
        self.mark(Boundary::new(Phase::EpochEnd).epoch(epoch));
    }
    /// A named phase of the user's own ended.
    fn phase_end(&mut self, name: &str, epoch: u32, episode: Option<u64>) {
        let mut b = Boundary::new(Phase::Custom(name.to_string())).epoch(epoch);
        b.episode = episode;
        self.mark(b);
    }
    /// Whether the loop should stop at this epoch boundary (a profiler with
    /// stop-on-leak confirmed growth). Loops check it after `epoch_end`.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// A marker that records nothing, for runs without profiling.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMarker;

impl Marker for NoMarker {
    fn mark(&mut self, _boundary: Boundary) {}
}

impl<M: Marker + ?Sized> Marker for &mut M {
    fn mark(&mut self, boundary: Boundary) {
        (**self).mark(boundary)
    }
    fn stop_requested(&self) -> bool {
        (**self).stop_requested()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_names_round_trip() {
        for p in [
            Phase::Start,
            Phase::EpisodeEnd,
            Phase::TripletEnd,
            Phase::ValidationStart,
            Phase::ValidationEnd,
            Phase::EpochEnd,
            Phase::Finish,
            Phase::Custom("augment".into()),
        ] {
            assert_eq!(p.as_str().parse::<Phase>().unwrap(), p);
        }
    }
}
