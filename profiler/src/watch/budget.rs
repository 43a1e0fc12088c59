//! How often a watch may read PSS and USS at boundaries: a budget for page-table walks.
//!
//! `smaps_rollup` walks a process's page tables: about 7 ms per torch process, 60 ms for a
//! trainer with 8 DataLoader workers. Read at every epoch end of 3.6-s epochs, that alone
//! was 1.7 % of a core (`benches/watch_overhead.sh`); at fixed 2-s windows over a week,
//! 3 %. Epochs of a minute cost 0.1 %. So the first epoch ends (a short run's whole
//! verdict, and each process's first points) are read in full,
//! and after them a boundary is read in full only while the walks stay under a share of
//! the elapsed time ([`POLICY`]); the others read RSS alone, as samples do. The
//! epochs left without PSS are counted in the ledger.
//!
//! With a memory cgroup of the command's own (`cgroup::OwnCgroup`), the tree's PSS needs
//! no walk: walks serve each process's USS alone, at the first [`OWN_CGROUP_POLICY`]
//! epoch ends, then where memory moved ([`Movement`]), then as the budget allows.

use std::time::Duration;

use crate::timeline::PssBudget;

/// Epoch ends always read in full (the epochs a short run is judged on, paired evidence
/// included: `analysis::paired::MAX_PROFILED_EPOCHS`), then the share of one core the
/// page walks at boundaries may take.
pub const POLICY: PssBudget = PssBudget { always_full_epoch_ends: crate::analysis::paired::MAX_PROFILED_EPOCHS as u32, cpu_share: 0.005 };

/// With a cgroup of its own (`cgroup::OwnCgroup`) the tree's PSS is the kernel's count at
/// every sample, and page walks serve each process's own points alone (its USS, a rank's
/// PSS): the first 3 epoch ends (what a process needs to be judged, the 3 a 4-epoch run
/// has), then epoch ends where memory moved ([`Movement`]), then the same share of a core.
pub const OWN_CGROUP_POLICY: PssBudget = PssBudget { always_full_epoch_ends: crate::analysis::MIN_PROCESS_EPOCHS as u32, cpu_share: POLICY.cpu_share };

/// Memory that moved may be read within this many times the budget's share of a core.
pub const MOVEMENT_SHARE_FACTOR: f64 = 4.0;

/// Epoch ends looked back on for movement: growth slower than the threshold per epoch but
/// past it over this many is still read, and a plateau is read at the 3 epoch ends after
/// its knee (what "bounded" needs: `analysis::trend`).
pub const MOVEMENT_EPOCHS: usize = 4;

/// What a sample reads for almost nothing: the tree's total from its cgroup and each
/// process's RSS (statm).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheapReading {
    /// The cgroup's anon + shmem.
    pub tree: u64,
    /// (pid, RSS) of each process.
    pub rss: Vec<(u32, u64)>,
}

/// Whether memory moved enough since the last epoch ends and the last full reading that
/// each process's USS must be read again. Memory that holds still keeps its last reading
/// (a process's USS can change without its RSS only by copy-on-write or a sharer's exit:
/// the first raises the tree's total, the second changes the tree).
#[derive(Debug, Default)]
pub struct Movement {
    /// At the last [`MOVEMENT_EPOCHS`] epoch ends, the first one left out: a run's first
    /// epoch starts its workers and fills its allocator (warm-up, which the verdict leaves
    /// out too), so every later epoch end differs from it.
    recent: std::collections::VecDeque<CheapReading>,
    epoch_ends: u32,
    /// At the last full reading.
    last_full: Option<CheapReading>,
}

impl Movement {
    /// Whether the tree's total `tree` and each process's `rss` now call for a full reading.
    pub fn due(&self, tree: u64, rss: &[(u32, u64)]) -> bool {
        let Some(last) = &self.last_full else { return true };
        // A process not yet read in full: its first point.
        if rss.iter().any(|(pid, _)| !last.rss.iter().any(|(p, _)| p == pid)) {
            return true;
        }
        let x = movement_threshold(tree);
        self.recent.iter().chain(std::iter::once(last)).any(|then| moved(then, tree, rss, x))
    }

    /// An epoch ended with this reading.
    pub fn epoch_end(&mut self, now: CheapReading) {
        self.epoch_ends += 1;
        if self.epoch_ends == 1 {
            return;
        }
        self.recent.push_back(now);
        if self.recent.len() > MOVEMENT_EPOCHS {
            self.recent.pop_front();
        }
    }

    /// The tree was read in full.
    pub fn full(&mut self, now: CheapReading) {
        self.last_full = Some(now);
    }
}

/// Movement that calls for a reading: 1 MiB, or 0.5 % of the tree's memory (a quarter of
/// the verdict's tolerance over the span of a young fit: `analysis::verdict::Tolerance`).
pub fn movement_threshold(tree: u64) -> u64 {
    (1 << 20u64).max(tree / 200)
}

