//! `kflex create`, `kflex delete` and `kflex list`: ControlPlanes on the hosting API, and
//! the user's kubeconfig kept in step (a context per control plane, KubeFlex's names).

use crate::hosting;
use crate::kubeconfig::{Kubeconfig, Section};
use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Secret;
use kflex_controlplane::manager::credentials::ContextNames;
use kflex_controlplane::manager::{api, api_message};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long `create` and `delete` wait.
const WAIT: Duration = Duration::from_secs(300);

/// Options of `kflex create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The control plane's name.
    name: String,
    /// Its type: k8s or host.
    #[arg(long, short = 't', default_value = "k8s")]
    r#type: String,
    /// Where a k8s control plane keeps its data: shared, dedicated or external.
    #[arg(
        long = "backend-type",
        short = 'b',
        alias = "backend",
        default_value = "shared"
    )]
    backend: String,
    /// A post-create hook to run (may be repeated).
    #[arg(long = "postcreate-hook", short = 'p')]
    hooks: Vec<String>,
    /// A hook variable, `name=value` (may be repeated).
    #[arg(long = "set", short = 'e', value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Return once submitted, without waiting for Ready or switching context.
    #[arg(long)]
    no_wait: bool,
    /// The kubeconfig to use and update [default: $KUBECONFIG or ~/.kube/config].
    #[arg(long, short = 'k')]
    kubeconfig: Option<PathBuf>,
}

/// `key=value`, split at the first `=`, both sides trimmed.
fn parse_var(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        format!("unexpected expression {text:?}: must be in the form 'key=value'")
    })?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("invalid key in expression {text:?}"));
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

fn control_planes(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &api::control_planes())
}

fn condition<'a>(cp: &'a DynamicObject, kind: &str) -> Option<&'a Value> {
    cp.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Shows `message` while `step` runs (with a spinner when stderr is a terminal), then
/// `✔` or `✘` once it ends.
async fn step<T>(
    message: &str,
    step: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let mut err = std::io::stderr();
    let spinner = err.is_terminal().then(|| {
        let spinner = indicatif::ProgressBar::new_spinner().with_message(format!("{message}..."));
        spinner.enable_steady_tick(Duration::from_millis(100));
        spinner
    });
    if spinner.is_none() {
        let _ = write!(err, "{message}... ");
        let _ = err.flush();
    }
    let result = step.await;
    let mark = if result.is_ok() { "✔" } else { "✘" };
    match spinner {
        Some(spinner) => spinner.finish_with_message(format!("{message}... {mark}")),
        None => {
            let _ = writeln!(err, "{mark}");
        }
    }
    result
}

pub async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let mut kubeconfig = Kubeconfig::load(args.kubeconfig.as_deref())?;
    let (hosting, client) = hosting::resolve(&mut kubeconfig).await?;
    let mut spec = json!({"type": args.r#type, "backend": args.backend});
    if !args.hooks.is_empty() {
        let vars: serde_json::Map<String, Value> = args
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        spec["postCreateHooks"] = args
            .hooks
            .iter()
            .map(|hook| json!({"hookName": hook, "vars": vars}))
            .collect();
    } else if !args.vars.is_empty() {
        spec["globalVars"] = args
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
    }
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{}/{}", api::GROUP, api::VERSION),
        "kind": "ControlPlane",
        "metadata": {"name": args.name},
        "spec": spec,
    }))?;
    let api = control_planes(&client);
    step(&format!("Creating control plane {}", args.name), async {
        api.create(&PostParams::default(), &object)
            .await
            .map_err(|e| anyhow::anyhow!(api_message(&e)))
    })
    .await?;
    kubeconfig.save()?;
    if args.no_wait {
        return Ok(());
    }
    let cp = step("Waiting for it to be ready", wait_ready(&api, &args.name)).await?;
    if cp.data["spec"]["type"] == "host" {
        kubeconfig.set_current_context(&hosting);
    } else {
        let loaded = load_context(&client, &mut kubeconfig, &args.name, &cp).await?;
        kubeconfig.set_current_context(&loaded);
    }
    kubeconfig.save()?;
    println!(
        "Control plane {} is ready; current context: {}",
        args.name,
        kubeconfig.current_context().unwrap_or_default()
    );
    Ok(())
}

