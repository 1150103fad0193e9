//! The PostCreateHook engine: provisions a control plane once it is ready, as KubeFlex does.
//!
//! Start with [`run`]: given a ControlPlane's spec, it finds the hooks it uses ([`uses`],
//! in KubeFlex's order), renders each hook's templates with its variables ([`template`],
//! [`variables`]) and applies them with server-side apply (field manager `kubeflex`) on
//! the hosting API, into the control plane's namespace; cluster-scoped objects are
//! labelled with the control plane's name so [`remove_applied`] can remove them with it.
//! A hook with `spec.target: controlplane` applies into the new control plane instead.
//! With `waitForPostCreateHooks`, a hook counts as applied once its objects are ready
//! ([`readiness`]).
//!
//! A hook may also name built-in actions (`spec.actions`, a kflex extension), run before
//! its templates, in order: [`exec`] (a local program, when the server allows it),
//! [`networking`] (NetworkPolicies in every namespace of the control plane) and
//! [`monitoring`] (checks the Prometheus operator's kinds for the monitoring hook's
//! templates). The built-in hooks using them are in [`builtin`].

pub mod builtin;
pub mod event;
pub mod exec;
pub mod monitoring;
pub mod networking;
pub mod readiness;
pub mod template;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The API group and version of PostCreateHooks.
const API_VERSION: &str = "tenancy.kflex.kubestellar.org/v1alpha1";
/// The field manager of every object a hook applies (KubeFlex's).
pub const FIELD_MANAGER: &str = "kubeflex";
/// The label on cluster-scoped objects a hook applied: the control plane's name.
pub const CONTROL_PLANE_LABEL: &str = "kflex.kubestellar.org/controlplane";

/// Why hooks could not be applied; shown on the ControlPlane.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("template: {0}")]
    Template(String),
    #[error("PostCreateHook {0} not found")]
    Missing(String),
    #[error("{0}")]
    Invalid(String),
    #[error("exec: {0}")]
    Exec(String),
    #[error("{}", api_message(.0))]
    Api(#[from] kube::Error),
}

/// An API error as a user reads it: the Status's message, else the error.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// One use of a hook by a control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookUse {
    pub name: String,
    pub vars: BTreeMap<String, String>,
}

/// The hooks a ControlPlane `spec` uses: the legacy `postCreateHook` first, then
/// `postCreateHooks` in order; empty names and repeats skipped.
pub fn uses(spec: &Value) -> Vec<HookUse> {
    let strings = |value: &Value| -> BTreeMap<String, String> {
        value
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect()
    };
    let mut found: Vec<HookUse> = Vec::new();
    let legacy = spec["postCreateHook"].as_str().map(|name| HookUse {
        name: name.to_owned(),
        vars: strings(&spec["postCreateHookVars"]),
    });
    let listed = spec["postCreateHooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| {
            Some(HookUse {
                name: u["hookName"].as_str()?.to_owned(),
                vars: strings(&u["vars"]),
            })
        });
    for hook in legacy.into_iter().chain(listed) {
        if !hook.name.is_empty() && !found.iter().any(|f| f.name == hook.name) {
            found.push(hook);
        }
    }
    found
}

/// The variables of one hook use, by KubeFlex's precedence: the hook's `defaultVars` <
/// the control plane's `globalVars` < the use's `vars` < the system variables
/// (`Namespace`, `ControlPlaneName`, `HookName`).
pub fn variables(
    hook: &Value,
    spec: &Value,
    hook_use: &HookUse,
    namespace: &str,
    cp: &str,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for default in hook["spec"]["defaultVars"].as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (default["name"].as_str(), default["value"].as_str()) {
            vars.insert(name.to_owned(), value.to_owned());
        }
    }
    for (name, value) in spec["globalVars"].as_object().into_iter().flatten() {
        if let Some(value) = value.as_str() {
            vars.insert(name.clone(), value.to_owned());
        }
    }
    vars.extend(hook_use.vars.clone());
    vars.insert("Namespace".into(), namespace.to_owned());
    vars.insert("ControlPlaneName".into(), cp.to_owned());
    vars.insert("HookName".into(), hook_use.name.clone());
    vars
}