fn moved(then: &CheapReading, tree: u64, rss: &[(u32, u64)], x: u64) -> bool {
    then.tree.abs_diff(tree) > x || rss.iter().any(|(pid, now)| then.rss.iter().any(|(p, r)| p == pid && r.abs_diff(*now) > x))
}

/// While summed RSS is past `--max-memory`, the longest a watch goes without reading PSS.
pub const OVER_MAX_WALK_EVERY: Duration = Duration::from_secs(5);

/// Whether a sample must read PSS in full to tell if the tree passed `--max-memory`
/// (`max`). Summed RSS (`rss`, read at every sample) is PSS's upper bound but counts the
/// libraries' pages and pages shared by forked processes once per process: a torch tree's
/// is 3 times its PSS, so it is past the limit long before PSS is, and walking at every
/// sample then cost 54-57 % of a core on a 9-process trainer (docs/watch-overhead-bench.txt). PSS can have risen since the last full reading
/// (`last`: its PSS and summed RSS, `since` ago) by at most what RSS rose, except where a
/// copy-on-write fault copies a shared page (PSS rises, RSS does not): read when that
/// bound passes the limit, and at least every [`OVER_MAX_WALK_EVERY`].
pub fn max_memory_walk_due(max: u64, rss: u64, last: Option<(u64, u64)>, since: Duration) -> bool {
    if rss <= max {
        return false;
    }
    match last {
        None => true,
        Some((pss, last_rss)) => pss + rss.saturating_sub(last_rss) > max || since >= OVER_MAX_WALK_EVERY,
    }
}

/// CPU time spent in full readings, and the cost of the last one.
#[derive(Debug)]
pub struct WalkBudget {
    /// `None`: every boundary in full.
    policy: Option<PssBudget>,
    spent: Duration,
    last: Duration,
    /// Epochs ended so far, and the last one's index: an epoch marked twice (a log line,
    /// then a marker; each rank) counts once.
    epoch_ends: u32,
    last_epoch: Option<u32>,
}

impl WalkBudget {
    /// A budget under `policy` (`None`: none, every boundary read in full).
    pub fn new(policy: Option<PssBudget>) -> Self {
        WalkBudget { policy, spent: Duration::ZERO, last: Duration::ZERO, epoch_ends: 0, last_epoch: None }
    }

    /// Whether a boundary at `elapsed` since the start may be read in full; `epoch_end`:
    /// it ends an epoch (`Some(None)` when it names none).
    pub fn allows(&mut self, epoch_end: Option<Option<u32>>, elapsed: Duration) -> bool {
        let Some(policy) = self.policy else { return true };
        if let Some(epoch) = epoch_end {
            if epoch.is_none() || epoch != self.last_epoch {
                self.epoch_ends += 1;
            }
            self.last_epoch = epoch;
        }
        let always = epoch_end.is_some() && self.epoch_ends <= policy.always_full_epoch_ends;
        always || (self.spent + self.last).as_secs_f64() <= policy.cpu_share * elapsed.as_secs_f64()
    }

    /// Whether memory that moved (`Movement::due`) may be read in full: at the first
    /// [`POLICY`]`.always_full_epoch_ends`, then within [`MOVEMENT_SHARE_FACTOR`] times the
    /// share (a leak in short epochs moves at every one; it must not cost more than
    /// reading every epoch end did before the budget).
    pub fn allows_moved(&self, elapsed: Duration) -> bool {
        // Over the epoch ends every one of which was read before cgroups were used (a short
        // run's, paired evidence's), all that moved; past them, the cap.
        let early = self.epoch_ends <= POLICY.always_full_epoch_ends;
        early || self.policy.is_none_or(|p| (self.spent + self.last).as_secs_f64() <= MOVEMENT_SHARE_FACTOR * p.cpu_share * elapsed.as_secs_f64())
    }

    /// A full reading took `cpu` of this thread's time.
    pub fn spend(&mut self, cpu: Duration) {
        self.spent += cpu;
        self.last = cpu;
    }
}

