//! The core's only OS FFI: a file descriptor that is readable while a flag is
//! set (an eventfd on Linux, a pipe elsewhere), and waiting on one with a
//! nanosecond deadline that a signal can interrupt.
//!
//! Everything else in the core is safe Rust built on these few calls.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// A descriptor that `poll` reports readable while it is "up".
#[derive(Debug)]
pub struct Signal {
    read: OwnedFd,
    /// The end written to; the same descriptor as `read` for an eventfd.
    #[cfg(not(target_os = "linux"))]
    write: OwnedFd,
}

impl Signal {
    pub fn new() -> io::Result<Signal> {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: eventfd takes no pointers; a negative result is an error.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            Ok(Signal { read: unsafe { OwnedFd::from_raw_fd(fd) } })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors pipe writes.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } < 0 {
                return Err(io::Error::last_os_error());
            }
            for fd in fds {
                // SAFETY: setting flags on descriptors we just created.
                unsafe {
                    libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            // SAFETY: both descriptors are fresh and owned by nothing else.
            unsafe { Ok(Signal { read: OwnedFd::from_raw_fd(fds[0]), write: OwnedFd::from_raw_fd(fds[1]) }) }
        }
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Makes the descriptor readable (idempotent in effect: it stays readable).
    pub fn raise(&self) {
        #[cfg(target_os = "linux")]
        let (fd, bytes) = (self.read.as_raw_fd(), 1u64.to_ne_bytes());
        #[cfg(not(target_os = "linux"))]
        let (fd, bytes) = (self.write.as_raw_fd(), [1u8]);
        // SAFETY: writing a valid buffer to a descriptor we own. A full
        // counter or pipe (EAGAIN) already means "readable", so errors are moot.
        unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    }

    /// Makes the descriptor unreadable until the next `raise`.
    pub fn lower(&self) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading into a valid buffer from a non-blocking descriptor we own.
            let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            // An eventfd drains in one read; a pipe may need several.
            if n <= 0 || cfg!(target_os = "linux") {
                return;
            }
        }
    }

    /// Waits until the descriptor is readable or `deadline` passes.
    pub fn wait(&self, deadline: Option<Instant>) -> WaitResult {
        wait_readable(self.fd(), deadline)
    }
}

/// Sleeps while `word` holds `expected`, until woken by `futex_wake`, the
/// deadline passes, or a signal arrives. May also return spuriously: callers
/// re-check their own state.
#[cfg(target_os = "linux")]
pub fn futex_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
) -> WaitResult {
    let timeout = deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        libc::timespec { tv_sec: left.as_secs() as libc::time_t, tv_nsec: left.subsec_nanos() as _ }
    });
    let timeout_ptr = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT on a live, aligned u32 with a valid or null relative timeout.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            timeout_ptr,
        )
    };
    if r == 0 {
        return WaitResult::Ready;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => WaitResult::TimedOut,
        Some(libc::EINTR) => WaitResult::Interrupted,
        _ => WaitResult::Ready, // EAGAIN: the word changed before we slept
    }
}

/// Wakes one thread sleeping in `futex_wait` on `word`.
#[cfg(target_os = "linux")]
pub fn futex_wake(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live, aligned u32.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
}

/// The calling thread's id as CPython's `threading.get_ident()` gives it
/// (`pthread_self`).
pub fn thread_ident() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as u64 }
}

/// How a wait on a descriptor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    Ready,
    TimedOut,
    /// A signal arrived (EINTR): the caller should run signal handlers.
    Interrupted,
    /// Another thread cancelled this thread's waits (its interpreter is closing).
    Cancelled,
}

/// Waits until `fd` is readable, `deadline` passes, or a signal arrives.
pub fn wait_readable(fd: RawFd, deadline: Option<Instant>) -> WaitResult {
    let mut pollfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let timeout = deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        libc::timespec { tv_sec: left.as_secs() as libc::time_t, tv_nsec: left.subsec_nanos() as _ }
    });
    let timeout_ptr = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: one valid pollfd, a valid or null timespec, and no signal mask change.
    let n = unsafe { libc::ppoll(&mut pollfd, 1, timeout_ptr, std::ptr::null()) };
    if n > 0 {
        WaitResult::Ready
    } else if n == 0 {
        WaitResult::TimedOut
    } else if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
        WaitResult::Interrupted
    } else {
        // POLLNVAL and friends: report as ready so the caller re-checks state.
        WaitResult::Ready
    }
}

/// How many CPUs the calling thread may run on (its affinity mask), or 1 if
/// that cannot be read. A system call, but no file reads (unlike
/// `std::thread::available_parallelism`, which also reads cgroup limits).
pub fn cpus_allowed() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and sched_getaffinity
    // writes at most `size_of::<cpu_set_t>()` bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 1;
        }
        libc::CPU_COUNT(&set).max(1) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn raise_and_lower_toggle_readability() {
        let s = Signal::new().unwrap();
        let soon = || Some(Instant::now() + Duration::from_millis(10));
        assert_eq!(s.wait(soon()), WaitResult::TimedOut);
        s.raise();
        s.raise();
        assert_eq!(s.wait(soon()), WaitResult::Ready);
        s.lower();
        assert_eq!(s.wait(soon()), WaitResult::TimedOut);
    }

    #[test]
    fn timeout_is_honoured_with_sub_millisecond_precision() {
        let s = Signal::new().unwrap();
        let start = Instant::now();
        assert_eq!(s.wait(Some(start + Duration::from_micros(2500))), WaitResult::TimedOut);
        let took = start.elapsed();
        assert!(took >= Duration::from_micros(2500), "{took:?}");
        assert!(took < Duration::from_millis(200), "{took:?}");
    }
}
