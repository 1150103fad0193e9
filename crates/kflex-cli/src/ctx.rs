//! `kflex ctx`: switching the kubeconfig between the hosting API and control planes, and
//! listing, renaming and deleting the contexts kflex made.

use crate::controlplanes::load_context;
use crate::hosting;
use crate::kubeconfig::{Kubeconfig, Section};
use anyhow::{bail, Context};
use kflex_controlplane::manager::api;
use kflex_controlplane::manager::api_message;
use kflex_controlplane::manager::credentials::ContextNames;
use kube::api::{Api, DynamicObject};
use std::path::PathBuf;

/// Options of `kflex ctx`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CtxArgs {
    #[command(subcommand)]
    command: Option<CtxCommand>,
    /// The control plane to switch to; none: back to the hosting API.
    name: Option<String>,
    /// Reload the control plane's context from the server even if it exists.
    #[arg(long = "overwrite-existing-context", short = 'o')]
    overwrite: bool,
    /// Record the current context as the hosting API's first.
    #[arg(long = "set-current-for-hosting", short = 'c')]
    set_hosting: bool,
    /// The kubeconfig to use and update [default: $KUBECONFIG or ~/.kube/config].
    #[arg(long, short = 'k', global = true)]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum CtxCommand {
    /// Print the current context.
    Get,
    /// List the contexts, marking the current one and those kflex manages.
    List,
    /// Rename a context, with its cluster and user.
    Rename {
        context: String,
        new_context: String,
        /// Switch to the renamed context.
        #[arg(long = "switch", short = 'S')]
        switch: bool,
    },
    /// Delete a context, with its cluster and user.
    Delete {
        context: String,
        /// Delete even a context kflex does not manage.
        #[arg(long, short = 'f')]
        force: bool,
    },
}

pub async fn run(args: CtxArgs) -> anyhow::Result<()> {
    let mut kubeconfig = Kubeconfig::load(args.kubeconfig.as_deref())?;
    match args.command {
        Some(CtxCommand::Get) => {
            let current = kubeconfig
                .current_context()
                .context("no current context is set")?;
            println!("{current}");
            Ok(())
        }
        Some(CtxCommand::List) => {
            list(&kubeconfig);
            Ok(())
        }
        Some(CtxCommand::Rename {
            context,
            new_context,
            switch,
        }) => rename(&mut kubeconfig, &context, &new_context, switch),
        Some(CtxCommand::Delete { context, force }) => delete(&mut kubeconfig, &context, force),
        None => {
            if args.set_hosting {
                let current = kubeconfig
                    .current_context()
                    .context("no current context is set")?;
                kubeconfig.set_hosting_context(&current);
            }
            match args.name {
                None => to_hosting(&mut kubeconfig).await,
                Some(name) => to_control_plane(&mut kubeconfig, &name, args.overwrite).await,
            }
        }
    }
}

async fn to_hosting(kubeconfig: &mut Kubeconfig) -> anyhow::Result<()> {
    let (hosting, _) = hosting::resolve(kubeconfig).await?;
    kubeconfig.set_current_context(&hosting);
    kubeconfig.save()?;
    println!("Switched to the hosting API's context {hosting}");
    Ok(())
}

async fn to_control_plane(
    kubeconfig: &mut Kubeconfig,
    name: &str,
    overwrite: bool,
) -> anyhow::Result<()> {
    let names = ContextNames::of_control_plane(name);
    if overwrite
        || kubeconfig
            .entry(Section::Contexts, &names.context)
            .is_none()
    {
        let (hosting, client) = hosting::resolve(kubeconfig).await.with_context(|| {
            format!(
                "context {name} is not in the kubeconfig, and the hosting API is needed to load it"
            )
        })?;
        let control_planes: Api<DynamicObject> =
            Api::all_with(client.clone(), &api::control_planes());
        let cp = control_planes.get(name).await.map_err(|e| {
            anyhow::anyhow!(
                "control plane {name} not found on the hosting API: {}",
                api_message(&e)
            )
        })?;
        if cp.data["spec"]["type"] == "host" {
            kubeconfig.set_current_context(&hosting);
            kubeconfig.save()?;
            println!(
                "Control plane {name} is of type host: using the hosting API's context {hosting}"
            );
            return Ok(());
        }
        load_context(&client, kubeconfig, name, &cp).await?;
    }
    kubeconfig.set_current_context(&names.context);
    kubeconfig.save()?;
    println!("Switched to context {}", names.context);
    Ok(())
}

