//! A store handle used in a forked child: the child's lock waits for the parent's, instead of
//! converting it (a forked child shares the parent's flock through the inherited descriptor).

use numpack::store::lock::StoreLock;
use std::time::{Duration, Instant};

#[test]
fn a_forked_child_waits_for_the_parents_lock() {
    let d = tempfile::tempdir().unwrap();
    let lock = StoreLock::open(d.path()).unwrap();
    for shared in [true, false] {
        // Forked while unlocked (a fork while another thread holds the handle's mutex would
        // leave the child's copy of it locked for good: fork before using a handle).
        // SAFETY: this test binary runs one test; the child only locks, then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            std::thread::sleep(Duration::from_millis(150));
            let t = Instant::now();
            let g = if shared {
                lock.shared()
            } else {
                lock.exclusive()
            };
            let waited = g.is_ok() && t.elapsed() >= Duration::from_millis(200);
            drop(g);
            // SAFETY: ends the child at once, without running the parent's destructors.
            unsafe { libc::_exit(if waited { 0 } else { 1 }) };
        }
        let held = lock.exclusive().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        drop(held);
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child's {} lock did not wait for the parent's exclusive one",
            if shared { "shared" } else { "exclusive" }
        );
        // The parent's own descriptor still locks.
        drop(lock.exclusive().unwrap());
    }
}
