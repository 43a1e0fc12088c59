//! Boundaries from the child's log lines: an epoch pattern (its first capture group, if
//! any, is the epoch index) and named phase patterns. The child's output is passed on
//! unchanged as it arrives; only whole lines are matched.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use profiler_api::{Boundary, Phase};
use regex::Regex;

/// Matches the usual epoch lines: `Epoch 3`, `epoch 3/50`, `[Epoch 3]`, `Epoch: 3`,
/// `epoch=3`; not "epochs" or "50 epochs".
pub const DEFAULT_EPOCH_PATTERN: &str = r"(?i)(?:^|[^a-z])epoch\s*[:=\[#]?\s*(\d+)";

/// The longest line matched; longer lines are matched on their first part.
const MAX_LINE: usize = 64 * 1024;

/// What to look for in the child's lines.
pub struct LogMatcher {
    epoch: Option<Regex>,
    phases: Vec<(String, Regex)>,
    last_epoch: Option<u32>,
    epochs_seen: u32,
    /// The epoch the last progress-bar line named.
    bar_epoch: Option<u32>,
}

impl LogMatcher {
    /// Epoch lines match `epoch` (none: no epoch boundaries from logs); each phase
    /// `(name, pattern)` records a boundary of that name.
    pub fn new(epoch: Option<Regex>, phases: Vec<(String, Regex)>) -> Self {
        LogMatcher { epoch, phases, last_epoch: None, epochs_seen: 0, bar_epoch: None }
    }

    /// The boundaries one line marks. An epoch line counts once per epoch index: a trainer
    /// printing `Epoch 3 step 100` on every step marks epoch 3 once. Without a capture
    /// group, every match is the next epoch.
    pub fn boundaries(&mut self, line: &str) -> Vec<Boundary> {
        self.line_boundaries(line, false)
    }

    /// As [`boundaries`](Self::boundaries); `bar` says the line was ended by `\r`: a
    /// progress bar redrawn in place (`tqdm(loader, desc=f"Epoch {n}")`), which names
    /// an epoch while it runs, from its start. Its epoch N ends when a bar first names
    /// N+1 (its closing line, ended by `\n`, ends nothing); the first bar seen ends
    /// nothing.
    pub fn line_boundaries(&mut self, line: &str, bar: bool) -> Vec<Boundary> {
        let mut out = Vec::new();
        if let Some(caps) = self.epoch.as_ref().and_then(|re| re.captures(line)) {
            let epoch = match caps.get(1) {
                Some(m) => m.as_str().parse::<u32>().ok(),
                None => Some(self.epochs_seen),
            };
            let epoch = match (bar, epoch) {
                (true, Some(n)) => {
                    let before = self.bar_epoch.replace(n);
                    // A new epoch's bar: the one it names before ended (once).
                    before.filter(|b| *b != n).and(n.checked_sub(1))
                }
                // A bar's closing line (tqdm ends it with \n) is still that epoch's bar.
                (false, Some(n)) if self.bar_epoch == Some(n) => None,
                (_, e) => e,
            };
            if let Some(e) = epoch {
                if self.last_epoch != Some(e) {
                    self.last_epoch = Some(e);
                    self.epochs_seen += 1;
                    out.push(Boundary::new(Phase::EpochEnd).epoch(e).label("log"));
                }
            }
        }
        for (name, re) in &self.phases {
            if re.is_match(line) {
                let mut b = Boundary::new(name.parse().expect("infallible")).label("log");
                b.epoch = self.last_epoch;
                out.push(b);
            }
        }
        out
    }
}

