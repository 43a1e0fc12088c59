//! report.html in a real headless browser (Debian's chromium, installed by scripts/test
//! when it can be): it loads with no console error, its screenshot shows the plot, and the
//! verdict is on the page. Skipped, saying so, where no chromium is installed.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let ok = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
        ok.then(|| PathBuf::from(name))
    })
}

/// Run headless chromium on `page` with `extra` flags; returns (stdout, stderr).
fn browse(browser: &Path, profile: &Path, page: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new(browser)
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .env("HOME", profile)
        .output()
        .expect("chromium starts");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Console messages chromium logged at error level, or uncaught exceptions.
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("Error") || l.contains("ERROR"))).collect()
}

#[test]
fn report_html_loads_in_a_browser_with_its_plot_and_verdict() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium installed (scripts/test installs Debian's as root)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    for f in ["timeline.csv", "run.json"] {
        std::fs::copy(fixture("clean-16epochs").join(f), run_dir.join(f)).unwrap();
    }
    let o = run(&["report", run_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = run_dir.join("report.html");
    let html = std::fs::read_to_string(&page).expect("report.html written");
    for external in [" src=", "href=", "<script", "@import", "url("] {
        assert!(!html.contains(external), "report.html refers to something outside it: {external}");
    }
    let profile = dir.path().join("profile");

    // The detector can fail: a page with an error is caught.
    let bad = dir.path().join("bad.html");
    std::fs::write(&bad, "<!DOCTYPE html><html><body><script>nosuch_function();</script></body></html>").unwrap();
    let (_, err) = browse(&browser, &profile, &bad, &["--dump-dom"]);
    assert!(!console_errors(&err).is_empty(), "a console error went unseen; chromium's stderr:\n{err}");

    let (dom, err) = browse(&browser, &profile, &page, &["--dump-dom"]);
    assert!(console_errors(&err).is_empty(), "console errors: {:?}", console_errors(&err));
    assert!(dom.contains("Verdict: flat"), "verdict missing from the page:\n{}", &dom[..dom.len().min(2000)]);
    assert!(dom.contains("<svg") && dom.contains("Epoch 3 (ended at"), "plot or its hover text missing");

    let shot = dir.path().join("shot.png");
    let (_, err) = browse(&browser, &profile, &page, &[&format!("--screenshot={}", shot.display()), "--window-size=1500,1600", "--hide-scrollbars"]);
    assert!(shot.exists(), "no screenshot; chromium's stderr:\n{err}");
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    // The plot's lines: pixels near the RSS blue (31, 119, 180) and the ledger's colours.
    let near = |p: &[u8], c: (u8, u8, u8)| p[0].abs_diff(c.0) < 40 && p[1].abs_diff(c.1) < 40 && p[2].abs_diff(c.2) < 40;
    let mut coloured = 0;
    for px in buf[..info.buffer_size()].chunks(channels) {
        if near(px, (31, 119, 180)) || near(px, (214, 39, 40)) || near(px, (44, 160, 44)) {
            coloured += 1;
        }
    }
    // Keep the screenshot for people (and docs/output-files.md) to look at.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html.png");
    let _ = std::fs::copy(&shot, &keep);
    assert!(coloured > 2000, "the plot is not drawn: {coloured} line-coloured pixels in {}x{} ({})", info.width, info.height, keep.display());
}
