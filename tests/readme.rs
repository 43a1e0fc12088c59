//! The README and the guide behind it (docs/*.md) stay in step with the code: every
//! timeline.csv and processes.csv column, every file a report writes, every leak of the
//! reference trainer and every Prometheus metric is documented on its page; the README
//! links every guide page (a newcomer reaches each answer in two clicks), and every link
//! between the pages, anchors included, resolves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};


fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text outside fenced code blocks.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces made `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text).lines().filter(|l| l.starts_with('#')).map(|l| slug(l.trim_start_matches('#'))).collect()
}

/// The targets of `[text](target)` links outside code blocks.
fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    prose.match_indices("](").filter_map(|(i, _)| prose[i + 2..].split_once(')').map(|(t, _)| t.to_string())).collect()
}

fn guide_pages() -> Vec<String> {
    let mut pages: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    pages.sort();
    pages
}

#[test]
fn output_files_page_documents_every_column() {
    let page = read("docs/output-files.md");
    for (column, _) in profiler::timeline::COLUMNS {
        assert!(page.contains(&format!("| `{column}` |")), "docs/output-files.md lacks column {column}");
    }
    for (column, _) in profiler::watch::PROCESS_COLUMNS {
        assert!(page.contains(&format!("| `{column}` |")), "docs/output-files.md lacks processes.csv column {column}");
    }
}

/// The files `diagnose report` writes for a recorded watch run are each in the table.
#[test]
fn output_files_page_names_every_file_a_report_writes() {
    let page = read("docs/output-files.md");
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("tests/fixtures/plots/cow");
    for f in ["timeline.csv", "run.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let analysis = profiler::report::rebuild(dir.path()).unwrap();
    let written = profiler::report::write_all(&analysis, dir.path()).unwrap();
    assert!(!written.is_empty());
    for path in written {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(page.contains(&format!("| `{name}`")) || page.contains(&format!(", `{name}`")), "docs/output-files.md lacks {name}");
    }
}

#[test]
fn rust_library_page_documents_every_leak() {
    let page = read("docs/rust-library.md");
    use clap::ValueEnum;
    for leak in reference_trainer::Leak::value_variants() {
        assert!(page.contains(&format!("| `{}` |", leak.name())), "docs/rust-library.md lacks leak {}", leak.name());
    }
}

/// Every metric family profiler/src/metrics.rs can publish is in the Prometheus table.
#[test]
fn prometheus_page_documents_every_metric() {
    let page = read("docs/ranks-and-prometheus.md");
    let source = read("profiler/src/metrics.rs");
    let mut names = BTreeSet::new();
    for (opening, close) in [("family(&mut s, \"", '"'), ("# TYPE diagnose_", ' ')] {
        for (i, _) in source.match_indices(opening) {
            let rest = &source[i + opening.len()..];
            let name = &rest[..rest.find(close).unwrap()];
            // The helper that writes every family's header names none itself.
            if name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                names.insert(name.to_string());
            }
        }
    }
    assert!(names.len() >= 10, "found only {names:?} in metrics.rs");
    for name in names {
        assert!(page.contains(&format!("`diagnose_{name}")), "docs/ranks-and-prometheus.md lacks diagnose_{name}");
    }
}

#[test]
fn readme_links_every_guide_page() {
    let readme = read("README.md");
    assert!(readme.lines().count() <= 250, "the README is a front page: at most about 250 lines");
    let linked: BTreeSet<String> = links(&readme).into_iter().map(|t| t.split('#').next().unwrap().to_string()).collect();
    for page in guide_pages() {
        assert!(linked.contains(&page), "README.md does not link {page}");
    }
}

#[test]
fn every_link_and_anchor_resolves() {
    let mut pages = vec!["README.md".to_string()];
    pages.extend(guide_pages());
    let mut broken = Vec::new();
    for page in &pages {
        let text = read(page);
        let base = root().join(page).parent().unwrap().to_path_buf();
        for target in links(&text) {
            if target.starts_with("http") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file: PathBuf = if path.is_empty() { root().join(page) } else { base.join(path) };
            if !file.exists() {
                broken.push(format!("{page}: {target} (no such file)"));
                continue;
            }
            if !anchor.is_empty() && file.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&file).unwrap();
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{page}: {target} (no heading with that anchor)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