/// This thread's CPU time so far (user and system: the page walk is the kernel's).
pub fn thread_cpu() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_epochs_are_read_in_full_at_first_then_as_the_budget_allows() {
        // 60 ms per reading, epochs of 3.6 s: the overhead bench's trainer.
        let cost = Duration::from_millis(60);
        let first = POLICY.always_full_epoch_ends;
        let mut b = WalkBudget::new(Some(POLICY));
        let mut full = vec![];
        for e in 1..=1000u32 {
            let at = Duration::from_millis(3600 * e as u64);
            if b.allows(Some(Some(e)), at) {
                b.spend(cost);
                full.push(e);
            }
        }
        assert_eq!(full[..first as usize], (1..=first).collect::<Vec<_>>()[..]);
        // Then within the share over the run, read evenly enough for a trend.
        let spent = cost.as_secs_f64() * full.len() as f64;
        assert!(spent <= POLICY.cpu_share * 3600.0 + 1e-9, "{} readings", full.len());
        assert!(full.len() > 50, "{full:?}");
        let gaps: Vec<u32> = full[first as usize..].windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().skip(5).all(|g| (3..=5).contains(g)), "{gaps:?}");
        // An epoch marked twice counts once.
        let mut b = WalkBudget::new(Some(POLICY));
        let twice: Vec<bool> = (0..first).flat_map(|e| [e, e]).map(|e| b.allows(Some(Some(e)), Duration::from_millis(3600 * (e as u64 + 1)))).collect();
        assert!(twice.iter().all(|r| *r), "{twice:?}");
        // Epochs of a minute, or no budget: every one.
        for (policy, epoch_s) in [(Some(POLICY), 60), (None, 1)] {
            let mut b = WalkBudget::new(policy);
            assert!((1..=100u64).all(|e| {
                let ok = b.allows(Some(Some(e as u32)), Duration::from_secs(epoch_s * e));
                b.spend(cost);
                ok
            }));
        }
    }

    #[test]
    fn memory_that_moves_is_read_and_a_plateau_gets_its_readings() {
        const MIB: u64 = 1 << 20;
        let at = |tree: u64, rss: &[(u32, u64)]| CheapReading { tree: tree * MIB, rss: rss.iter().map(|&(p, r)| (p, r * MIB)).collect() };
        let due_at = |m: &Movement, now: CheapReading| m.due(now.tree, &now.rss);
        let mut m = Movement::default();
        assert!(due_at(&m, at(400, &[(1, 300)])), "nothing read yet");
        // A cache fills over 3 epochs by 10 MiB each, then holds: every epoch end is read
        // while it fills, the knee (3) and 3 after it (the plateau), then none.
        let tree = [400, 410, 420, 430, 430, 430, 430, 430, 430];
        let mut read = vec![];
        for (e, &t) in tree.iter().enumerate() {
            let now = at(t, &[(1, 300), (2, 100)]);
            if e == 0 || m.due(now.tree, &now.rss) {
                m.full(now.clone());
                read.push(e);
            }
            m.epoch_end(now);
        }
        assert_eq!(read, vec![0, 1, 2, 3, 4, 5, 6], "{read:?}");
        // The first epoch's jump (workers started, allocator filled) is no reason to read
        // the epoch ends after the first ones.
        let mut m = Movement::default();
        let mut read = vec![];
        for (e, t) in [300, 400, 400, 400, 400, 400, 400].into_iter().enumerate() {
            let now = at(t, &[(1, 300)]);
            if e < 3 || m.due(now.tree, &now.rss) {
                m.full(now.clone());
                read.push(e);
            }
            m.epoch_end(now);
        }
        assert_eq!(read, vec![0, 1, 2], "{read:?}");
        // Slow drift (0.4 MiB an epoch under a 2 MiB threshold) is read once it adds up.
        let mut m = Movement::default();
        let mut read = vec![];
        for e in 0..20u64 {
            let now = CheapReading { tree: 400 * MIB + e * 2 * MIB / 5, rss: vec![(1, 300 * MIB)] };
            if e == 0 || m.due(now.tree, &now.rss) {
                m.full(now.clone());
                read.push(e);
            }
            m.epoch_end(now);
        }
        assert!(read.len() >= 3 && read.len() <= 5, "{read:?}");
        // One process grows while another shrinks as much: the sum holds, they are read.
        let mut m = Movement::default();
        m.full(at(400, &[(1, 300), (2, 100)]));
        m.epoch_end(at(400, &[(1, 300), (2, 100)]));
        assert!(due_at(&m, at(400, &[(1, 305), (2, 95)])));
        // A new process is read at once; one that left is no movement.
        assert!(due_at(&m, at(400, &[(1, 300), (2, 100), (3, 50)])));
        assert!(!due_at(&m, at(400, &[(1, 300)])));
        assert_eq!(movement_threshold(100 * MIB), MIB);
        assert_eq!(movement_threshold(1000 * MIB), 5 * MIB);
    }

    #[test]
    fn thread_cpu_advances_with_work() {
        let before = thread_cpu();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu() > before);
    }

    #[test]
    fn rss_past_the_limit_walks_only_when_pss_may_be_past_it() {
        const MIB: u64 = 1 << 20;
        let now = Duration::from_secs(1);
        // Under the limit by RSS: never.
        assert!(!max_memory_walk_due(1024 * MIB, 900 * MIB, None, now));
        // Past it by RSS, with no PSS yet: at once.
        assert!(max_memory_walk_due(1024 * MIB, 1500 * MIB, None, now));
        // A torch tree: RSS 1.5 GiB, PSS 510 MiB a second ago, RSS up 10 MiB since: no.
        assert!(!max_memory_walk_due(1024 * MIB, 1510 * MIB, Some((510 * MIB, 1500 * MIB)), now));
        // RSS up by more than the headroom: PSS may be past the limit.
        assert!(max_memory_walk_due(1024 * MIB, 2100 * MIB, Some((510 * MIB, 1500 * MIB)), now));
        // Copy-on-write raises PSS without RSS: read at least every few seconds.
        assert!(max_memory_walk_due(1024 * MIB, 1500 * MIB, Some((510 * MIB, 1500 * MIB)), OVER_MAX_WALK_EVERY));
    }
}
