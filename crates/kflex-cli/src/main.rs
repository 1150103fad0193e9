//! The `kflex` command line: the edge where kflex meets its users.

use clap::Parser;

/// The command line: `kflex --help` lists what it can do.
#[derive(Debug, Parser)]
#[command(name = "kflex", version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
