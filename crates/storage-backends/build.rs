//! Checks that the vendored `protoc` used by etcd-client's build script exists
//! (see `.cargo/config.toml` and `scripts/protoc`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(err) = protoc_bin_vendored::protoc_bin_path() {
        println!("cargo:warning=no vendored protoc for this platform: {err}; set PROTOC");
    }
}
