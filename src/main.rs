//! `hlx`: parses the command line and hands over to the library.
fn main() {
    std::process::exit(hotline_exchange::cli::main());
}
