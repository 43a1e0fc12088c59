//! What both binaries share: exit codes and writing to stdout.

use std::process::ExitCode;

/// Exit code when `--fail-on-leak` is given and the verdict is "growing".
pub const EXIT_LEAK: u8 = 3;
/// Exit code for errors (bad input, unwritable output, ...). Usage errors exit with 2.
pub const EXIT_ERROR: u8 = 1;
/// Exit code of `watch` when the tree's memory passed `--max-memory`.
pub const EXIT_MAX_MEMORY: u8 = 4;

/// Print to stdout; a closed pipe (`diagnose report DIR | head`) ends the program quietly.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(EXIT_ERROR as i32);
    }
}

/// Seconds since the Unix epoch, for default folder names.
pub fn timestamp() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The exit code for an error.
pub fn error_exit(e: &anyhow::Error) -> ExitCode {
    // Library errors already carry their cause in their message.
    eprintln!("error: {e}");
    ExitCode::from(EXIT_ERROR)
}
