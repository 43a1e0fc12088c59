//! Per-rank verdicts of a watched distributed run: each rank's processes (the rank and
//! its DataLoader workers, recognised by `RANK` in their environment) summed at every
//! epoch end from `processes.csv`, and classed like any series. Names the rank that grows.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::verdict::{classify, Class, Tolerance};
use crate::error::Error;
use crate::timeline::{last_epoch_ends, Row};

#[derive(Deserialize)]
struct ProcLine {
    t_s: f64,
    phase: String,
    #[serde(default)]
    rank: Option<u32>,
    pss_bytes: Option<u64>,
    uss_bytes: Option<u64>,
    #[serde(default)]
    gpu_bytes: Option<u64>,
}

/// The verdict on one rank, read on its processes' PSS.
#[derive(Clone, Debug, Serialize)]
pub struct RankVerdict {
    /// The rank.
    pub rank: u32,
    /// flat / bounded / growing / insufficient, of its PSS.
    pub class: Class,
    /// PSS bytes per epoch after warm-up (from where it began, for late growth).
    pub slope_bytes_per_epoch: Option<f64>,
    /// Growing: the first epoch that rose.
    pub growing_since: Option<u32>,
    /// 90 % interval of the slope.
    pub slope_interval: Option<(f64, f64)>,
    /// (epoch, PSS, USS, GPU) of its processes at each epoch end.
    pub by_epoch: Vec<(u32, u64, u64, u64)>,
}

