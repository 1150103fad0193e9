//! The official Kubernetes Python client against the real binary: `tests/python/` checks
//! CRUD, strategic merge patch, conflicts, pagination, watch, scale and the dynamic client.

use kflex_e2e::KflexServer;
use std::path::PathBuf;
use std::process::Command;

/// The interpreter with the `kubernetes` package that `scripts/test` prepared, if any.
fn python() -> Option<PathBuf> {
    let found = std::env::var_os("KFLEX_PYTHON").map(PathBuf::from);
    if found.is_none() {
        eprintln!(
            "KFLEX_PYTHON is not set (run through scripts/test): skipping the Python client checks"
        );
    }
    found
}

#[test]
fn python_client_works_against_a_control_plane() {
    let Some(python) = python() else { return };
    let server = KflexServer::start();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/client_checks.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&server.kubeconfig)
        .arg("py-checks")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python client checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok collection emptied"), "{stdout}");
}
