//! The `kflex` command line: the edge where kflex meets its users.

mod controlplanes;
mod ctx;
mod hosting;
mod kubeconfig;
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
    /// Run kflex in the foreground and make its hosting API the current kubeconfig context
    /// (`kflex`), so `kubectl get controlplanes` works at once.
    Up(serve::ServeArgs),
    /// Run the kflex server in the foreground, leaving the user's kubeconfig alone.
    Serve(serve::ServeArgs),
    /// Create a control plane, wait until it is ready and switch to its context.
    Create(controlplanes::CreateArgs),
    /// Delete a control plane and its kubeconfig context.
    Delete(controlplanes::DeleteArgs),
    /// List the control planes.
    List(controlplanes::ListArgs),
    /// Adopt an existing cluster (a kubeconfig context) as an `external` control plane.
    Adopt(controlplanes::AdoptArgs),
    /// Switch the kubeconfig context: to a control plane, or (no name) the hosting API.
    Ctx(ctx::CtxArgs),
    /// Print kflex's version, and the current context's server version.
    Version,
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
        Command::Up(args) => runtime.block_on(serve::run(args, true)),
        Command::Serve(args) => runtime.block_on(serve::run(args, false)),
        Command::Create(args) => runtime.block_on(controlplanes::create(args)),
        Command::Delete(args) => runtime.block_on(controlplanes::delete(args)),
        Command::List(args) => runtime.block_on(controlplanes::list(args)),
        Command::Adopt(args) => runtime.block_on(controlplanes::adopt(args)),
        Command::Ctx(args) => runtime.block_on(ctx::run(args)),
        Command::Version => runtime.block_on(version()),
    }
}

async fn version() -> anyhow::Result<()> {
    println!("kflex version: {}", env!("CARGO_PKG_VERSION"));
    let kubeconfig = kubeconfig::Kubeconfig::load(None)?;
    let Some(current) = kubeconfig.current_context() else {
        return Ok(());
    };
    match hosting::client(&kubeconfig, &current).await {
        Ok(client) => match client.apiserver_version().await {
            Ok(info) => println!(
                "Kubernetes version: {} (context {current})",
                info.git_version
            ),
            Err(error) => println!("Could not reach context {current}: {error}"),
        },
        Err(error) => println!("Could not use context {current}: {error:#}"),
    }
    Ok(())
}