fn list(kubeconfig: &Kubeconfig) {
    let names = kubeconfig.names(Section::Contexts);
    if names.is_empty() {
        println!("No contexts found.");
        return;
    }
    let current = kubeconfig.current_context();
    let hosting = kubeconfig.hosting_context();
    println!("{:<30} {:<18} CONTROLPLANE", "CONTEXT", "MANAGED BY KFLEX");
    for name in names {
        let marker = if current.as_deref() == Some(name.as_str()) {
            "*"
        } else {
            " "
        };
        let (managed, cp) = match kubeconfig.control_plane_of(&name) {
            Some(cp) => ("yes", cp),
            None if hosting.as_deref() == Some(name.as_str()) => ("yes (hosting)", String::new()),
            None => ("no", String::new()),
        };
        println!("{:<30} {managed:<18} {cp}", format!("{marker}{name}"));
    }
}

fn rename(kubeconfig: &mut Kubeconfig, old: &str, new: &str, switch: bool) -> anyhow::Result<()> {
    let Some(mut context) = kubeconfig.entry(Section::Contexts, old).cloned() else {
        bail!("no context {old:?} is in the kubeconfig");
    };
    if kubeconfig.entry(Section::Contexts, new).is_some() {
        bail!("context {new:?} already exists");
    }
    let (old_names, new_names) = (
        ContextNames::of_control_plane(old),
        ContextNames::of_control_plane(new),
    );
    for (section, from, to) in [
        (Section::Clusters, &old_names.cluster, &new_names.cluster),
        (Section::Users, &old_names.user, &new_names.user),
    ] {
        let referenced = context["context"][if section == Section::Clusters {
            "cluster"
        } else {
            "user"
        }]
        .as_str()
        .is_some_and(|r| r == from.as_str());
        if let (true, Some(mut entry)) = (referenced, kubeconfig.entry(section, from).cloned()) {
            entry["name"] = serde_json::json!(to);
            kubeconfig.remove(section, from);
            kubeconfig.upsert(section, entry);
            context["context"][if section == Section::Clusters {
                "cluster"
            } else {
                "user"
            }] = serde_json::json!(to);
        }
    }
    context["name"] = serde_json::json!(new);
    kubeconfig.remove(Section::Contexts, old);
    kubeconfig.upsert(Section::Contexts, context);
    let current = kubeconfig.current_context();
    if switch || current.as_deref() == Some(old) {
        kubeconfig.set_current_context(new);
    }
    kubeconfig.save()?;
    println!("Renamed context {old} to {new}");
    Ok(())
}

fn delete(kubeconfig: &mut Kubeconfig, name: &str, force: bool) -> anyhow::Result<()> {
    let Some(context) = kubeconfig.entry(Section::Contexts, name).cloned() else {
        bail!("no context {name:?} is in the kubeconfig");
    };
    if kubeconfig.control_plane_of(name).is_none() && !force {
        bail!("context {name:?} is not managed by kflex: use --force to delete it anyway");
    }
    kubeconfig.remove(Section::Contexts, name);
    for (section, field) in [(Section::Clusters, "cluster"), (Section::Users, "user")] {
        if let Some(entry) = context["context"][field].as_str() {
            let still_used = kubeconfig.names(Section::Contexts).iter().any(|other| {
                kubeconfig
                    .entry(Section::Contexts, other)
                    .is_some_and(|c| c["context"][field] == entry)
            });
            if !still_used {
                kubeconfig.remove(section, entry);
            }
        }
    }
    if kubeconfig.current_context().as_deref() == Some(name) {
        if let Some(hosting) = kubeconfig.hosting_context() {
            kubeconfig.set_current_context(&hosting);
        }
    }
    kubeconfig.save()?;
    println!("Deleted context {name}");
    Ok(())
}
