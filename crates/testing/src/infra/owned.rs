//! Servers that die with the process that started them. `ferry up`, the benchmarks and
//! tests start nats-server and PostgreSQL as children; killed with SIGKILL, a parent can
//! clean nothing up, and its servers lived on as orphans (a second `ferry up` then found a
//! nats-server on its JetStream store). Each child is started under util-linux's `setpriv
//! --pdeathsig KILL`, so the kernel kills it when its parent goes.
//!
//! The kernel sends that signal when the *thread* that forked the child ends, not the
//! process: children are therefore forked by one thread that lives as long as the
//! process, never by a pool thread that may retire (tokio's blocking threads do after
//! 10 s idle).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

/// A command to start, and where to send the started child.
type Request = (Command, Sender<std::io::Result<Child>>);

/// The thread that forks every owned child (it never ends: the sender is static).
fn spawner() -> &'static std::sync::Mutex<Sender<Request>> {
    static SPAWNER: OnceLock<std::sync::Mutex<Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        let started = std::thread::Builder::new()
            .name("ferry-children".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(e) = started {
            // Without the thread every spawn below fails with this reason.
            eprintln!("cannot start the thread that starts servers: {e}");
        }
        std::sync::Mutex::new(tx)
    })
}

/// Starts `command` from the long-lived spawner thread.
pub(crate) fn spawn(command: Command) -> std::io::Result<Child> {
    let (tx, rx) = channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

/// `setpriv`, where util-linux has it (Debian's essential set does).
fn setpriv() -> Option<PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A command running `program` that dies with this process; as the `postgres` user when
/// `as_postgres` and we are root (PostgreSQL refuses to run as root).
pub fn command(program: &Path, as_postgres: bool) -> Command {
    let root = as_postgres && super::running_as_root();
    match setpriv() {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            if root {
                c.args([
                    "--reuid",
                    "postgres",
                    "--regid",
                    "postgres",
                    "--init-groups",
                ]);
            }
            c.args(["--pdeathsig", "KILL", "--"]).arg(program);
            c
        }
        // Without setpriv the child may outlive us; nothing else changes.
        None if root => {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Sends SIGKILL to `pid` (a crash, as the chaos run makes one), through `kill(1)`.
pub fn kill_hard(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    /// A child started here dies when the process that started it is killed: the harness
    /// starts a copy of this test binary that starts `sleep`, kills it with SIGKILL and
    /// finds the sleep gone.
    #[test]
    fn a_child_dies_with_its_parent() {
        if let Ok(pid_file) = std::env::var("FERRY_OWNED_CHILD_PID_FILE") {
            // The parent's role: start the child from a short-lived thread's caller, then wait.
            let child = std::thread::spawn(|| {
                let mut sleep = super::command(std::path::Path::new("/bin/sleep"), false);
                sleep.arg("600");
                super::spawn(sleep)
            })
            .join()
            .unwrap()
            .unwrap();
            std::fs::write(&pid_file, child.id().to_string()).unwrap();
            std::thread::sleep(Duration::from_secs(60));
            // Not reached: the harness kills this process first.
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "infra::owned::tests::a_child_dies_with_its_parent",
            ])
            .env("FERRY_OWNED_CHILD_PID_FILE", &pid_file)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let child: u32 = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break pid;
            }
            assert!(std::time::Instant::now() < deadline, "no child started");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(alive(child), "the child runs");
        parent.kill().unwrap();
        parent.wait().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(child) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child outlived its parent"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Running, not a zombie (a container's init may not reap the orphan at once).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            s.lines()
                .find(|l| l.starts_with("State:"))
                .is_some_and(|l| !l.contains('Z'))
        })
    }
}
