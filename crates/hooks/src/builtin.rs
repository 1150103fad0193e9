//! The built-in PostCreateHooks (`hooks/*.yaml` in the repository, compiled in), installed
//! and upgraded on the hosting API at start-up with server-side apply under field manager
//! `kflex`: a newer kflex updates the fields it sets; fields a user added (labels,
//! annotations, other fields kflex does not set) survive; a user's change to a field kflex
//! sets is undone at the next start (copy the hook under another name to customise it).

use crate::HookError;
use kube::api::{Api, DynamicObject, Patch, PatchParams};

/// The field manager of the built-in hooks.
pub const INSTALLER: &str = "kflex";

/// Each built-in hook's manifest.
pub const MANIFESTS: [&str; 2] = [
    include_str!("../../../hooks/networking.yaml"),
    include_str!("../../../hooks/monitoring.yaml"),
];

/// The built-in hooks, parsed.
pub fn hooks() -> Result<Vec<DynamicObject>, HookError> {
    MANIFESTS
        .iter()
        .map(|manifest| {
            serde_norway::from_str(manifest)
                .map_err(|e| HookError::Invalid(format!("built-in hook manifest: {e}")))
        })
        .collect()
}

/// Installs (or upgrades) the built-in hooks on the hosting API `client` reaches.
pub async fn install(client: &kube::Client) -> Result<(), HookError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &crate::resource());
    for hook in hooks()? {
        let name = hook.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply(INSTALLER).force(),
            &Patch::Apply(&hook),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_is_a_named_hook_whose_templates_render() {
        let names: Vec<String> = hooks()
            .unwrap()
            .into_iter()
            .map(|hook| {
                let types = hook.types.clone().unwrap();
                assert_eq!(types.kind, "PostCreateHook");
                assert_eq!(types.api_version, crate::API_VERSION);
                let hook = serde_json::to_value(&hook).unwrap();
                let spec = serde_json::json!({});
                let hook_use = crate::HookUse {
                    name: "h".into(),
                    vars: Default::default(),
                };
                let vars = crate::variables(&hook, &spec, &hook_use, "cp-system", "cp");
                for template in hook["spec"]["templates"].as_array().into_iter().flatten() {
                    crate::template::render(template, &vars).unwrap();
                }
                for action in hook["spec"]["actions"].as_array().unwrap() {
                    crate::Action::parse(action, &vars).unwrap();
                }
                hook["metadata"]["name"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(names, ["networking", "monitoring"]);
    }
}
