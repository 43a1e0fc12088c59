//! A real Prometheus server (Debian's package, started here on loopback) scrapes
//! `diagnose watch --metrics-listen` during a short run with a known leak: our series
//! arrive with their labels and values, and promtool accepts the shipped alerting rules.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A plain HTTP/1.0 GET on loopback; the body.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of an instant query's first result, if any.
fn query(prom: &str, promql: &str) -> Option<(serde_json::Value, f64)> {
    let q: String = promql.bytes().map(|b| if b.is_ascii_alphanumeric() || b"_".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
    let body = http_get(prom, &format!("/api/v1/query?query={q}"))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let first = v["data"]["result"].as_array()?.first()?.clone();
    let value = first["value"][1].as_str()?.parse().ok()?;
    Some((first["metric"].clone(), value))
}

#[test]
fn prometheus_scrapes_our_series_and_accepts_our_rules() {
    let Ok(prometheus) = which("prometheus") else {
        eprintln!("SKIPPED: no prometheus binary (scripts/test installs Debian's package as root)");
        return;
    };
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/diagnose-rules.yml");
    let o = Command::new("promtool").args(["check", "rules", rules]).output().unwrap();
    assert!(o.status.success(), "promtool: {}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));

    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let (ours, web) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, format!("global:\n  scrape_interval: 1s\nrule_files: ['{rules}']\nscrape_configs:\n  - job_name: diagnose\n    static_configs:\n      - targets: ['{ours}']\n")).unwrap();
    let _prom = Killed(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = dir.path().join("run");
    let watched = Killed(
        diagnose()
            .args(["watch", "--out", out.to_str().unwrap(), "--interval", "200ms", "--metrics-listen", &ours, "--"])
            .arg(python())
            .args([py_script("grow.py").as_str(), "--steps", "60", "--mib", "4", "--sleep", "0.25"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Until Prometheus holds our verdict: growing, for the tree's PSS, from a scrape of us.
    let deadline = Instant::now() + Duration::from_secs(60);
    let growing = loop {
        if let Some(found) = query(&web, "diagnose_series_class{series=\"tree_pss\",class=\"growing\"} == 1") {
            break found;
        }
        assert!(Instant::now() < deadline, "no growing verdict reached Prometheus");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!((growing.0["job"].as_str(), growing.0["instance"].as_str()), (Some("diagnose"), Some(ours.as_str())), "{growing:?}");
    // The slope Prometheus stored is the leak's: 4 MiB per epoch, from the tree's PSS.
    let (_, slope) = query(&web, "diagnose_series_slope_bytes_per_epoch{series=\"tree_pss\"}").expect("slope scraped");
    assert!((slope - 4.0 * 1048576.0).abs() < 0.5 * 1048576.0, "slope {slope}");
    let (_, pss) = query(&web, "diagnose_memory_bytes{series=\"tree_pss\"}").expect("PSS scraped");
    assert!(pss > 8.0 * 1048576.0, "{pss}");
    let (_, limit) = query(&web, "diagnose_memory_limit_bytes").expect("limit scraped");
    assert!(limit > pss);
    let (_, boundaries) = query(&web, "diagnose_boundaries_total").expect("counter scraped");
    assert!(boundaries >= 5.0);
    // Labels hold names only: no command line, path or environment value.
    let page = http_get(&ours, "/metrics").expect("our endpoint answers");
    assert!(!page.contains("grow.py") && !page.contains("/tmp") && !page.contains(".venv"), "{page}");
    drop(watched);
}

/// The path of `name` on PATH.
fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join(name)).find(|p| p.is_file()).ok_or(())
}
