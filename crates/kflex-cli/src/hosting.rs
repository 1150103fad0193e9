//! Finding the hosting API: the current context when it serves ControlPlanes (checked
//! live, so a stale record never sends control planes to the wrong cluster), else the
//! context KubeFlex's kubeconfig extension records; and kube-rs clients for a context.

use crate::kubeconfig::Kubeconfig;
use anyhow::{bail, Context};
use kflex_controlplane::manager::api;

/// What to tell a user whose kubeconfig does not say which context is the hosting one.
const UNKNOWN_HOSTING: &str = "the hosting cluster context is not known: switch to it \
(`kubectl config use-context <context>`) and run `kflex ctx --set-current-for-hosting`, \
or start kflex with `kflex up`, which records it";

/// A kube-rs client for context `name` of `kubeconfig`.
pub async fn client(kubeconfig: &Kubeconfig, name: &str) -> anyhow::Result<kube::Client> {
    let merged: kube::config::Kubeconfig =
        serde_json::from_value(kubeconfig.merged()).context("reading the kubeconfig")?;
    let options = kube::config::KubeConfigOptions {
        context: Some(name.to_owned()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(merged, &options)
        .await
        .with_context(|| format!("using kubeconfig context {name}"))?;
    kube::Client::try_from(config).with_context(|| format!("a client for context {name}"))
}

/// Whether the API behind `client` serves ControlPlanes.
async fn serves_control_planes(client: &kube::Client) -> bool {
    client
        .list_api_group_resources(&format!("{}/{}", api::GROUP, api::VERSION))
        .await
        .is_ok_and(|list| list.resources.iter().any(|r| r.name == "controlplanes"))
}

/// The hosting context and a client for it. Records the current context as the hosting
/// one when it serves ControlPlanes and none is recorded (changing `kubeconfig` in
/// memory; the caller saves it).
pub async fn resolve(kubeconfig: &mut Kubeconfig) -> anyhow::Result<(String, kube::Client)> {
    if let Some(current) = kubeconfig.current_context() {
        if let Ok(client) = client(kubeconfig, &current).await {
            if serves_control_planes(&client).await {
                if kubeconfig.hosting_context().is_none() {
                    kubeconfig.set_hosting_context(&current);
                }
                return Ok((current, client));
            }
        }
    }
    let Some(hosting) = kubeconfig.hosting_context() else {
        bail!(UNKNOWN_HOSTING);
    };
    let client = client(kubeconfig, &hosting)
        .await
        .with_context(|| format!("the recorded hosting context {hosting} is not usable"))?;
    Ok((hosting, client))
}
