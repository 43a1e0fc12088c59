//! What both binaries (`diagnose`, `diagnose-run`) share: exit codes and writing to stdout.

use std::process::ExitCode;

/// Exit code when `--fail-on-leak` is given and the verdict is "growing", or when
/// `--stop-on-leak` stopped the run.
pub const EXIT_LEAK: u8 = 3;
/// Exit code for errors (bad input, unwritable output, ...). Usage errors exit with 2.
pub const EXIT_ERROR: u8 = 1;
/// Exit code for usage errors: unknown flag, bad flag value (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `watch` when the tree's memory passed `--max-memory`.
pub const EXIT_MAX_MEMORY: u8 = 4;

/// The one source of every subcommand's exit codes: (code, which subcommands return it,
/// what it means there). The help texts are built from it ([`exit_help`]), and
/// tests/exit_codes.rs makes each subcommand return each code listed for it.
pub const EXIT_CODES: &[(u8, &[&str], &str)] = &[
    (0, &["run", "report"], "success (and, with --fail-on-leak, memory is not growing)"),
    (0, &["compare"], "success"),
    (0, &["watch"], "the command exited 0 and no gate failed"),
    (EXIT_ERROR, &["run"], "error: unwritable or non-empty output folder, a failed run"),
    (EXIT_ERROR, &["report", "compare"], "error: a missing, unreadable or garbled run folder, unwritable output"),
    (EXIT_ERROR, &["watch"], "error: no such command or pid, unwritable or non-empty output folder"),
    (EXIT_USAGE, &["run", "report"], "usage error: unknown flag, bad flag value"),
    (EXIT_USAGE, &["watch"], "usage error: unknown flag, bad flag value (a bad --epoch-pattern or --phase regex too), no command"),
    (EXIT_USAGE, &["compare"], "usage error: unknown flag, unknown --series (the message lists the valid ones)"),
    (EXIT_LEAK, &["run", "watch"], "memory grows: --fail-on-leak and the verdict is \"growing\", or --stop-on-leak stopped it"),
    (EXIT_LEAK, &["report"], "--fail-on-leak and the verdict is \"growing\""),
    (EXIT_MAX_MEMORY, &["watch"], "the tree's memory (PSS) passed --max-memory"),
];

/// The exit-code section of a subcommand's help, from [`EXIT_CODES`].
pub fn exit_help(command: &str) -> String {
    let mut s = String::from("Exit codes:\n");
    if command == "watch" {
        s.push_str("  the command's own exit code (128+N when killed by signal N), unless diagnose fails\n  or a gate below fails; a gate's code wins over the command's. The last line on\n  stderr says which it is (\"diagnose: exit 3: ...\").\n");
    }
    for (code, _, meaning) in EXIT_CODES.iter().filter(|(_, c, _)| c.contains(&command)) {
        s.push_str(&format!("  {code}  {meaning}\n"));
    }
    s.trim_end().to_string()
}

/// Say on stderr why diagnose exits with `code` (so a gate's 3 is not taken for the
/// command's own 3), and return it.
pub fn exit_because(code: u8, why: &str) -> ExitCode {
    eprintln!("diagnose: exit {code}: {why}");
    ExitCode::from(code)
}

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

/// Exit 3 (with the reason on stderr) when `--fail-on-leak` is given and the verdict is
/// growing; success otherwise.
pub fn verdict_exit(analysis: &profiler::Analysis, fail_on_leak: bool) -> ExitCode {
    if fail_on_leak && analysis.verdict == "growing" {
        exit_because(EXIT_LEAK, "--fail-on-leak and the verdict is growing")
    } else {
        ExitCode::SUCCESS
    }
}

/// The exit code for an error.
pub fn error_exit(e: &anyhow::Error) -> ExitCode {
    // Library errors already carry their cause in their message.
    eprintln!("error: {e}");
    ExitCode::from(EXIT_ERROR)
}
