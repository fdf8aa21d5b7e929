//! Records the target triple this odai was built for (`odai farm deploy` compares it with each
//! device's, and `odai --version` reports it): cargo gives build scripts `TARGET`, not the crate.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=ODAI_TARGET={target}");
}