/// Copy `from` to `to` as it arrives (chunk by chunk, flushed, so partial lines such as
/// progress bars pass at once) and hand each complete line's boundaries to `deliver`.
/// Returns at end of input. A closed `to` (our own stdout piped into `head`) stops the
/// copy but not the matching.
pub fn pump(mut from: impl Read, to: impl Write, matcher: Arc<Mutex<LogMatcher>>, mut deliver: impl FnMut(Boundary)) {
    let mut chunk = [0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let mut copying = true;
    let mut to = super::console::PassOn(to);
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if copying && to.pass(&chunk[..n]).is_err() {
            copying = false;
        }
        for &b in &chunk[..n] {
            if b == b'\n' || b == b'\r' {
                if !line.is_empty() {
                    let text = String::from_utf8_lossy(&line);
                    let found = matcher.lock().expect("matcher lock").line_boundaries(&text, b == b'\r');
                    found.into_iter().for_each(&mut deliver);
                    line.clear();
                }
            } else if line.len() < MAX_LINE {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        let found = matcher.lock().expect("matcher lock").boundaries(&String::from_utf8_lossy(&line));
        found.into_iter().for_each(&mut deliver);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> LogMatcher {
        LogMatcher::new(Some(Regex::new(DEFAULT_EPOCH_PATTERN).unwrap()), vec![])
    }

    fn epochs(m: &mut LogMatcher, line: &str) -> Vec<Option<u32>> {
        m.boundaries(line).into_iter().filter(|b| b.phase == Phase::EpochEnd).map(|b| b.epoch).collect()
    }

    #[test]
    fn default_pattern_matches_the_usual_forms() {
        for (line, e) in [("Epoch 3", 3), ("epoch 4/50: loss 0.3", 4), ("[Epoch 5] done", 5), ("Epoch: 6", 6), ("train epoch=7 loss=1", 7), ("INFO Epoch #8", 8)] {
            assert_eq!(epochs(&mut default(), line), vec![Some(e)], "{line}");
        }
        for line in ["Training for 50 epochs", "epochs: 3", "Stepoch 3", "loss 0.5"] {
            assert!(epochs(&mut default(), line).is_empty(), "{line}");
        }
    }

    #[test]
    fn an_epoch_counts_once_and_phases_carry_it() {
        let val = Regex::new("^Validat").unwrap();
        let mut m = LogMatcher::new(Some(Regex::new(DEFAULT_EPOCH_PATTERN).unwrap()), vec![("validation_start".into(), val)]);
        assert_eq!(epochs(&mut m, "Epoch 1 step 1"), vec![Some(1)]);
        assert!(epochs(&mut m, "Epoch 1 step 2").is_empty());
        let b = m.boundaries("Validating...");
        assert_eq!((b[0].phase.clone(), b[0].epoch), (Phase::ValidationStart, Some(1)));
        let mut counting = LogMatcher::new(Some(Regex::new("^=== done").unwrap()), vec![]);
        assert_eq!(epochs(&mut counting, "=== done"), vec![Some(0)]);
        assert_eq!(epochs(&mut counting, "=== done"), vec![Some(1)]);
    }

    #[test]
    fn a_progress_bar_names_its_epoch_from_the_start() {
        // tqdm(loader, desc=f"Epoch {n}"): redrawn with \r while epoch n runs, closed with \n.
        let input = b"Epoch 0:  50%|#   | 1/2\rEpoch 0: 100%|##| 2/2\nval 0.3\nEpoch 1:  50%|#   | 1/2\rEpoch 1: 100%|##| 2/2\nEpoch 2:  50%|#   | 1/2\r".to_vec();
        let mut found = Vec::new();
        pump(&input[..], &mut Vec::new(), Arc::new(Mutex::new(default())), |b| found.push(b.epoch));
        assert_eq!(found, vec![Some(0), Some(1)], "epoch N ends when the bar of N+1 starts, not when N's starts");
        // A 1-based bar: the first bar ends nothing.
        let mut m = default();
        assert!(m.line_boundaries("Epoch 1/3: 10%|", true).is_empty());
        assert_eq!(m.line_boundaries("Epoch 2/3: 10%|", true)[0].epoch, Some(1));
        // Lines ended by \n keep their meaning: the end of the epoch they name.
        assert_eq!(default().line_boundaries("Epoch 3 loss 0.2", false)[0].epoch, Some(3));
    }

    #[test]
    fn pump_copies_unchanged_and_matches_lines() {
        let input = b"start\rprogress 50%\rEpoch 1\nno newline Epoch 2".to_vec();
        let mut out = Vec::new();
        let mut found = Vec::new();
        pump(&input[..], &mut out, Arc::new(Mutex::new(default())), |b| found.push(b.epoch));
        assert_eq!(out, input);
        assert_eq!(found, vec![Some(1), Some(2)]);
    }
}
