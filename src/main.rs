//! The `odai` binary: everything lives in the library; see `odai::run`.

fn main() {
    odai::exit::terminate(odai::run());
}