/// Per-rank verdicts from `dir/processes.csv`, the epochs taken from `rows` (the
/// timeline); `None` when no process had a rank.
pub fn read_ranks(dir: &Path, rows: &[Row]) -> Result<Option<Vec<RankVerdict>>, Error> {
    let path = dir.join("processes.csv");
    let Ok(file) = std::fs::File::open(&path) else { return Ok(None) };
    // The epoch each epoch-end row closed, by its time (the same float, written once); an
    // epoch marked twice counts at its last mark only, as in the timeline's analysis.
    let epoch_at: BTreeMap<u64, u32> = last_epoch_ends(rows).into_iter().filter_map(|r| Some((r.t_s.to_bits(), r.epoch?))).collect();
    let mut sums: BTreeMap<u32, BTreeMap<u32, (u64, u64, u64)>> = BTreeMap::new();
    for line in csv::Reader::from_reader(file).deserialize::<ProcLine>() {
        // A partial last line (a killed run) ends the data, as in the timeline.
        let Ok(p) = line else { break };
        // An epoch end read without PSS (a watch's page-walk budget) is no point: not 0.
        let (Some(rank), "epoch_end", Some(&epoch), Some(pss)) = (p.rank, p.phase.as_str(), epoch_at.get(&p.t_s.to_bits()), p.pss_bytes) else { continue };
        let s = sums.entry(rank).or_default().entry(epoch).or_insert((0, 0, 0));
        s.0 += pss;
        s.1 += p.uss_bytes.unwrap_or(0);
        s.2 += p.gpu_bytes.unwrap_or(0);
    }
    if sums.is_empty() {
        return Ok(None);
    }
    let verdicts = sums
        .into_iter()
        .map(|(rank, by)| {
            let by_epoch: Vec<(u32, u64, u64, u64)> = by.into_iter().map(|(e, (p, u, g))| (e, p, u, g)).collect();
            let pts: Vec<(f64, f64)> = by_epoch.iter().map(|b| (b.0 as f64, b.1 as f64)).collect();
            let c = classify(&pts, Tolerance::default());
            RankVerdict {
                rank,
                class: c.class,
                slope_bytes_per_epoch: c.trend.map(|t| t.slope),
                growing_since: c.growing_since.map(|e| e as u32),
                slope_interval: c.trend.and_then(|t| t.interval()),
                by_epoch,
            }
        })
        .collect();
    Ok(Some(verdicts))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dir/processes.csv` with these lines under its header.
    fn write_processes(dir: &Path, lines: &str) {
        let header = "t_s,phase,pid,ppid,role,rank,name,rss_bytes,pss_bytes,uss_bytes,swap_bytes,gpu_bytes\n";
        std::fs::write(dir.join("processes.csv"), format!("{header}{lines}")).unwrap();
    }

    #[test]
    fn sums_each_ranks_processes_at_epoch_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let mut rows = Vec::new();
        for e in 0..6u32 {
            let t = e as f64 * 1.5 + 0.1;
            // The epoch first marked by a log line: superseded by the mark below.
            let early = t - 0.05;
            rows.push(Row { t_s: early, phase: "epoch_end".into(), epoch: Some(e), ..Row::default() });
            text.push_str(&format!("{early},epoch_end,11,1,worker,1,python,1,{},1,0,\n", 777u64 << 20));
            rows.push(Row { t_s: t, phase: "epoch_end".into(), epoch: Some(e), ..Row::default() });
            let leak = e as u64 * (16 << 20);
            text.push_str(&format!("{t},epoch_end,10,1,worker,0,python,1,{},1,0,\n", 500u64 << 20));
            text.push_str(&format!("{t},epoch_end,11,1,worker,1,python,1,{},1,0,\n", (500u64 << 20) + leak));
            text.push_str(&format!("{t},epoch_end,12,11,worker,1,pt_worker,1,{},1,0,\n", 100u64 << 20));
            text.push_str(&format!("{t},sample,12,11,worker,1,pt_worker,1,{},1,0,\n", 999u64 << 20));
        }
        write_processes(dir.path(), &text);
        let v = read_ranks(dir.path(), &rows).unwrap().unwrap();
        assert_eq!((v[0].rank, v[0].class), (0, Class::Flat));
        assert_eq!((v[1].rank, v[1].class), (1, Class::Growing));
        assert_eq!(v[1].by_epoch[0].1, 600 << 20, "a rank is its processes summed");
        assert!((v[1].slope_bytes_per_epoch.unwrap() - (16 << 20) as f64).abs() < 1.0);
        assert_eq!(v[1].growing_since, Some(1), "from the first epoch after warm-up");

        // Epoch ends read with RSS alone (a watch's page-walk budget): left out, not zeros.
        for e in 6..9u32 {
            let t = e as f64 * 1.5 + 0.1;
            rows.push(Row { t_s: t, phase: "epoch_end".into(), epoch: Some(e), ..Row::default() });
            text.push_str(&format!("{t},epoch_end,10,1,worker,0,python,1,,,,\n"));
            text.push_str(&format!("{t},epoch_end,11,1,worker,1,python,1,,,,\n"));
        }
        write_processes(dir.path(), &text);
        let v = read_ranks(dir.path(), &rows).unwrap().unwrap();
        assert_eq!((v[0].class, v[0].by_epoch.len()), (Class::Flat, 6), "{:?}", v[0]);
        assert_eq!((v[1].class, v[1].by_epoch.len()), (Class::Growing, 6), "{:?}", v[1]);
    }

    #[test]
    fn a_rank_that_starts_leaking_late_is_growing_since_then() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let mut rows = Vec::new();
        for e in 0..14u32 {
            let t = e as f64 + 0.5;
            rows.push(Row { t_s: t, phase: "epoch_end".into(), epoch: Some(e), ..Row::default() });
            // ±0.2 MiB of jitter on both; rank 1 keeps 8 MiB per epoch from epoch 9 on.
            let jitter = |r: u64| ((e as u64 * 7 + r * 3) % 5) * (100 << 10);
            let leak = e.saturating_sub(8) as u64 * (8 << 20);
            text.push_str(&format!("{t},epoch_end,10,1,worker,0,python,1,{},1,0,\n", (400u64 << 20) + jitter(0)));
            text.push_str(&format!("{t},epoch_end,11,1,worker,1,python,1,{},1,0,\n", (400u64 << 20) + jitter(1) + leak));
        }
        write_processes(dir.path(), &text);
        let v = read_ranks(dir.path(), &rows).unwrap().unwrap();
        assert_eq!(v[0].class, Class::Flat, "{:?}", v[0]);
        assert_eq!((v[1].class, v[1].growing_since), (Class::Growing, Some(9)), "{:?}", v[1]);
        assert!((v[1].slope_bytes_per_epoch.unwrap() / (8u64 << 20) as f64 - 1.0).abs() < 0.05, "{:?}", v[1].slope_bytes_per_epoch);
    }
}
