//! `hlx`: parses the command line and hands over to the library.

/// mimalloc instead of glibc's malloc: rows are allocated value by value on
/// the reading thread and freed on the writing one (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    no_transparent_huge_pages();
    std::process::exit(hotline_exchange::cli::main());
}

/// Keeps the process off transparent huge pages. mimalloc reserves its
/// memory in large aligned regions, which the kernel backs with huge pages
/// where the system's THP mode allows it; then each first touch of a 2 MiB
/// region zeroes and maps the whole of it. A first load of 1,000,000 rows
/// peaked at 144 MB RSS with them and 122 MB without, at the same speed
/// (26.5 and 27.1 s), and an idle poll touched 40 MB instead of 25 MB
/// (bench/README.md).
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes no pointers; it sets a flag of the
    // process's memory map. A kernel without it returns EINVAL, ignored.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// `TCP_NODELAY` on every TCP connection the `hlx` binary opens.
///
/// sqlx 0.9.0 no longer sets `TCP_NODELAY` on its sockets, as 0.8 did
/// (transact-rs/sqlx#4335; the fix, #4336, is merged but not in a release
/// yet). Without it, Nagle's algorithm holds the second of two small writes
/// until the server's delayed ACK, about 40 ms: a TLS handshake with
/// PostgreSQL writes two records back to back twice, so every new
/// connection waited about 90 ms (strace, bench/README.md), most of an idle
/// poll. sqlx has no hook for socket options, so the binary defines the C
/// library's `connect` itself: for a TCP socket (an IPv4 or IPv6 stream
/// socket whose protocol is TCP) it sets `TCP_NODELAY` (as
/// libpq, JDBC and Go do on every connection), then makes the `connect`
/// system call, as the C library would. Nothing else changes; on an error
/// from `setsockopt` the connection is made without it.
///
/// Only the binary has it (a definition in a library is not linked in
/// reliably), so the library's in-process tests run without it. When sqlx
/// sets `TCP_NODELAY` again, this goes: see the note beside sqlx in
/// Cargo.toml.
#[cfg(target_os = "linux")]
mod nodelay {
    use libc::{c_int, c_void, sockaddr, socklen_t};

    /// # Safety
    /// As `connect(2)`: `addr` points to `len` readable bytes.
    #[no_mangle]
    pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
        if !addr.is_null() && len as usize >= std::mem::size_of::<libc::sa_family_t>() {
            // SAFETY: `addr` holds at least the family field (checked above).
            let family = c_int::from(unsafe { (*addr).sa_family });
            if family == libc::AF_INET || family == libc::AF_INET6 {
                let option = |name: c_int| {
                    let mut value: c_int = 0;
                    let mut len = std::mem::size_of::<c_int>() as socklen_t;
                    // SAFETY: a pointer to a live c_int and its size.
                    let r = unsafe {
                        libc::getsockopt(
                            fd,
                            libc::SOL_SOCKET,
                            name,
                            (&mut value as *mut c_int).cast::<c_void>(),
                            &mut len,
                        )
                    };
                    (r == 0).then_some(value)
                };
                let one: c_int = 1;
                if option(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
                    && option(libc::SO_PROTOCOL) == Some(libc::IPPROTO_TCP)
                {
                    // SAFETY: a pointer to a live c_int and its size.
                    unsafe {
                        libc::setsockopt(
                            fd,
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&one as *const c_int).cast::<c_void>(),
                            std::mem::size_of::<c_int>() as socklen_t,
                        );
                    }
                }
            }
        }
        // SAFETY: the caller's arguments, passed on unchanged.
        unsafe { libc::syscall(libc::SYS_connect, fd, addr, len) as c_int }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn tcp_connections_have_nodelay() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::net::TcpStream::connect(addr).unwrap();
            assert!(client.nodelay().unwrap(), "TCP_NODELAY set by hlx's connect");
            let (server, _) = listener.accept().unwrap();
            assert!(!server.nodelay().unwrap(), "accepted sockets are left as they are");
        }

        #[test]
        fn a_refused_connection_reports_its_error() {
            // A port nobody listens on: bind one, note it, close it.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let err = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        }
    }
}
