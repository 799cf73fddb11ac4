//! `hlx`: parses the command line and hands over to the library.

/// mimalloc instead of glibc's malloc: rows are allocated value by value on
/// the reading thread and freed on the writing one (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(hotline_exchange::cli::main());
}
