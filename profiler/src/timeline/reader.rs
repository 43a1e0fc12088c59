//! Reads a timeline back. A run killed mid-write ends in a partial line: that is end of
//! data, not an error. Anything else malformed is an error naming the file and line.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Row, RunFacts, TimelineMeta, FORMAT_VERSION, RUN_FILE};

/// Why a timeline could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not what the format expects.
    #[error("{}:{line}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The file holds no complete row.
    #[error("{}: no complete row (the run recorded nothing)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// A timeline read from disk.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Facts from `run.json` (formats 1 and 2: from the first line).
    pub meta: TimelineMeta,
    /// Every complete row, in order.
    pub rows: Vec<Row>,
    /// True if the file ended in a partial row (the run was killed mid-write).
    pub truncated: bool,
}

/// Read and validate `path`, with the run's facts from `run.json` beside it (a timeline
/// without one loads with the facts unknown).
pub fn read_timeline(path: &Path) -> Result<Timeline, TimelineError> {
    let text = fs::read_to_string(path)
        .map_err(|source| TimelineError::Io { path: path.to_path_buf(), source })?;
    let facts_path = path.with_file_name(RUN_FILE);
    let facts = match fs::read(&facts_path) {
        Ok(bytes) => Some(parse_facts(&facts_path, &bytes)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(TimelineError::Io { path: facts_path, source }),
    };
    parse_timeline(path, &text, facts)
}

fn parse_facts(path: &Path, bytes: &[u8]) -> Result<TimelineMeta, TimelineError> {
    let facts: RunFacts = serde_json::from_slice(bytes).map_err(|e| malformed(path, e.line() as u64, e.to_string()))?;
    if facts.format != FORMAT_VERSION {
        return Err(malformed(path, 1, format!("format {} is not supported (this build reads 1 to {FORMAT_VERSION})", facts.format)));
    }
    Ok(facts.meta)
}

/// The text up to its last newline: a file not ending in one was cut mid-row by a killed
/// writer, and that partial row is dropped.
pub(crate) fn complete_lines(text: &str) -> &str {
    &text[..text.rfind('\n').map_or(0, |i| i + 1)]
}

fn malformed(path: &Path, line: u64, message: impl Into<String>) -> TimelineError {
    TimelineError::Malformed { path: path.to_path_buf(), line, message: message.into() }
}

/// Parse a timeline's text; `path` is only used in messages. `facts` are `run.json`'s;
/// a format 1 or 2 file carries its own in its first line.
pub(crate) fn parse_timeline(path: &Path, text: &str, facts: Option<TimelineMeta>) -> Result<Timeline, TimelineError> {
    let first = text.lines().next().unwrap_or("");
    let legacy = first.starts_with("# ");
    let meta = if legacy { parse_meta(first).map_err(|m| malformed(path, 1, m))? } else { facts.unwrap_or_default() };
    let truncated = !text.ends_with('\n');
    let body = complete_lines(text);
    let body = if legacy { &body[body.find('\n').map_or(body.len(), |i| i + 1)..] } else { body };
    let mut rows = Vec::new();
    parse_rows(path, first, body.as_bytes(), &mut |row| rows.push(row))?;
    if rows.is_empty() {
        return Err(TimelineError::Empty { path: path.to_path_buf() });
    }
    Ok(Timeline { meta, rows, truncated })
}

/// Read `path` row by row into `each`, never holding more than one: a week of rows at
/// 1 Hz is hundreds of MB as rows, a few hundred bytes at a time here. Returns the run's
/// facts, whether the file ended mid-row, and how many rows were read.
pub fn stream_timeline(path: &Path, mut each: impl FnMut(Row)) -> Result<(TimelineMeta, bool, u64), TimelineError> {
    use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
    let io = |source| TimelineError::Io { path: path.to_path_buf(), source };
    let facts_path = path.with_file_name(RUN_FILE);
    let facts = match fs::read(&facts_path) {
        Ok(bytes) => Some(parse_facts(&facts_path, &bytes)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(TimelineError::Io { path: facts_path, source }),
    };
    let mut file = fs::File::open(path).map_err(io)?;
    // The complete rows end at the last newline: find it from the end.
    let len = file.metadata().map_err(io)?.len();
    let mut end = len;
    let mut complete = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        file.read_exact(&mut chunk[..n]).map_err(io)?;
        if let Some(i) = chunk[..n].iter().rposition(|b| *b == b'\n') {
            complete = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    let truncated = complete < len;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut reader = BufReader::with_capacity(1 << 20, file.take(complete));
    let mut first = String::new();
    reader.read_line(&mut first).map_err(io)?;
    let legacy = first.starts_with("# ");
    let meta = if legacy { parse_meta(first.trim_end()).map_err(|m| malformed(path, 1, m))? } else { facts.unwrap_or_default() };
    let head = if legacy { String::new() } else { first.clone() };
    let rows = parse_rows(path, first.trim_end(), std::io::Cursor::new(head).chain(reader), &mut each)?;
    if rows == 0 {
        return Err(TimelineError::Empty { path: path.to_path_buf() });
    }
    Ok((meta, truncated, rows))
}

/// Parse the CSV `body` (header first; `first` is the file's first line, for its format),
/// giving each row to `each`; returns how many.
fn parse_rows(path: &Path, first: &str, body: impl std::io::Read, each: &mut dyn FnMut(Row)) -> Result<u64, TimelineError> {
    let legacy = first.starts_with("# ");
    let header_line = if legacy { 2 } else { 1 };
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(body);
    let header = reader
        .headers()
        .map_err(|e| malformed(path, header_line, format!("bad header: {e}")))?
        .clone();
    let expected: Vec<&str> = super::COLUMNS.iter().map(|(n, _)| *n).collect();
    let expected = match meta_version(first) {
        Some(1) => &expected[..super::FORMAT_1_COLUMNS],
        Some(2) => &expected[..super::FORMAT_2_COLUMNS],
        _ => &expected[..],
    };
    if header.iter().collect::<Vec<_>>() != expected {
        let what = if legacy || header.get(0) == Some("t_s") { "header does not list the timeline columns" } else { "not a profiler timeline (its header must list the timeline columns, t_s first)" };
        return Err(malformed(path, header_line, what));
    }
    let mut record = csv::StringRecord::new();
    let mut n = 0u64;
    loop {
        let line = n + header_line + 1;
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(malformed(path, line, e.to_string())),
        }
        let row: Row = record.deserialize(Some(&header)).map_err(|e| malformed(path, line, e.to_string()))?;
        if !row.t_s.is_finite() || row.t_s < 0.0 {
            return Err(malformed(path, line, format!("t_s is {}", row.t_s)));
        }
        each(row);
        n += 1;
    }
    Ok(n)
}

fn meta_version(line: &str) -> Option<u32> {
    line.split_whitespace().find_map(|f| f.strip_prefix("format=")).and_then(|v| v.parse().ok())
}

fn parse_meta(line: &str) -> Result<TimelineMeta, String> {
    let rest = line
        .strip_prefix("# profiler-timeline ")
        .ok_or("not a profiler timeline (first line must start with '# profiler-timeline')")?;
    let mut meta = TimelineMeta::default();
    let mut version = None;
    for pair in rest.split_whitespace() {
        let (key, value) = pair.split_once('=').ok_or(format!("bad field '{pair}'"))?;
        match key {
            "format" => version = value.parse::<u32>().ok(),
            "mem_limit_bytes" => {
                meta.mem_limit_bytes =
                    Some(value.parse().map_err(|_| format!("bad mem_limit_bytes '{value}'"))?)
            }
            "mem_limit_source" => meta.mem_limit_source = Some(value.to_string()),
            "gpu" => meta.gpu = Some(value.to_string()),
            "recorder" => meta.recorder = Some(value.to_string()),
            "window_s" => meta.window_s = value.parse().ok(),
            _ => {} // unknown facts from a newer writer are ignored
        }
    }
    match version {
        Some(1) | Some(2) => Ok(meta),
        Some(v) => Err(format!("format {v} is not supported in a first line (this build reads formats 1 and 2 there, format {FORMAT_VERSION} with run.json)")),
        None => Err("missing format version".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{TimelineWriter, COLUMNS};

    fn sample_text() -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let meta = TimelineMeta { mem_limit_bytes: Some(1 << 30), mem_limit_source: Some("meminfo".into()), ..TimelineMeta::default() };
        let mut w = TimelineWriter::create(&path, &meta).unwrap();
        for i in 0..3 {
            let row = Row { t_s: i as f64, phase: "epoch_end".into(), epoch: Some(i), rss_bytes: Some(100 + i as u64), ..Row::default() };
            w.append(&row).unwrap();
        }
        fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn round_trip_with_run_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.csv");
        let meta = TimelineMeta { mem_limit_bytes: Some(1 << 30), mem_limit_source: Some("meminfo".into()), recorder: Some("watch".into()), ..TimelineMeta::default() };
        let mut w = TimelineWriter::create(&path, &meta).unwrap();
        w.append(&Row { t_s: 0.5, phase: "epoch_end".into(), epoch: Some(0), rss_bytes: Some(100), ..Row::default() }).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("t_s,phase,epoch,"), "the header comes first: {text}");
        let t = read_timeline(&path).unwrap();
        assert_eq!((t.rows.len(), t.rows[0].rss_bytes), (1, Some(100)));
        assert_eq!(t.meta, meta);
        // Without run.json the rows still load, the facts unknown.
        fs::remove_file(dir.path().join(RUN_FILE)).unwrap();
        assert_eq!(read_timeline(&path).unwrap().meta, TimelineMeta::default());
        fs::write(dir.path().join(RUN_FILE), r#"{"format":9}"#).unwrap();
        assert!(read_timeline(&path).unwrap_err().to_string().contains("format 9"));
    }

    #[test]
    fn format_2_files_still_load() {
        let header: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
        let header = &header[..crate::timeline::FORMAT_2_COLUMNS];
        let text = format!("# profiler-timeline format=2 mem_limit_bytes=1073741824 mem_limit_source=meminfo recorder=run\n{}\n0.5,epoch_end,0{}\n", header.join(","), ",".repeat(header.len() - 3));
        let t = parse_timeline(Path::new("t.csv"), &text, None).unwrap();
        assert_eq!((t.rows.len(), t.meta.mem_limit_bytes, t.meta.recorder.as_deref()), (1, Some(1 << 30), Some("run")));
    }

    #[test]
    fn round_trip() {
        let t = parse_timeline(Path::new("t.csv"), &sample_text(), None).unwrap();
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[2].rss_bytes, Some(102));
        assert!(!t.truncated);
    }

    #[test]
    fn streaming_reads_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.csv");
        let text = sample_text();
        fs::write(&path, &text[..text.len() - 5]).unwrap();
        let mut rows = Vec::new();
        let (_, truncated, n) = stream_timeline(&path, |r| rows.push(r)).unwrap();
        assert_eq!((n, truncated), (2, true));
        assert_eq!(rows, read_timeline(&path).unwrap().rows);
        fs::write(&path, &text).unwrap();
        let (_, truncated, n) = stream_timeline(&path, |_| {}).unwrap();
        assert_eq!((n, truncated), (3, false));
    }

    #[test]
    fn truncated_tail_is_end_of_data() {
        let text = sample_text();
        let cut = &text[..text.len() - 5];
        let t = parse_timeline(Path::new("t.csv"), cut, None).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert!(t.truncated);
    }

    #[test]
    fn garbled_row_names_file_and_line() {
        let mut text = sample_text();
        text = text.replacen(",101,", ",lots,", 1);
        let err = parse_timeline(Path::new("run/timeline.csv"), &text, None).unwrap_err().to_string();
        assert!(err.starts_with("run/timeline.csv:3:"), "{err}");
    }

    #[test]
    fn foreign_file_is_rejected() {
        let err = parse_timeline(Path::new("x.csv"), "a,b\n1,2\n", None).unwrap_err().to_string();
        assert!(err.contains("x.csv:1:") && err.contains("not a profiler timeline"), "{err}");
        let header_only = format!("{}\n", COLUMNS.iter().map(|c| c.0).collect::<Vec<_>>().join(","));
        let err = parse_timeline(Path::new("x.csv"), &header_only, None).unwrap_err().to_string();
        assert!(err.contains("no complete row"), "{err}");
        let err = parse_timeline(Path::new("x.csv"), "# profiler-timeline format=9\n", None).unwrap_err().to_string();
        assert!(err.contains("format 9"), "{err}");
    }
}
