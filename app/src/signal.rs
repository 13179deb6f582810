//! SIGTERM and SIGINT end the process at once with status 0.
//!
//! Why exit at once: ECS stops a task with SIGTERM only after the load balancer has
//! drained its target (deregistration delay), so no request is left worth waiting for,
//! and every request is answered on its own connection (`Connection: close`). Exiting
//! with 0 tells ECS and `docker stop` that this was an orderly stop, not a crash.
//!
//! Why a handler at all: in a container the app may run as PID 1, and the kernel
//! ignores any signal PID 1 has no handler for; without one, SIGTERM would do nothing
//! and `docker stop` would wait 10 s to SIGKILL. (The ECS task runs an init process
//! that forwards the signal, but a plain `docker run` has none.)
//!
//! How, with std only: std has no signal API, and the crate takes no dependencies, but
//! std already links the C library on Unix, so two declarations suffice. `signal` is
//! used rather than `sigaction` because its signature is the same everywhere, while
//! `struct sigaction` differs between architectures and C libraries.
//!
//! The handler only calls `_exit`: a signal can arrive while any thread holds any lock
//! (the allocator's, stdout's), so a handler may only call async-signal-safe functions.
//! `_exit` is one; `std::process::exit` is not (it runs `atexit` handlers and flushes
//! C stdio). Nothing is lost by skipping them: std's stdout is line-buffered, so every
//! access-log line has been written out by the time its `writeln!` returned.

use std::io;

/// Installs the handler for SIGTERM and SIGINT.
#[cfg(unix)]
pub fn install() -> io::Result<()> {
    use std::ffi::c_int;

    // The same numbers on Linux (every architecture), macOS and the BSDs.
    const SIGINT: c_int = 2;
    const SIGTERM: c_int = 15;
    // `SIG_ERR` is `(sighandler_t) -1`.
    const SIG_ERR: usize = usize::MAX;

    // SAFETY: these match the C declarations
    //   sighandler_t signal(int signum, sighandler_t handler);  (sighandler_t: void (*)(int))
    //   void _exit(int status);                                 (never returns)
    // `sighandler_t` is pointer-sized; it is only compared with SIG_ERR, so `usize` will do.
    unsafe extern "C" {
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
        fn _exit(status: c_int) -> !;
    }

    extern "C" fn terminate(_signum: c_int) {
        // SAFETY: `_exit` is async-signal-safe and touches no Rust state.
        unsafe { _exit(0) }
    }

    for signum in [SIGTERM, SIGINT] {
        // SAFETY: `terminate` is a valid `extern "C" fn(c_int)` that lives for the whole
        // program and only does what a signal handler may do (see the module docs).
        if unsafe { signal(signum, terminate) } == SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Elsewhere the default action (terminate) applies.
#[cfg(not(unix))]
pub fn install() -> io::Result<()> {
    Ok(())
}
