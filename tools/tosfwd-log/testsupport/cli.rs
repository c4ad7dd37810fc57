// SPDX-License-Identifier: Apache-2.0 OR MIT
//! What the binaries' tests/cli.rs share: running the built binary and
//! checking a usage error as tosfwd-log's convention makes it (one line on
//! standard error, `NAME: error: ... (see NAME --help)`, nothing on
//! standard output). Included by each of them with
//! `#[path = "../../tosfwd-log/testsupport/cli.rs"] mod cli;`.

// Each test file uses a part of it.
#![allow(dead_code)]

use std::process::{Command, Output};

/// A binary under test.
pub struct Bin {
    /// Its name, as its messages begin.
    pub name: &'static str,
    /// The variable that names another build of it to try.
    pub env: &'static str,
    /// This build's (env!("CARGO_BIN_EXE_...")).
    pub built: &'static str,
}

impl Bin {
    /// Runs this build's binary, or the one `self.env` names, without
    /// RUST_LOG.
    pub fn run(&self, args: &[&str]) -> Output {
        let bin = std::env::var_os(self.env).unwrap_or_else(|| self.built.into());
        Command::new(bin)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// The one line of standard error of a run that exits `status` and
    /// prints nothing on standard output.
    pub fn one_error_line(&self, args: &[&str], status: i32) -> String {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(status), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        let prefix = format!("{}: error: ", self.name);
        assert!(lines[0].starts_with(&prefix), "{stderr}");
        lines[0].to_owned()
    }

    /// The one line of a usage error: exit status 2, ending with the
    /// pointer to --help.
    pub fn usage_error(&self, args: &[&str]) -> String {
        let line = self.one_error_line(args, 2);
        let suffix = format!(" (see {} --help)", self.name);
        assert!(line.ends_with(&suffix), "{line}");
        line
    }
}
