//! CRDs of a store that other kflex processes serve too (replicas on the shared
//! PostgreSQL): a process registers a CRD's resources when it writes the CRD, so the others
//! must learn of it. Every CRD write on such a store bumps [`ANNOUNCEMENT`]; before serving
//! what depends on the CRDs (discovery, OpenAPI, custom resources, resources it does not
//! know), a process reads that one key and reloads the CRDs when another process changed
//! them since it last looked. A store only this process writes never pays for it.

use super::registration;
use crate::controlplane::ControlPlane;
use crate::object::meta_str;
use crate::request::Target;
use bytes::Bytes;
use kflex_storage_backends::StoreError;
use std::collections::HashSet;

/// The key whose revision says when a process last changed a CRD.
pub const ANNOUNCEMENT: &str = "/registry/kflex/crds-changed";
/// Attempts at bumping the announcement against other writers.
const ATTEMPTS: usize = 8;

/// After this process wrote or removed a CRD: tells the other processes (one write). If
/// another process announced a change this one has not loaded, it is loaded too.
pub(crate) async fn announce(cp: &ControlPlane) {
    if cp.store().exclusive() {
        return;
    }
    if let Err(error) = bump(cp).await {
        tracing::warn!(control_plane = cp.name(), %error, "announcing a CRD change");
    }
}

async fn bump(cp: &ControlPlane) -> Result<(), StoreError> {
    let store = cp.store();
    let key = ANNOUNCEMENT.as_bytes();
    let value = Bytes::from_static(b"{}");
    for _ in 0..ATTEMPTS {
        let (current, _) = store.get(key, None).await?;
        let previous = current.as_ref().map_or(0, |kv| kv.mod_revision);
        let written = match &current {
            Some(kv) => {
                store
                    .update(key, value.clone(), kv.mod_revision, None)
                    .await
            }
            None => store.create(key, value.clone(), None).await,
        };
        match written {
            Ok(revision) => {
                if previous != cp.registry().custom_revision() {
                    reload(cp).await?;
                }
                cp.registry().saw_custom_revision(revision);
                return Ok(());
            }
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Before serving `target`: on a store other processes write, reloads the CRDs if one of
/// them changed a CRD since this process last looked (one point read).
pub(crate) async fn refresh_for(cp: &ControlPlane, target: &Target) {
    if cp.store().exclusive() || !depends_on_crds(cp, target) {
        return;
    }
    if let Err(error) = reload_if_changed(cp).await {
        tracing::warn!(control_plane = cp.name(), %error, "reloading CRDs changed elsewhere");
    }
}

async fn reload_if_changed(cp: &ControlPlane) -> Result<(), StoreError> {
    let (kv, _) = cp.store().get(ANNOUNCEMENT.as_bytes(), None).await?;
    if let Some(kv) = kv.filter(|kv| kv.mod_revision > cp.registry().custom_revision()) {
        reload(cp).await?;
        cp.registry().saw_custom_revision(kv.mod_revision);
    }
    Ok(())
}

/// Whether serving `target` depends on which CRDs exist.
fn depends_on_crds(cp: &ControlPlane, target: &Target) -> bool {
    match target {
        Target::CoreGroup
        | Target::Groups
        | Target::Group(_)
        | Target::GroupVersion { .. }
        | Target::OpenApi(_) => true,
        Target::Resource(rr) => cp
            .registry()
            .lookup(&rr.group, &rr.version, &rr.resource)
            .is_none_or(|def| def.custom),
        _ => false,
    }
}

/// Serves exactly the CRDs in the store: new and changed ones, and no longer the removed.
async fn reload(cp: &ControlPlane) -> Result<(), StoreError> {
    let mut present = HashSet::new();
    for crd in registration::stored(cp).await? {
        present.insert(meta_str(&crd, "name").unwrap_or("").to_owned());
        registration::sync(cp.registry(), &crd);
    }
    for name in cp.registry().custom_crds() {
        if !present.contains(&name) {
            cp.registry().replace_custom(&name, Vec::new());
        }
    }
    Ok(())
}
