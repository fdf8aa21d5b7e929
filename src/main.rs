//! The `odai` binary: everything lives in the library; see `odai::run`.

fn main() {
    std::process::exit(odai::run());
}