/// Waits until control plane `name` is Ready; fails with its `Synced` message if it
/// reports an error for long.
async fn wait_ready(api: &Api<DynamicObject>, name: &str) -> anyhow::Result<DynamicObject> {
    let started = Instant::now();
    loop {
        let cp = api
            .get(name)
            .await
            .map_err(|e| anyhow::anyhow!(api_message(&e)))?;
        if condition(&cp, "Ready").is_some_and(|c| c["status"] == "True") {
            return Ok(cp);
        }
        let failing = condition(&cp, "Synced").filter(|c| c["status"] == "False");
        if let Some(synced) = failing {
            if started.elapsed() > Duration::from_secs(10) {
                bail!(
                    "control plane {name} is not synced: {}",
                    synced["message"].as_str().unwrap_or_default()
                );
            }
        }
        if started.elapsed() > WAIT {
            bail!(
                "control plane {name} was not ready within {} s",
                WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Merges control plane `name`'s kubeconfig (from its Secret on the hosting API) into the
/// user's, as context `<name>`; returns the context's name.
pub async fn load_context(
    client: &kube::Client,
    kubeconfig: &mut Kubeconfig,
    name: &str,
    cp: &DynamicObject,
) -> anyhow::Result<String> {
    let secret_ref = &cp.data["status"]["secretRef"];
    let namespace = secret_ref["namespace"].as_str().unwrap_or_default();
    let secret_name = secret_ref["name"].as_str().unwrap_or_default();
    let key = secret_ref["key"].as_str().unwrap_or(api::KUBECONFIG_KEY);
    if namespace.is_empty() || secret_name.is_empty() {
        bail!("control plane {name} does not name its kubeconfig Secret yet");
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get(secret_name)
        .await
        .map_err(|e| anyhow::anyhow!(api_message(&e)))?;
    let bytes = secret
        .data
        .and_then(|mut d| d.remove(key))
        .with_context(|| format!("Secret {namespace}/{secret_name} has no key {key}"))?;
    let text = String::from_utf8(bytes.0).context("the control plane's kubeconfig is not UTF-8")?;
    let other: Value =
        serde_norway::from_str(&text).context("reading the control plane's kubeconfig")?;
    let names = ContextNames::of_control_plane(name);
    kubeconfig.merge_control_plane(&other, name, &names)?;
    Ok(names.context)
}

/// Options of `kflex delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The control plane's name.
    name: String,
    /// The kubeconfig to use and update [default: $KUBECONFIG or ~/.kube/config].
    #[arg(long, short = 'k')]
    kubeconfig: Option<PathBuf>,
}

pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let mut kubeconfig = Kubeconfig::load(args.kubeconfig.as_deref())?;
    let (hosting, client) = hosting::resolve(&mut kubeconfig).await?;
    let api = control_planes(&client);
    let name = &args.name;
    step(&format!("Deleting control plane {name}"), async {
        api.delete(name, &DeleteParams::default())
            .await
            .map_err(|e| anyhow::anyhow!(api_message(&e)))?;
        let started = Instant::now();
        while api
            .get_opt(name)
            .await
            .map_err(|e| anyhow::anyhow!(api_message(&e)))?
            .is_some()
        {
            if started.elapsed() > WAIT {
                bail!(
                    "control plane {name} was not deleted within {} s",
                    WAIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    })
    .await?;
    // Every context kflex made for this control plane (also renamed ones), with its
    // cluster and user.
    let current = kubeconfig.current_context();
    let mut was_current = false;
    for context in kubeconfig.names(Section::Contexts) {
        if kubeconfig.control_plane_of(&context).as_deref() != Some(name.as_str()) {
            continue;
        }
        if let Some(entry) = kubeconfig.entry(Section::Contexts, &context).cloned() {
            for (section, field) in [(Section::Clusters, "cluster"), (Section::Users, "user")] {
                if let Some(referenced) = entry["context"][field].as_str() {
                    kubeconfig.remove(section, referenced);
                }
            }
        }
        kubeconfig.remove(Section::Contexts, &context);
        was_current |= current.as_deref() == Some(context.as_str());
    }
    if was_current {
        kubeconfig.set_current_context(&hosting);
    }
    kubeconfig.save()
}

/// Options of `kflex list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The kubeconfig to use [default: $KUBECONFIG or ~/.kube/config].
    #[arg(long, short = 'k')]
    kubeconfig: Option<PathBuf>,
}

pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let mut kubeconfig = Kubeconfig::load(args.kubeconfig.as_deref())?;
    let (_, client) = hosting::resolve(&mut kubeconfig).await?;
    let items = control_planes(&client)
        .list(&Default::default())
        .await
        .map_err(|e| anyhow::anyhow!(api_message(&e)))?
        .items;
    if items.is_empty() {
        println!("No control planes found.");
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<10} {:<10} AGE",
        "NAME", "SYNCED", "READY", "TYPE"
    );
    let now = jiff::Timestamp::now();
    for cp in &items {
        let status = |kind| {
            condition(cp, kind)
                .and_then(|c| c["status"].as_str())
                .unwrap_or("Unknown")
                .to_owned()
        };
        let age = cp
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| kflex_controlplane::table::human_duration(now.as_second() - t.0.as_second()))
            .unwrap_or_default();
        println!(
            "{:<20} {:<10} {:<10} {:<10} {age}",
            cp.metadata.name.as_deref().unwrap_or_default(),
            status("Synced"),
            status("Ready"),
            cp.data["spec"]["type"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}

/// Options of `kflex adopt`.
#[derive(Debug, clap::Args)]
pub struct AdoptArgs {
    /// The control plane's name.
    name: String,
    /// The context of the cluster to adopt.
    #[arg(long = "adopted-context", short = 'c')]
    context: String,
    /// The kubeconfig holding that context [default: the one kflex uses].
    #[arg(long = "adopted-kubeconfig", short = 'a')]
    adopted_kubeconfig: Option<PathBuf>,
    /// The adopted cluster's API URL as kflex reaches it, when the context's differs.
    #[arg(long = "url-override", short = 'u')]
    url: Option<String>,
    /// Lifetime of the token kflex mints there (renewed before it ends).
    #[arg(long = "expiration-seconds", short = 'x', default_value_t = 31_536_000)]
    expiration: i64,
    /// The kubeconfig to use and update [default: $KUBECONFIG or ~/.kube/config].
    #[arg(long, short = 'k')]
    kubeconfig: Option<PathBuf>,
}

/// The namespace on the hosting API holding adoption bootstrap Secrets (KubeFlex's).
const BOOTSTRAP_NAMESPACE: &str = "kubeflex-system";

pub async fn adopt(args: AdoptArgs) -> anyhow::Result<()> {
    let mut kubeconfig = Kubeconfig::load(args.kubeconfig.as_deref())?;
    let adopted = match &args.adopted_kubeconfig {
        Some(path) => Kubeconfig::load(Some(path))?,
        None => Kubeconfig::load(args.kubeconfig.as_deref())?,
    };
    let context = adopted
        .entry(Section::Contexts, &args.context)
        .cloned()
        .with_context(|| format!("context {} not found in the kubeconfig", args.context))?;
    let cluster_name = context["context"]["cluster"].as_str().unwrap_or_default();
    let user_name = context["context"]["user"].as_str().unwrap_or_default();
    let mut cluster = adopted
        .entry(Section::Clusters, cluster_name)
        .cloned()
        .with_context(|| {
            format!(
                "cluster {cluster_name} not found for context {}",
                args.context
            )
        })?;
    let user = adopted
        .entry(Section::Users, user_name)
        .cloned()
        .with_context(|| format!("user {user_name} not found for context {}", args.context))?;
    if let Some(url) = &args.url {
        let valid = (url.starts_with("https://") || url.starts_with("http://"))
            && url.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
        if !valid {
            bail!(
                "invalid server endpoint {url}: give an http(s) URL with a host in --url-override"
            );
        }
        cluster["cluster"]["server"] = json!(url);
    }
    let bootstrap = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster], "users": [user],
        "contexts": [{"name": args.context, "context": {"cluster": cluster_name, "user": user_name}}],
        "current-context": args.context,
    });
    let (hosting, client) = hosting::resolve(&mut kubeconfig).await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": BOOTSTRAP_NAMESPACE}}))?;
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => bail!(api_message(&error)),
    }
    let secret_name = format!("{}-bootstrap", args.name);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": secret_name, "namespace": BOOTSTRAP_NAMESPACE},
        "stringData": {api::KUBECONFIG_INCLUSTER_KEY: bootstrap.to_string()},
    }))?;
    Api::<Secret>::namespaced(client.clone(), BOOTSTRAP_NAMESPACE)
        .patch(
            &secret_name,
            &kube::api::PatchParams::apply("kflex").force(),
            &kube::api::Patch::Apply(&secret),
        )
        .await
        .map_err(|e| anyhow::anyhow!(api_message(&e)))?;
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{}/{}", api::GROUP, api::VERSION),
        "kind": "ControlPlane",
        "metadata": {"name": args.name},
        "spec": {"type": "external", "tokenExpirationSeconds": args.expiration,
                 "bootstrapSecretRef": {"namespace": BOOTSTRAP_NAMESPACE, "name": secret_name,
                                        "inClusterKey": api::KUBECONFIG_INCLUSTER_KEY}},
    }))?;
    let control_planes = control_planes(&client);
    step(
        &format!("Adopting {} as control plane {}", args.context, args.name),
        async {
            control_planes
                .create(&PostParams::default(), &object)
                .await
                .map_err(|e| anyhow::anyhow!(api_message(&e)))
        },
    )
    .await?;
    let cp = step(
        "Waiting for it to be ready",
        wait_ready(&control_planes, &args.name),
    )
    .await?;
    let loaded = load_context(&client, &mut kubeconfig, &args.name, &cp).await?;
    kubeconfig.save()?;
    println!(
        "Control plane {} is ready: context {loaded} (hosting context: {hosting})",
        args.name
    );
    Ok(())
}
