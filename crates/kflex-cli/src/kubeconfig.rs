//! The user's kubeconfig, as kubectl reads it: the files of `$KUBECONFIG` (or
//! `~/.kube/config`), merged with the first file's entries winning. Edited as untyped YAML
//! so that nothing kflex does not know about is lost, and written atomically (a temporary
//! file renamed over the original), so a failure never leaves a file half written.
//!
//! Where changes go, as kubectl does it: a changed entry stays in the file that holds it;
//! a new entry and `current-context` go to the first file.

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The key of KubeFlex's extensions: global (which context is the hosting cluster's) and
/// per context (which control plane a context belongs to).
pub const EXTENSION: &str = "kubeflex";
/// The global extension's field naming the hosting cluster's context.
pub const HOSTING_CONTEXT_KEY: &str = "hosting-cluster-ctx-name";
/// The per-context extension's field naming the control plane.
pub const CONTROL_PLANE_KEY: &str = "controlplane-name";

/// The kind of named entries a kubeconfig lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Clusters,
    Users,
    Contexts,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Section::Clusters => "clusters",
            Section::Users => "users",
            Section::Contexts => "contexts",
        }
    }
}

/// One file of the kubeconfig.
struct File {
    path: PathBuf,
    config: Value,
    changed: bool,
}

/// The user's kubeconfig: its files, read and edited together.
pub struct Kubeconfig {
    files: Vec<File>,
}

