//! The terminal is shared: the command's output, passed on as it arrives, and our status
//! lines. A progress bar redrawn in place (tqdm's `\r`) leaves the cursor mid-line, so a
//! status line written then would be glued to the bar's end; it starts a line of its own.

use std::io::Write;
use std::sync::Mutex;

/// Whether the last bytes passed on from the command did not end a line.
static MID_LINE: Mutex<bool> = Mutex::new(false);

/// Passes the command's output on to `to`, remembering whether it ended mid-line.
pub struct PassOn<W>(pub W);

impl<W: Write> PassOn<W> {
    /// Write one chunk of the command's output and flush it.
    pub fn pass(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        let mut mid_line = MID_LINE.lock().unwrap_or_else(|e| e.into_inner());
        self.0.write_all(chunk)?;
        self.0.flush()?;
        if let Some(&last) = chunk.last() {
            *mid_line = last != b'\n';
        }
        Ok(())
    }
}

/// Write `line` as a line of its own on stderr, after the command's output.
pub fn status_line(line: &str) {
    let mut mid_line = MID_LINE.lock().unwrap_or_else(|e| e.into_inner());
    let _ = write_line(&mut std::io::stderr().lock(), *mid_line, line);
    *mid_line = false;
}

fn write_line(to: &mut impl Write, mid_line: bool, line: &str) -> std::io::Result<()> {
    let start = if mid_line { "\n" } else { "" };
    writeln!(to, "{start}{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_after_a_bar_starts_a_line_of_its_own() {
        let mut out = Vec::new();
        write_line(&mut out, true, "diagnose: epoch 1").unwrap();
        write_line(&mut out, false, "diagnose: epoch 2").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\ndiagnose: epoch 1\ndiagnose: epoch 2\n");
    }

    #[test]
    fn passing_on_remembers_an_unfinished_line() {
        let mut p = PassOn(Vec::new());
        p.pass(b"Epoch 1:  40%|####  | 4/10\r").unwrap();
        assert!(*MID_LINE.lock().unwrap());
        p.pass(b"done\n").unwrap();
        assert!(!*MID_LINE.lock().unwrap());
        assert_eq!(p.0, b"Epoch 1:  40%|####  | 4/10\rdone\n");
    }
}
