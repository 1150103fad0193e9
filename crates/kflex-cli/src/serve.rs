//! `kflex serve`: the server in the foreground, with the hosting API on embedded SQLite,
//! its certificates under the data directory, and an admin kubeconfig for it.

use anyhow::Context;
use kflex_controlplane::authn::Authenticator;
use kflex_controlplane::controllers::Settings;
use kflex_controlplane::manager::credentials::{self, ContextNames};
use kflex_controlplane::manager::storage::StorageConfig;
use kflex_controlplane::manager::{self, ManagerConfig};
use kflex_controlplane::pki::{CertificateAuthority, CertifiedKey};
use kflex_controlplane::{server, ControlPlane, Router};
use kflex_storage_backends::postgres::{PostgresOptions, PostgresServer};
use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options of `kflex serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "KFLEX_LISTEN", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Directory for kflex's data: stores, certificates, kubeconfigs. Created if missing.
    #[arg(long, env = "KFLEX_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// Where to write the hosting API's admin kubeconfig [default: <data-dir>/admin.kubeconfig].
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// The shared PostgreSQL server for backend `shared` (postgres://user:pass@host/db);
    /// without it, `shared` control planes get embedded SQLite files.
    #[arg(long, env = "KFLEX_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Empty stores kept ready on the shared PostgreSQL, so creating a control plane skips
    /// the schema DDL.
    #[arg(long, env = "KFLEX_SPARE_STORES", default_value_t = 8)]
    spare_stores: usize,
    /// The etcd binary for backend `dedicated`.
    #[arg(long, env = "KFLEX_ETCD_BIN", default_value = "etcd")]
    etcd_bin: PathBuf,
    /// The URL users reach this server at, for the control planes' kubeconfigs
    /// [default: https://<listen address>].
    #[arg(long, env = "KFLEX_EXTERNAL_URL")]
    external_url: Option<String>,
    /// The URL clients inside the hosting cluster reach this server at, for the
    /// `kubeconfig-incluster` keys [default: the external URL].
    #[arg(long, env = "KFLEX_IN_CLUSTER_URL")]
    in_cluster_url: Option<String>,
    /// Let PostCreateHooks run local programs (`exec` actions) as the server's user, with
    /// the control plane's kubeconfig: only for hooks you trust.
    #[arg(long, env = "KFLEX_ALLOW_EXEC_HOOKS")]
    allow_exec_hooks: bool,
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".kflex"),
        |home| PathBuf::from(home).join(".kflex"),
    )
}

/// The user of the admin kubeconfig: in `system:masters`, as cluster admins conventionally are.
const ADMIN_USER: &str = "kflex-admin";
const ADMIN_GROUP: &str = "system:masters";

/// Runs the server; with `user_kubeconfig`, also records its hosting context (`kflex`,
/// made current) in the user's kubeconfig.
pub async fn run(args: ServeArgs, user_kubeconfig: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let ca = load_or_create_ca(&args.data_dir.join("pki"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;

    let mut ips: Vec<IpAddr> = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if !address.ip().is_unspecified() && !ips.contains(&address.ip()) {
        ips.push(address.ip());
    }
    let server_cert = ca.server_certificate(&["localhost", "kflex"], &ips)?;
    let admin = ca.client_certificate(ADMIN_USER, &[ADMIN_GROUP])?;

    let mut authenticator = Authenticator::default();
    authenticator.add_client_ca(&ca.certificate.cert_der)?;
    let (manager_token, manager_user) = manager::manager_identity();
    authenticator.add_token(manager_token.clone(), manager_user);
    let store = SqliteStore::open(args.data_dir.join("host.db"), SqliteOptions::default())
        .await
        .context("opening the hosting API's store")?;
    let connect_ip = if address.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        address.ip()
    };
    let url = format!("https://{}", SocketAddr::new(connect_ip, address.port()));
    let settings = Settings::served_at(&url, &ca.certificate.cert_pem);
    let host = ControlPlane::start_with("host", Arc::new(store), authenticator, settings)
        .await
        .context("starting the hosting API")?;
    let router = Arc::new(Router::new(host));
    let kubeconfig = args
        .kubeconfig_out
        .clone()
        .unwrap_or_else(|| args.data_dir.join("admin.kubeconfig"));
    write_kubeconfig(&kubeconfig, &url, &ca.certificate, &admin)?;
    if user_kubeconfig {
        record_hosting_context(&kubeconfig)?;
    }

    let external_url = args.external_url.clone().unwrap_or_else(|| url.clone());
    let in_cluster_url = args
        .in_cluster_url
        .clone()
        .unwrap_or_else(|| external_url.clone());
    let postgres = match &args.postgres_url {
        Some(dsn) => Some(
            PostgresServer::connect(
                dsn,
                PostgresOptions {
                    spare_stores: args.spare_stores,
                    prepare_spare: Some(ControlPlane::spare_preparer(Settings::served_at(
                        &in_cluster_url,
                        &ca.certificate.cert_pem,
                    ))),
                    ..PostgresOptions::default()
                },
            )
            .await
            .context("connecting to the shared PostgreSQL server")?,
        ),
        None => None,
    };
    let config = ManagerConfig {
        storage: StorageConfig {
            data_dir: args.data_dir.clone(),
            postgres,
            etcd_bin: args.etcd_bin.clone(),
        },
        in_cluster_url,
        external_url,
        server_ca: Arc::new(ca),
        token: manager_token,
        allow_exec_hooks: args.allow_exec_hooks,
    };

    let manager = manager::Manager::install(router.clone(), config)
        .await
        .context("installing the hosting API's kinds")?;
    let tls = server::tls_config(&server_cert)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut serving = tokio::spawn(server::serve(listener, tls, router.clone(), async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    tracing::info!(%url, kubeconfig = %kubeconfig.display(), "kflex serving");
    println!(
        "kflex serving on {url} (kubeconfig: {})",
        kubeconfig.display()
    );
    tokio::select! {
        () = manager.run(shutdown_signal()) => {}
        _ = &mut serving => anyhow::bail!("the server stopped"),
    }
    let _ = stop.send(true);
    let _ = serving.await;
    tracing::info!("kflex stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stop kflex with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// The CA in `dir` (`ca.crt`, `ca.key`), made on first start.
fn load_or_create_ca(dir: &Path) -> anyhow::Result<CertificateAuthority> {
    let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    if cert_path.exists() && key_path.exists() {
        let cert = std::fs::read_to_string(&cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?;
        let key = std::fs::read_to_string(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        return CertificateAuthority::from_pem(&cert, &key)
            .with_context(|| format!("loading the CA in {}", dir.display()));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca = CertificateAuthority::generate("kflex-ca")?;
    std::fs::write(&cert_path, &ca.certificate.cert_pem)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    write_private(&key_path, ca.certificate.key_pem.as_bytes())?;
    Ok(ca)
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Merges the admin kubeconfig at `admin` into the user's as context `kflex`, made
/// current and recorded as the hosting API's.
fn record_hosting_context(admin: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(admin).with_context(|| format!("reading {}", admin.display()))?;
    let admin: serde_json::Value = serde_json::from_str(&text)?;
    let mut user = crate::kubeconfig::Kubeconfig::load(None)?;
    for (section, key) in [
        (crate::kubeconfig::Section::Clusters, "clusters"),
        (crate::kubeconfig::Section::Users, "users"),
        (crate::kubeconfig::Section::Contexts, "contexts"),
    ] {
        for entry in admin[key].as_array().into_iter().flatten() {
            user.upsert(section, entry.clone());
        }
    }
    user.set_current_context(HOSTING_CONTEXT);
    user.set_hosting_context(HOSTING_CONTEXT);
    user.save()?;
    println!("kubeconfig context {HOSTING_CONTEXT} is current");
    Ok(())
}

/// The name of the hosting API's context, cluster and user in kubeconfigs kflex writes.
const HOSTING_CONTEXT: &str = "kflex";

/// An admin kubeconfig for the hosting API: context and cluster `kflex`.
fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &CertifiedKey,
    admin: &CertifiedKey,
) -> anyhow::Result<()> {
    let names = ContextNames {
        context: HOSTING_CONTEXT.into(),
        cluster: HOSTING_CONTEXT.into(),
        user: ADMIN_USER.into(),
    };
    let config = credentials::kubeconfig(&names, server, &ca.cert_pem, admin);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    write_private(path, serde_json::to_string_pretty(&config)?.as_bytes())
}
