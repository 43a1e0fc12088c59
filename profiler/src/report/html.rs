//! `report.html`: one self-contained page (no network, no external files, no script) to
//! open from a CI artefact or attach to an issue. Its text is `summary.md` itself, turned
//! into HTML by a small converter for the Markdown subset that file uses (headings, bold,
//! lists, tables, code spans), so the page and the Markdown never disagree; the memory plot
//! is the same drawing as `memory.png`, as inline SVG, with each epoch's values in a
//! tooltip over its band.

use std::fmt::Write;

use super::{markdown, png};
use crate::analysis::Analysis;

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1440px;padding:0 16px;color:#222}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}code{background:#f3f3f3;padding:1px 3px;border-radius:3px;font-size:.92em}
.plot svg{max-width:100%;height:auto;border:1px solid #eee}.hover rect{fill:#000;fill-opacity:0;cursor:crosshair}
.hover rect:hover{fill-opacity:.07}.verdict-growing strong:first-child{color:#b00}.note{color:#666;font-size:.9em}";

/// Escape text for HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Inline Markdown of one line: `code`, **bold**; everything else escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('`') {
        let Some(j) = rest[i + 1..].find('`') else { break };
        out.push_str(&bold(&escape(&rest[..i])));
        let _ = write!(out, "<code>{}</code>", escape(&rest[i + 1..i + 1 + j]));
        rest = &rest[i + 2 + j..];
    }
    out.push_str(&bold(&escape(rest)));
    out
}

fn bold(s: &str) -> String {
    let parts: Vec<&str> = s.split("**").collect();
    if parts.len() < 3 {
        return s.to_string();
    }
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        out.push_str(p);
        if i + 1 < parts.len() {
            out.push_str(if i % 2 == 0 { "<strong>" } else { "</strong>" });
        }
    }
    out
}

/// The cells of a Markdown table row; `\|` is a literal bar.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().expect("one cell").push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().expect("one cell").push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// HTML of the Markdown subset our reports write: `#`/`##` headings, paragraphs, `- `
/// lists, pipe tables (first row the header), bold and code spans.
pub fn markdown_to_html(md: &str) -> String {
    let mut html = String::new();
    let mut in_list = false;
    let mut table_row = 0usize;
    for line in md.lines() {
        let t = line.trim_end();
        if in_list && !t.starts_with("- ") {
            html.push_str("</ul>\n");
            in_list = false;
        }
        if table_row > 0 && !t.starts_with('|') {
            html.push_str("</tbody></table>\n");
            table_row = 0;
        }
        if let Some(h) = t.strip_prefix("## ") {
            let _ = writeln!(html, "<h2>{}</h2>", inline(h));
        } else if let Some(h) = t.strip_prefix("# ") {
            let _ = writeln!(html, "<h1>{}</h1>", inline(h));
        } else if let Some(item) = t.strip_prefix("- ") {
            if !in_list {
                html.push_str("<ul>\n");
                in_list = true;
            }
            let _ = writeln!(html, "<li>{}</li>", inline(item));
        } else if t.starts_with('|') {
            table_row += 1;
            match table_row {
                1 => {
                    html.push_str("<table><thead><tr>");
                    for c in cells(t) {
                        let _ = write!(html, "<th>{}</th>", inline(&c));
                    }
                    html.push_str("</tr></thead><tbody>\n");
                }
                2 if t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')) => {}
                _ => {
                    html.push_str("<tr>");
                    for c in cells(t) {
                        let _ = write!(html, "<td>{}</td>", inline(&c));
                    }
                    html.push_str("</tr>\n");
                }
            }
        } else if !t.is_empty() {
            let _ = writeln!(html, "<p>{}</p>", inline(t));
        }
    }
    if in_list {
        html.push_str("</ul>\n");
    }
    if table_row > 0 {
        html.push_str("</tbody></table>\n");
    }
    html
}

/// The memory plot as inline SVG, with a transparent band over each epoch end whose
/// tooltip (`<title>`) lists that epoch's values.
fn plot_svg(a: &Analysis) -> Result<String, String> {
    let (svg, plot) = png::memory_svg(a)?;
    let mut bands = String::from("<g class=\"hover\">");
    for b in &plot.hover {
        let (x0, x1) = (b.x.0.min(b.x.1), b.x.0.max(b.x.1));
        let _ = write!(
            bands,
            "<rect x=\"{x0}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}</title></rect>",
            b.y.0,
            (x1 - x0).max(2),
            (b.y.1 - b.y.0).max(2),
            escape(&b.text)
        );
    }
    bands.push_str("</g>");
    // plotters writes an XML prologue: inline SVG in HTML starts at <svg.
    let start = svg.find("<svg").unwrap_or(0);
    let body = &svg[start..];
    Ok(match body.rfind("</svg>") {
        Some(end) => format!("{}{bands}</svg>", &body[..end]),
        None => body.to_string(),
    })
}

/// The whole page.
pub fn report_html(a: &Analysis) -> Result<String, String> {
    let summary = markdown::summary(a);
    // The plot goes right after the headline (verdict, OOM, facts), before the ledger.
    let split = summary.find("\n## ").unwrap_or(summary.len());
    let (head, rest) = summary.split_at(split);
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Memory report: {}</title>\n<style>{STYLE}</style></head>\n<body class=\"verdict-{}\">\n",
        escape(a.verdict),
        escape(a.verdict)
    );
    html.push_str(&markdown_to_html(head));
    let _ = writeln!(html, "<p>{}</p>", inline(&format!("Why: {}.", super::verdict_reason(a))));
    let _ = writeln!(
        html,
        "<h2>Memory over time</h2>\n<p class=\"note\">Hover over an epoch's band for its values. Dashed vertical lines: epoch ends (numbered above); thick dashes: the fitted trend, labelled with its slope.</p>\n<div class=\"plot\">{}</div>",
        plot_svg(a)?
    );
    html.push_str(&markdown_to_html(rest));
    let _ = writeln!(html, "<p class=\"note\">Written by diagnose {}; the same figures as summary.md, summary.json and the CSV files beside this page.</p>\n</body></html>", env!("CARGO_PKG_VERSION"));
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_subset_converts() {
        let html = markdown_to_html("# T\n\n**Verdict: flat**\n\n- a `x|y` b\n- c\n\n| a | b |\n|---|---|\n| `p\\|q` | 2 < 3 |\n");
        assert!(html.contains("<h1>T</h1>"), "{html}");
        assert!(html.contains("<p><strong>Verdict: flat</strong></p>"), "{html}");
        assert!(html.contains("<li>a <code>x|y</code> b</li>"), "{html}");
        assert!(html.contains("<th>a</th><th>b</th>"), "{html}");
        assert!(html.contains("<td><code>p|q</code></td><td>2 &lt; 3</td>"), "{html}");
        assert_eq!(html.matches("<table>").count(), html.matches("</table>").count());
        assert_eq!(html.matches("<ul>").count(), html.matches("</ul>").count());
    }
}
