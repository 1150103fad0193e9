//! Derives the protobuf wire schema of the built-in kinds (message → fields: tag, name,
//! wire type, nested message) from the sources of the `k8s-pb` crate, which prost generated
//! from upstream's `generated.proto` files. `src/protobuf/` decodes request bodies with it.
//!
//! The schema is read from k8s-pb's sources rather than kept in this repository, so that no
//! upstream file is copied here; k8s-pb is an ordinary dependency, so cargo fetches it
//! before this script runs. Its sources are parsed with syn.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The k8s-pb version whose sources are read (Cargo.toml pins it exactly).
const K8S_PB_VERSION: &str = "0.9.0";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let source = k8s_pb_source();
    let mut messages = BTreeMap::new();
    read_dir(&source, &source, &mut messages);
    assert!(
        messages.contains_key("io.k8s.api.core.v1.ConfigMap"),
        "no ConfigMap message in {}",
        source.display()
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("wire_schema.rs"), render(&messages)).expect("write wire_schema.rs");
}

/// The `src` directory of k8s-pb: where `cargo metadata` says it is (which also covers
/// vendored and patched sources), or, when cargo metadata cannot answer offline (it wants
/// every package of the workspace, dev-dependencies too, on disk), where cargo unpacks
/// registry packages: `$CARGO_HOME/registry/src/<registry>/k8s-pb-<version>`.
fn k8s_pb_source() -> PathBuf {
    println!("cargo::rerun-if-env-changed=CARGO_HOME");
    if let Some(source) = from_metadata() {
        return source;
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registries = home.join("registry").join("src");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&registries)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| {
            e.path()
                .join(format!("k8s-pb-{K8S_PB_VERSION}"))
                .join("src")
        })
        .filter(|p| p.join("lib.rs").is_file())
        .collect();
    candidates.sort();
    candidates.into_iter().next().unwrap_or_else(|| {
        panic!(
            "k8s-pb {K8S_PB_VERSION}'s sources are neither known to `cargo metadata --offline` \
             nor under {}",
            registries.display()
        )
    })
}

fn from_metadata() -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--offline",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let package = metadata["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "k8s-pb" && p["version"] == K8S_PB_VERSION)?;
    let manifest = Path::new(package["manifest_path"].as_str()?);
    Some(manifest.parent()?.join("src"))
}

/// The scalar protobuf types k8s-pb uses, by prost's name for them (another one fails the
/// build, so that a new k8s-pb cannot bring a type the decoder does not read).
const SCALARS: &[(&str, &str)] = &[
    ("string", "String"),
    ("bytes", "Bytes"),
    ("bool", "Bool"),
    ("int32", "Int32"),
    ("int64", "Int64"),
    ("double", "Double"),
];

fn scalar(name: &str) -> &'static str {
    SCALARS
        .iter()
        .find(|(proto, _)| *proto == name)
        .map(|(_, rust)| *rust)
        .unwrap_or_else(|| panic!("unknown protobuf scalar type {name}"))
}

/// One field of a message.
struct Field {
    tag: u32,
    name: String,
    repeated: bool,
    /// `Scalar(..)`, or a message's full name, or a map's key and value.
    ty: Ty,
}

enum Ty {
    Scalar(&'static str),
    Message(String),
    Map(&'static str, Box<Ty>),
}

fn read_dir(root: &Path, dir: &Path, messages: &mut BTreeMap<String, Vec<Field>>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read k8s-pb sources")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_dir(root, &path, messages);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("lib.rs") {
            let relative = path.strip_prefix(root).expect("under src");
            let mut module: Vec<String> = relative
                .parent()
                .into_iter()
                .flat_map(|p| p.components())
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let stem = path.file_stem().expect("file name").to_string_lossy();
            if stem != "mod" {
                module.push(stem.into_owned());
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            let file =
                syn::parse_file(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
            for item in file.items {
                if let syn::Item::Struct(item) = item {
                    if is_message(&item.attrs) {
                        let name = full_name(&module, &item.ident.to_string());
                        let fields = fields(&module, &item);
                        messages.insert(name, fields);
                    }
                }
            }
        }
    }
}

fn is_message(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("derive") && {
            let tokens = a.meta.require_list().map(|l| l.tokens.to_string());
            tokens.is_ok_and(|t| t.contains("prost :: Message"))
        }
    })
}

/// The definition-style name of a message: `io.k8s.api.core.v1.ConfigMap`,
/// `io.k8s.apiextensions-apiserver.pkg.apis...` (module `apiextensions_apiserver`).
fn full_name(module: &[String], ident: &str) -> String {
    let mut name = String::from("io.k8s");
    for (i, part) in module.iter().enumerate() {
        name.push('.');
        if i == 0 {
            name.push_str(&part.replace('_', "-"));
        } else {
            name.push_str(part);
        }
    }
    name.push('.');
    name.push_str(ident);
    name
}

