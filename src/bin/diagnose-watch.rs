//! `diagnose-watch`: what `diagnose watch` runs. A binary of its own so that the
//! watcher does not load libtorch (see `watch_cli`); `diagnose watch ...` execs it with
//! the same arguments.

#[path = "../shared.rs"]
mod shared;
#[path = "../watch_cli.rs"]
mod watch_cli;

use std::process::ExitCode;

use clap::Parser;

/// Watch any command (or a running process) and its whole process tree from outside.
#[derive(Parser, Debug)]
#[command(name = "diagnose watch", version, after_help = watch_cli::watch_help())]
struct Cli {
    #[command(flatten)]
    args: watch_cli::WatchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    watch_cli::watch_cmd(cli.args).unwrap_or_else(|e| shared::error_exit(&e))
}
