//! The `kflex` command line: the edge where kflex meets its users.

mod serve;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: with many threads allocating per request, glibc's
/// arenas cost half of the API server's throughput (measured with `scripts/bench api`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command line: `kflex --help` lists what it can do.
#[derive(Debug, Parser)]
#[command(name = "kflex", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the kflex server in the foreground: the hosting API on embedded SQLite.
    Serve(serve::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
    }
}