fn fields(module: &[String], item: &syn::ItemStruct) -> Vec<Field> {
    let mut fields = Vec::new();
    for field in &item.fields {
        let Some(attr) = field.attrs.iter().find(|a| a.path().is_ident("prost")) else {
            continue;
        };
        let tokens = attr
            .meta
            .require_list()
            .expect("prost(...)")
            .tokens
            .to_string();
        let parts: Vec<String> = split_top(&tokens);
        let ident = field.ident.as_ref().expect("named field").to_string();
        let name = ident.strip_prefix("r#").unwrap_or(&ident).to_owned();
        let mut tag = None;
        let mut repeated = false;
        let mut ty = None;
        for part in &parts {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"').to_owned())),
                None => (part.trim(), None),
            };
            match key {
                "tag" => tag = Some(value.expect("tag value").parse().expect("numeric tag")),
                "repeated" => repeated = true,
                "optional" | "required" | "boxed" | "packed" => {}
                "message" => ty = Some(Ty::Message(message_type(module, &field.ty))),
                "bytes" => ty = Some(Ty::Scalar("Bytes")),
                "btree_map" | "hash_map" | "map" => {
                    let value = value.expect("map types");
                    let (k, v) = value.split_once(',').expect("map key, value");
                    let v = v.trim();
                    let value_ty = if v == "message" {
                        Ty::Message(message_type(module, &field.ty))
                    } else {
                        Ty::Scalar(scalar(v.split(' ').next().unwrap_or(v)))
                    };
                    ty = Some(Ty::Map(scalar(k.trim()), Box::new(value_ty)));
                }
                other => ty = Some(Ty::Scalar(scalar(other))),
            }
        }
        fields.push(Field {
            tag: tag.unwrap_or_else(|| panic!("no tag on {}.{name}", item.ident)),
            name,
            repeated,
            ty: ty.unwrap_or_else(|| panic!("no type on {}.{ident}", item.ident)),
        });
    }
    fields.sort_by_key(|f| f.tag);
    fields
}

/// Splits `a, b = "c, d", e` at the commas outside quotes.
fn split_top(tokens: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    for c in tokens.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                parts.last_mut().expect("a part").push(c);
            }
            ',' if !quoted => parts.push(String::new()),
            _ => parts.last_mut().expect("a part").push(c),
        }
    }
    parts.retain(|p| !p.trim().is_empty());
    parts
}

/// The full name of the message a field holds: the last type argument of its
/// `Option<..>`/`Vec<..>`/`Box<..>`/`BTreeMap<_, ..>`, resolved against `module`.
fn message_type(module: &[String], ty: &syn::Type) -> String {
    let syn::Type::Path(path) = ty else {
        panic!("unexpected field type {}", quote_type(ty));
    };
    let last = path.path.segments.last().expect("a segment");
    if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
        let inner = args
            .args
            .iter()
            .filter_map(|a| match a {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .next_back()
            .expect("a type argument");
        return message_type(module, inner);
    }
    let mut resolved: Vec<String> = module.to_vec();
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let (ident, prefix) = segments.split_last().expect("a segment");
    for segment in prefix {
        match segment.as_str() {
            "super" => {
                resolved.pop().expect("super within the crate");
            }
            "crate" => resolved.clear(),
            other => resolved.push(other.to_owned()),
        }
    }
    full_name(&resolved, ident)
}

fn quote_type(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect::<Vec<_>>()
            .join("::"),
        _ => "a non-path type".into(),
    }
}

/// The schema as Rust statics: messages sorted by name, fields by tag, nested messages
/// by index into `MESSAGES`.
fn render(messages: &BTreeMap<String, Vec<Field>>) -> String {
    let index: BTreeMap<&str, usize> = messages
        .keys()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    let message_ref = |name: &str| {
        *index
            .get(name)
            .unwrap_or_else(|| panic!("message {name} is referred to but not defined"))
    };
    let render_ty = |ty: &Ty| -> String {
        match ty {
            Ty::Scalar(s) => format!("Type::Scalar(Scalar::{s})"),
            Ty::Message(m) => format!("Type::Message({})", message_ref(m)),
            Ty::Map(k, v) => match v.as_ref() {
                Ty::Scalar(s) => format!("Type::Map(Scalar::{k}, MapValue::Scalar(Scalar::{s}))"),
                Ty::Message(m) => {
                    format!(
                        "Type::Map(Scalar::{k}, MapValue::Message({}))",
                        message_ref(m)
                    )
                }
                Ty::Map(..) => panic!("a map of maps"),
            },
        }
    };
    let mut out = String::from("/// Every message of k8s-pb, sorted by name.\npub(super) static MESSAGES: &[Message] = &[\n");
    for (name, fields) in messages {
        write!(out, "Message {{ name: {name:?}, fields: &[").expect("write");
        for f in fields {
            write!(
                out,
                "Field {{ tag: {}, name: {:?}, repeated: {}, ty: {} }},",
                f.tag,
                f.name,
                f.repeated,
                render_ty(&f.ty)
            )
            .expect("write");
        }
        out.push_str("] },\n");
    }
    out.push_str("];\n");
    out
}