impl Kubeconfig {
    /// The files kubectl would use: `explicit`, else `$KUBECONFIG`'s, else
    /// `~/.kube/config`. Missing files read as empty.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let paths: Vec<PathBuf> = match explicit {
            Some(path) => vec![path.to_owned()],
            None => match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
                Some(list) => std::env::split_paths(&list)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect(),
                None => vec![default_path()?],
            },
        };
        let mut files = Vec::new();
        for path in paths {
            if files.iter().any(|f: &File| f.path == path) {
                continue;
            }
            let config = match std::fs::read_to_string(&path) {
                Ok(text) if text.trim().is_empty() => empty(),
                Ok(text) => serde_norway::from_str::<Value>(&text)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty(),
                Err(e) => {
                    return Err(e).with_context(|| format!("reading kubeconfig {}", path.display()))
                }
            };
            if !config.is_object() {
                bail!("kubeconfig {} is not a YAML mapping", path.display());
            }
            files.push(File {
                path,
                config,
                changed: false,
            });
        }
        Ok(Kubeconfig { files })
    }

    /// The kubeconfig as one document (first file wins), for clients.
    pub fn merged(&self) -> Value {
        let mut merged = empty();
        for section in [Section::Clusters, Section::Users, Section::Contexts] {
            let mut entries: Vec<Value> = Vec::new();
            for file in &self.files {
                for entry in list(&file.config, section) {
                    if !entries.iter().any(|e| e["name"] == entry["name"]) {
                        entries.push(entry.clone());
                    }
                }
            }
            merged[section.key()] = Value::Array(entries);
        }
        if let Some(current) = self.current_context() {
            merged["current-context"] = json!(current);
        }
        merged
    }

    /// The current context's name.
    pub fn current_context(&self) -> Option<String> {
        self.files.iter().find_map(|f| {
            f.config["current-context"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
    }

    /// Makes `name` the current context.
    pub fn set_current_context(&mut self, name: &str) {
        let index = self
            .files
            .iter()
            .position(|f| {
                f.config["current-context"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
            })
            .unwrap_or(0);
        let file = &mut self.files[index];
        file.config["current-context"] = json!(name);
        file.changed = true;
    }

    /// The entry `name` of `section` (its whole item: `name` plus the inner object).
    pub fn entry(&self, section: Section, name: &str) -> Option<&Value> {
        self.files
            .iter()
            .flat_map(|f| list(&f.config, section))
            .find(|e| e["name"] == name)
    }

    /// The names in `section`, in order, without duplicates.
    pub fn names(&self, section: Section) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for entry in self.files.iter().flat_map(|f| list(&f.config, section)) {
            if let Some(name) = entry["name"].as_str() {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
        names
    }

    /// Sets entry `entry` (with its `name`) in `section`: replaced where it is, else
    /// added to the first file.
    pub fn upsert(&mut self, section: Section, entry: Value) {
        let name = entry["name"].clone();
        for file in &mut self.files {
            if let Some(existing) = list_mut(&mut file.config, section)
                .iter_mut()
                .find(|e| e["name"] == name)
            {
                *existing = entry;
                file.changed = true;
                return;
            }
        }
        let file = &mut self.files[0];
        list_mut(&mut file.config, section).push(entry);
        file.changed = true;
    }

    /// Removes entry `name` of `section` from every file; whether one was there.
    pub fn remove(&mut self, section: Section, name: &str) -> bool {
        let mut found = false;
        for file in &mut self.files {
            let entries = list_mut(&mut file.config, section);
            let before = entries.len();
            entries.retain(|e| e["name"] != name);
            if entries.len() != before {
                found = true;
                file.changed = true;
            }
        }
        found
    }

    /// The hosting cluster's context, as KubeFlex's global extension records it.
    pub fn hosting_context(&self) -> Option<String> {
        self.files.iter().find_map(|f| {
            extension(&f.config["extensions"])
                .and_then(|e| e["data"][HOSTING_CONTEXT_KEY].as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
    }

    /// Records `context` as the hosting cluster's (KubeFlex's global extension, and the
    /// per-context marker).
    pub fn set_hosting_context(&mut self, context: &str) {
        let index = self
            .files
            .iter()
            .position(|f| extension(&f.config["extensions"]).is_some())
            .unwrap_or(0);
        let file = &mut self.files[index];
        let data = json!({
            "metadata": {"name": EXTENSION, "creationTimestamp": null},
            "data": {HOSTING_CONTEXT_KEY: context},
        });
        set_extension(&mut file.config["extensions"], data);
        file.changed = true;
        if let Some(mut entry) = self.entry(Section::Contexts, context).cloned() {
            set_extension(
                &mut entry["context"]["extensions"],
                json!({"data": {"is-hosting-cluster-ctx": "true"}}),
            );
            self.upsert(Section::Contexts, entry);
        }
    }

    /// The control plane context `name` belongs to, per KubeFlex's per-context extension.
    pub fn control_plane_of(&self, context: &str) -> Option<String> {
        let entry = self.entry(Section::Contexts, context)?;
        extension(&entry["context"]["extensions"])?["data"][CONTROL_PLANE_KEY]
            .as_str()
            .map(str::to_owned)
    }

    /// Adds the one cluster, user and context of `other` under the names `names`
    /// (replacing entries of those names), marking the context as control plane `cp`'s.
    pub fn merge_control_plane(
        &mut self,
        other: &Value,
        cp: &str,
        names: &kflex_controlplane::manager::credentials::ContextNames,
    ) -> anyhow::Result<()> {
        let first = |section: Section| {
            list(other, section)
                .first()
                .cloned()
                .with_context(|| format!("the control plane's kubeconfig has no {}", section.key()))
        };
        let (mut cluster, mut user, mut context) = (
            first(Section::Clusters)?,
            first(Section::Users)?,
            first(Section::Contexts)?,
        );
        cluster["name"] = json!(names.cluster);
        user["name"] = json!(names.user);
        context["name"] = json!(names.context);
        context["context"]["cluster"] = json!(names.cluster);
        context["context"]["user"] = json!(names.user);
        set_extension(
            &mut context["context"]["extensions"],
            json!({"data": {CONTROL_PLANE_KEY: cp}}),
        );
        self.upsert(Section::Clusters, cluster);
        self.upsert(Section::Users, user);
        self.upsert(Section::Contexts, context);
        Ok(())
    }

    /// Writes the files that changed, each atomically, readable by the owner only.
    pub fn save(&mut self) -> anyhow::Result<()> {
        for file in self.files.iter_mut().filter(|f| f.changed) {
            let text = serde_norway::to_string(&file.config)
                .with_context(|| format!("encoding kubeconfig {}", file.path.display()))?;
            write_atomically(&file.path, text.as_bytes())?;
            file.changed = false;
        }
        Ok(())
    }
}

fn default_path() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set and KUBECONFIG is empty")?;
    Ok(PathBuf::from(home).join(".kube").join("config"))
}

fn empty() -> Value {
    json!({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []})
}

fn list(config: &Value, section: Section) -> &[Value] {
    config[section.key()].as_array().map_or(&[], Vec::as_slice)
}

fn list_mut(config: &mut Value, section: Section) -> &mut Vec<Value> {
    let slot = &mut config[section.key()];
    if !slot.is_array() {
        *slot = json!([]);
    }
    match slot {
        Value::Array(entries) => entries,
        _ => unreachable!("just made an array"),
    }
}

/// KubeFlex's extension in a list of named extensions.
fn extension(extensions: &Value) -> Option<&Value> {
    extensions
        .as_array()?
        .iter()
        .find(|e| e["name"] == EXTENSION)
        .map(|e| &e["extension"])
}

/// Sets KubeFlex's extension in a list of named extensions, merging `data`.
fn set_extension(extensions: &mut Value, extension: Value) {
    if !extensions.is_array() {
        *extensions = json!([]);
    }
    let Value::Array(list) = extensions else {
        return;
    };
    match list.iter_mut().find(|e| e["name"] == EXTENSION) {
        Some(existing) => {
            let slot = &mut existing["extension"];
            if let (Some(new), true) = (extension["data"].as_object(), slot["data"].is_object()) {
                for (k, v) in new {
                    slot["data"][k] = v.clone();
                }
            } else {
                *slot = extension;
            }
        }
        None => list.push(json!({"name": EXTENSION, "extension": extension})),
    }
}

/// Writes `contents` to `path` through a temporary file in the same directory.
fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("config");
    let temporary = dir.join(format!(".{name}.kflex-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn several_files_merge_first_wins_and_changes_stay_where_entries_are() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a",
            "apiVersion: v1\nkind: Config\ncurrent-context: one\ncontexts:\n- name: one\n  context: {cluster: c1, user: u1}\n  extra-field: kept\nclusters: []\nusers: []\npreferences: {colors: true}\n",
        );
        let b = write(
            dir.path(),
            "b",
            "contexts:\n- name: one\n  context: {cluster: shadowed, user: u}\n- name: two\n  context: {cluster: c2, user: u2}\n",
        );
        let paths = std::env::join_paths([&a, &b]).unwrap();
        // SAFETY: tests in this module do not read KUBECONFIG concurrently with this one.
        unsafe { std::env::set_var("KUBECONFIG", &paths) };
        let mut config = Kubeconfig::load(None).unwrap();
        unsafe { std::env::remove_var("KUBECONFIG") };
        assert_eq!(config.names(Section::Contexts), ["one", "two"]);
        assert_eq!(
            config.entry(Section::Contexts, "one").unwrap()["context"]["cluster"],
            "c1"
        );
        let mut two = config.entry(Section::Contexts, "two").unwrap().clone();
        two["context"]["namespace"] = json!("ns");
        config.upsert(Section::Contexts, two);
        config.set_current_context("two");
        config.set_hosting_context("one");
        config.save().unwrap();
        let a_text = std::fs::read_to_string(&a).unwrap();
        let b_text = std::fs::read_to_string(&b).unwrap();
        assert!(a_text.contains("current-context: two"), "{a_text}");
        assert!(a_text.contains("extra-field: kept") && a_text.contains("colors: true"));
        assert!(a_text.contains("hosting-cluster-ctx-name: one"), "{a_text}");
        assert!(b_text.contains("namespace: ns"), "{b_text}");
        assert!(!a_text.contains("namespace: ns"));
        assert_eq!(
            std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let reread = Kubeconfig::load(Some(&a)).unwrap();
        assert_eq!(reread.hosting_context().as_deref(), Some("one"));
    }

    #[test]
    fn a_broken_file_is_an_error_not_an_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config", "clusters: [unclosed\n");
        assert!(Kubeconfig::load(Some(&path)).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "clusters: [unclosed\n"
        );
    }

    use std::os::unix::fs::PermissionsExt;
}
