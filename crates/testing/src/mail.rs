//! A real SMTP server for notification tests: aiosmtpd (installed into `.tools/venv` by
//! `scripts/setup.sh`) on a free loopback port, storing what it receives in a Maildir.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::infra::{free_port, port_open, workspace_root};

/// An SMTP server of one test's own; stopped and removed when dropped.
pub struct SmtpServer {
    pub port: u16,
    child: Child,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> Result<SmtpServer, String> {
        let python = workspace_root().join(".tools/venv/bin/python");
        let maildir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port().map_err(|e| e.to_string())?;
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "{} -m aiosmtpd (scripts/setup.sh installs it): {e}",
                    python.display()
                )
            })?;
        let mut server = SmtpServer {
            port,
            child,
            maildir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !port_open(port) {
            if Instant::now() > deadline || matches!(server.child.try_wait(), Ok(Some(_))) {
                return Err("aiosmtpd did not start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        server.port = port;
        Ok(server)
    }

    /// Every message received so far, raw (headers and body), oldest first.
    pub fn messages(&self) -> Vec<String> {
        let root: PathBuf = self.maildir.path().join("mail");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(root.join(d)).ok())
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| std::fs::read_to_string(p).ok())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
