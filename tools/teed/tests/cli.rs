// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The tosfwd-teed binary's command line as a user meets it: --help and
//! --version, and each bad input one line on standard error that names
//! the culprit, with the exit status --help documents (2 for a command
//! line it does not take, 1 for an error at start-up).

mod support;

#[path = "../../tosfwd-log/testsupport/cli.rs"]
mod cli;

use support::*;

/// This build's tosfwd-teed, or the one TOSFWD_TEED_BIN names (to try another build).
const TEED: cli::Bin = cli::Bin {
    name: "tosfwd-teed",
    env: "TOSFWD_TEED_BIN",
    built: env!("CARGO_BIN_EXE_tosfwd-teed"),
};

#[test]
fn help_and_version_print_to_standard_output_and_exit_0() {
    let out = TEED.run(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        help.contains("Usage: tosfwd-teed [OPTIONS] --listen <ADDR>"),
        "{help}"
    );
    for want in [
        "unix:PATH or tcp:HOST:PORT",
        "-v, --verbose",
        "-q, --quiet",
        "RUST_LOG",
        "Exit status:",
        "2  a command line it does not accept",
    ] {
        assert!(help.contains(want), "{want}: {help}");
    }
    // Wrapped (clap's width without a terminal), not 474 columns.
    let widest = help.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 100, "{widest} columns: {help}");
    assert_eq!(TEED.run(&["-h"]).status.code(), Some(0));

    let out = TEED.run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("tosfwd-teed {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    assert_eq!(
        TEED.one_error_line(&["--listen", "unix:/x", "--bogus"], 2),
        "tosfwd-teed: error: unexpected argument '--bogus' found (see tosfwd-teed --help)"
    );
    let e = TEED.one_error_line(&[], 2);
    assert!(e.contains("--listen <ADDR>"), "{e}");
    let e = TEED.one_error_line(&["--listen", "t.sock"], 2);
    assert!(
        e.contains("'t.sock': want unix:PATH or tcp:HOST:PORT"),
        "{e}"
    );
    assert_eq!(
        TEED.one_error_line(&["--listen", "unix:/x", "--tee-device", "/dev/tee1"], 2),
        "tosfwd-teed: error: --tee-device applies to --tee host only (see tosfwd-teed --help)"
    );
}

#[test]
fn the_same_listen_address_twice_is_named_not_blamed_on_another_service() {
    let (dir, sock) = scratch("cli-twice");
    let a = format!("unix:{}", sock.display());
    let e = TEED.one_error_line(&["--listen", &a, "--listen", &a], 2);
    assert_eq!(
        e,
        format!("tosfwd-teed: error: --listen {a} given twice (see tosfwd-teed --help)")
    );
    assert!(!sock.exists(), "nothing bound");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_policy_files_toml_error_is_file_line_column_and_message() {
    let (dir, sock) = scratch("cli-toml");
    let policy = write_policy(&dir, "[[peer]]\nuid = 1\nlogin = \n");
    let e = TEED.one_error_line(
        &[
            "--listen",
            &format!("unix:{}", sock.display()),
            "--policy",
            policy.to_str().unwrap(),
        ],
        1,
    );
    assert_eq!(
        e,
        format!(
            "tosfwd-teed: error: {}:3:9: string values must be quoted, expected literal string",
            policy.display()
        )
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_tee_device_is_named() {
    let (dir, sock) = scratch("cli-device");
    let listen = format!("unix:{}", sock.display());
    for (device, why) in [
        ("/dev/null", "not a TEE device (TEE_IOC_VERSION failed"),
        ("/nonexistent/tee9", "no such TEE device"),
        ("/", "cannot open the TEE device"),
    ] {
        let e = TEED.one_error_line(
            &["--listen", &listen, "--tee", "host", "--tee-device", device],
            1,
        );
        assert!(
            e.starts_with(&format!("tosfwd-teed: error: {device}: {why}")),
            "{e}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_start_up_line_names_the_tee_as_the_option_spells_it() {
    let (dir, sock) = scratch("cli-startup");
    let teed = Teed::start(&sock, &["--tee", "user"]);
    let line = teed.wait_for("tosfwd-teed: listening on");
    assert!(
        line.starts_with(&format!(
            "tosfwd-teed: listening on unix:{} (tee user, ",
            sock.display()
        )),
        "{line}"
    );
    drop(teed);
    std::fs::remove_dir_all(dir).unwrap();
}
