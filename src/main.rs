//! `hlx`: parses the command line and hands over to the library.

/// mimalloc instead of glibc's malloc: rows are allocated value by value on
/// the reading thread and freed on the writing one (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    no_transparent_huge_pages();
    std::process::exit(hotline_exchange::cli::main());
}

/// Keeps the process off transparent huge pages, which mimalloc asks for.
/// With them, each first touch of a 2 MiB region makes the kernel zero the
/// whole of it: a first load of 1,000,000 rows peaked at 144 MB RSS with
/// them and 122 MB without, at the same speed (26.5 and 27.1 s), and an
/// idle poll touched 40 MB instead of 25 MB (bench/README.md).
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes no pointers; it sets a flag of the
    // process's memory map. A kernel without it returns EINVAL, ignored.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