/// Where hooks apply their templates: the hosting API (KubeFlex's behaviour), or, for a
/// hook with `spec.target: controlplane` (a kflex extension), the new control plane
/// itself.
pub struct Targets<'a> {
    pub host: &'a kube::Client,
    /// `None` for control planes that are not served by this process (type `host`).
    pub tenant: Option<&'a kube::Client>,
    /// Whether `exec` actions may run (the server's `--allow-exec-hooks`).
    pub allow_exec: bool,
}

/// The control plane hooks run for, as the hosting API holds it.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub name: &'a str,
    pub uid: &'a str,
    /// Its namespace on the hosting API (`<name>-system`).
    pub namespace: &'a str,
    pub spec: &'a Value,
    /// Its status before this run: an `exec` action of a hook already applied is not run
    /// again.
    pub status: &'a Value,
}

/// A built-in action of a hook, its strings rendered with the hook's variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Exec(exec::Exec),
    Networking(networking::Mode),
    Monitoring,
}

impl Action {
    /// The action `action` (an item of `spec.actions`) describes, with `vars`.
    pub fn parse(action: &Value, vars: &BTreeMap<String, String>) -> Result<Self, HookError> {
        let action = template::render(action, vars)?;
        match action["type"].as_str() {
            Some("exec") => {
                let command: Vec<String> = action["command"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|arg| arg.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .filter(|c: &Vec<String>| !c.is_empty())
                    .ok_or_else(|| {
                        HookError::Invalid("an exec action needs a command (strings)".into())
                    })?;
                let seconds = action["timeoutSeconds"]
                    .as_u64()
                    .unwrap_or(exec::DEFAULT_TIMEOUT_SECONDS);
                Ok(Action::Exec(exec::Exec {
                    command,
                    timeout: std::time::Duration::from_secs(seconds),
                }))
            }
            Some("networking") => Ok(Action::Networking(networking::Mode::from_vars(vars)?)),
            Some("monitoring") => Ok(Action::Monitoring),
            other => Err(HookError::Invalid(format!(
                "unknown action type {}",
                other.map_or_else(|| "(none)".to_owned(), |t| format!("{t:?}"))
            ))),
        }
    }
}

/// What applying a control plane's hooks came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Hook name → applied (and, when waiting, ready): `status.postCreateHooks`.
    pub applied: BTreeMap<String, bool>,
    /// Every hook applied (and ready when waiting), with no error.
    pub completed: bool,
    /// Why hooks failed, one message per failing hook.
    pub errors: Vec<String>,
    /// The mode of the `networking` action a hook uses, if any: the manager keeps its
    /// policies in namespaces created later.
    pub networking: Option<networking::Mode>,
}

/// Applies the hooks control plane `subject` uses, into `targets`. Every hook is tried
/// even when one fails.
pub async fn run(targets: &Targets<'_>, subject: &Subject<'_>) -> Outcome {
    let spec = subject.spec;
    let hook_uses = uses(spec);
    let mut outcome = Outcome::default();
    if hook_uses.is_empty() {
        outcome.completed = true;
        return outcome;
    }
    let wait = spec["waitForPostCreateHooks"].as_bool().unwrap_or(false);
    let mut discoveries = Discoveries::default();
    for hook_use in &hook_uses {
        let applied = apply_hook(
            targets,
            &mut discoveries,
            subject,
            hook_use,
            &mut outcome.networking,
        );
        match applied.await {
            Ok(objects) => {
                let ready = !wait || objects.iter().all(readiness::is_ready);
                outcome.applied.insert(hook_use.name.clone(), ready);
            }
            Err(error) => {
                outcome.applied.insert(hook_use.name.clone(), false);
                outcome
                    .errors
                    .push(format!("hook {}: {error}", hook_use.name));
            }
        }
    }
    outcome.completed = outcome.errors.is_empty() && outcome.applied.values().all(|a| *a);
    outcome
}

/// Each target's discovery, made once per run and only when a hook needs it.
#[derive(Default)]
struct Discoveries {
    host: Option<Discovery>,
    tenant: Option<Discovery>,
}

