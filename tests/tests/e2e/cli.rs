//! The `kflex` binary's command-line surface.

use std::process::Command;

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(kflex_e2e::kflex_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim(),
        format!("kflex {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_describes_kflex() {
    let out = Command::new(kflex_e2e::kflex_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("Usage: kflex"), "{stdout}");
    assert!(stdout.contains("control planes"), "{stdout}");
}

#[test]
fn unknown_arguments_fail_with_usage() {
    let out = Command::new(kflex_e2e::kflex_bin())
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("unexpected argument"), "{stderr}");
}
