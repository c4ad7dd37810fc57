// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The tosfwd-teed binary run by a test: started on a Unix socket (and
//! whatever else the test asks), its standard error collected, its threads
//! and memory read from /proc, killed when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fresh directory for a test's sockets and files.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("teed-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// This process's user id.
pub fn my_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// A running tosfwd-teed and the lines of its standard error.
pub struct Teed {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Teed {
    /// Starts the service on `sock` with `extra` options; returns once it
    /// listens.
    pub fn start(sock: &Path, extra: &[&str]) -> Teed {
        let t = Teed::spawn(sock, extra);
        t.wait_for("tosfwd-teed: listening on");
        t
    }

    /// Starts the service without waiting for it: this build's, or the
    /// binary TOSFWD_TEED_BIN names (to attack another build with the
    /// same tests).
    pub fn spawn(sock: &Path, extra: &[&str]) -> Teed {
        let bin = std::env::var_os("TOSFWD_TEED_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_tosfwd-teed").into());
        let mut child = Command::new(bin)
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (l, err) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        Teed { child, log }
    }

    /// Waits (10 s at most) for a log line containing `text`.
    pub fn wait_for(&self, text: &str) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            assert!(
                Instant::now() < end,
                "no '{text}' from tosfwd-teed: {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether a log line so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of /proc/PID/status, as a number (kB for memory).
    fn status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Its resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status("VmRSS:")
    }

    /// Its threads.
    pub fn threads(&self) -> u64 {
        self.status("Threads:")
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Teed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