/// The discovery of `client`, made on first use.
async fn discovered<'d>(
    slot: &'d mut Option<Discovery>,
    client: &kube::Client,
) -> Result<&'d Discovery, HookError> {
    if slot.is_none() {
        *slot = Some(Discovery::new(client.clone()).run().await?);
    }
    Ok(slot.as_ref().expect("just made"))
}

/// Runs one hook's actions, then renders and applies its templates; returns the objects
/// as stored. `networking` gets the mode of a networking action.
async fn apply_hook(
    targets: &Targets<'_>,
    discoveries: &mut Discoveries,
    subject: &Subject<'_>,
    hook_use: &HookUse,
    networking: &mut Option<networking::Mode>,
) -> Result<Vec<Value>, HookError> {
    let (cp, namespace, spec) = (subject.name, subject.namespace, subject.spec);
    let hooks: Api<DynamicObject> = Api::all_with(targets.host.clone(), &resource());
    let hook = hooks
        .get_opt(&hook_use.name)
        .await?
        .ok_or_else(|| HookError::Missing(hook_use.name.clone()))?;
    let hook = serde_json::to_value(&hook).map_err(|e| HookError::Invalid(e.to_string()))?;
    let vars = variables(&hook, spec, hook_use, namespace, cp);
    let mut applied_before = subject.status["postCreateHooks"][&hook_use.name] == true;
    for action in hook["spec"]["actions"].as_array().into_iter().flatten() {
        match Action::parse(action, &vars)? {
            Action::Exec(_) if applied_before => {}
            // The status this run started from may be a cache's, older than the last
            // run's outcome: a program runs only if the stored status says so.
            Action::Exec(_) if applied(targets.host, cp, &hook_use.name).await? => {
                applied_before = true;
            }
            Action::Exec(action) => {
                let involved = event::Involved {
                    name: cp,
                    uid: subject.uid,
                };
                exec::run(
                    targets.host,
                    involved,
                    namespace,
                    &hook_use.name,
                    &action,
                    targets.allow_exec,
                )
                .await?;
            }
            Action::Networking(mode) => {
                let tenant = targets.tenant.ok_or_else(|| {
                    HookError::Invalid("networking: needs a control plane of type k8s".into())
                })?;
                *networking = Some(mode);
                networking::ensure_all(tenant, mode).await?;
            }
            Action::Monitoring => {
                monitoring::check(discovered(&mut discoveries.host, targets.host).await?)?;
            }
        }
    }
    let on_tenant = match hook["spec"]["target"].as_str().unwrap_or("host") {
        "host" => false,
        "controlplane" => true,
        other => return Err(HookError::Invalid(format!("unknown target {other:?}"))),
    };
    let (client, slot) = if on_tenant {
        let tenant = targets.tenant.ok_or_else(|| {
            HookError::Invalid("target controlplane needs a control plane of type k8s".into())
        })?;
        (tenant, &mut discoveries.tenant)
    } else {
        (targets.host, &mut discoveries.host)
    };
    let templates = hook["spec"]["templates"].as_array();
    if templates.is_none_or(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let discovery = discovered(slot, client).await?;
    let mut applied = Vec::new();
    for template in templates.into_iter().flatten() {
        let mut object = template::render(template, &vars)?;
        let (group, version) = match object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .split_once('/')
        {
            Some((group, version)) => (group.to_owned(), version.to_owned()),
            None => (
                String::new(),
                object["apiVersion"].as_str().unwrap_or_default().to_owned(),
            ),
        };
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if kind.is_empty() || version.is_empty() || name.is_empty() {
            return Err(HookError::Invalid(
                "every template needs apiVersion, kind and metadata.name".into(),
            ));
        }
        let gvk = kube::core::GroupVersionKind::gvk(&group, &version, &kind);
        let (resource, capabilities) = discovery.resolve_gvk(&gvk).ok_or_else(|| {
            HookError::Invalid(format!(
                "the {} API does not serve {kind} in {} (is its CustomResourceDefinition installed?)",
                if on_tenant { "control plane's" } else { "hosting" },
                object["apiVersion"]
            ))
        })?;
        let api: Api<DynamicObject> = match capabilities.scope {
            // On the tenant, the hook may use any namespace (default: `default`).
            Scope::Namespaced if on_tenant => {
                let target = object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_owned();
                object["metadata"]["namespace"] = json!(target);
                Api::namespaced_with(client.clone(), &target, &resource)
            }
            Scope::Cluster if on_tenant => Api::all_with(client.clone(), &resource),
            Scope::Namespaced => {
                if let Some(other) = object["metadata"]["namespace"]
                    .as_str()
                    .filter(|ns| *ns != namespace)
                {
                    return Err(HookError::Invalid(format!(
                        "{kind} {name}: a hook may not use namespace {other}; its objects go into {namespace}"
                    )));
                }
                object["metadata"]["namespace"] = json!(namespace);
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            Scope::Cluster => {
                object["metadata"]["labels"][CONTROL_PLANE_LABEL] = json!(cp);
                Api::all_with(client.clone(), &resource)
            }
        };
        let stored = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await?;
        applied.push(serde_json::to_value(&stored).map_err(|e| HookError::Invalid(e.to_string()))?);
    }
    Ok(applied)
}

/// Whether the stored status of control plane `cp` counts hook `hook` as applied.
async fn applied(host: &kube::Client, cp: &str, hook: &str) -> Result<bool, HookError> {
    let resource = kube::core::ApiResource {
        kind: "ControlPlane".into(),
        plural: "controlplanes".into(),
        ..resource()
    };
    let stored = Api::<DynamicObject>::all_with(host.clone(), &resource)
        .get_opt(cp)
        .await?;
    Ok(stored.is_some_and(|cp| cp.data["status"]["postCreateHooks"][hook] == true))
}

/// The ApiResource of PostCreateHooks, for kube-rs's dynamic API.
pub fn resource() -> kube::core::ApiResource {
    kube::core::ApiResource {
        group: "tenancy.kflex.kubestellar.org".into(),
        version: "v1alpha1".into(),
        api_version: API_VERSION.into(),
        kind: "PostCreateHook".into(),
        plural: "postcreatehooks".into(),
    }
}

/// Removes what hooks applied for control plane `cp`: every object in its namespace
/// (as the namespace controller would before the namespace goes) and the cluster-scoped
/// objects labelled with its name.
pub async fn remove_applied(
    client: &kube::Client,
    cp: &str,
    namespace: &str,
) -> Result<(), HookError> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let labelled = ListParams::default().labels(&format!("{CONTROL_PLANE_LABEL}={cp}"));
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            if !capabilities.supports_operation(kube::discovery::verbs::DELETE_COLLECTION)
                || resource.plural == "namespaces"
            {
                continue;
            }
            let (api, params): (Api<DynamicObject>, &ListParams) = match capabilities.scope {
                Scope::Namespaced => (
                    Api::namespaced_with(client.clone(), namespace, &resource),
                    &ListParams::default(),
                ),
                Scope::Cluster => (Api::all_with(client.clone(), &resource), &labelled),
            };
            api.delete_collection(&DeleteParams::default(), params)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_hook_first_then_the_list_without_repeats() {
        let spec = json!({
            "postCreateHook": "old", "postCreateHookVars": {"a": "1"},
            "postCreateHooks": [{"hookName": "new", "vars": {"b": "2"}}, {"hookName": "old"}, {"hookName": ""}],
        });
        let found = uses(&spec);
        assert_eq!(
            found.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
            ["old", "new"]
        );
        assert_eq!(found[0].vars["a"], "1");
    }

    #[test]
    fn variables_follow_kubeflex_precedence() {
        let hook = json!({"spec": {"defaultVars": [{"name": "A", "value": "default"}, {"name": "B", "value": "default"},
                                                   {"name": "C", "value": "default"}, {"name": "Namespace", "value": "x"}]}});
        let spec = json!({"globalVars": {"B": "global", "C": "global"}});
        let hook_use = HookUse {
            name: "h".into(),
            vars: [("C".to_owned(), "use".to_owned())].into(),
        };
        let vars = variables(&hook, &spec, &hook_use, "cp-system", "cp");
        assert_eq!(vars["A"], "default");
        assert_eq!(vars["B"], "global");
        assert_eq!(vars["C"], "use");
        assert_eq!(vars["Namespace"], "cp-system");
        assert_eq!(vars["ControlPlaneName"], "cp");
        assert_eq!(vars["HookName"], "h");
    }
}
