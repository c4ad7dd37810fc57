// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The tosfwd-tee-client binary's command line as a user meets it. The
//! client runs in arm64 guests, but it builds and runs on any Linux host:
//! --help and --version, a command line it does not take as one line on
//! standard error and exit status 2, and without a TEE device the
//! kselftest skip (exit 4).

#[path = "../../tosfwd-log/testsupport/cli.rs"]
mod cli;

/// This build's tosfwd-tee-client, or the one TOSFWD_TEE_CLIENT_BIN names (to try another build).
const CLIENT: cli::Bin = cli::Bin {
    name: "tosfwd-tee-client",
    env: "TOSFWD_TEE_CLIENT_BIN",
    built: env!("CARGO_BIN_EXE_tosfwd-tee-client"),
};

#[test]
fn help_and_version_print_to_standard_output_and_exit_0() {
    let out = CLIENT.run(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{help}");
    assert!(
        help.contains("Usage: tosfwd-tee-client [OPTIONS] [DEVICE]"),
        "{help}"
    );
    for want in [
        "--xtest-tas",
        "--bench <N>",
        "--service-fault",
        "--partition-mark <NAME>",
        "--partition-expect <NAME|none>",
        "--partition-clear",
        "--private-memory",
        "--unshared-memory",
        "-v, --verbose",
        "-q, --quiet",
        "2  a command line it does not accept",
        "4  no TEE device",
    ] {
        assert!(help.contains(want), "{want}: {help}");
    }
    let widest = help.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 100, "{widest} columns: {help}");
    assert_eq!(CLIENT.run(&["-h"]).status.code(), Some(0));

    let out = CLIENT.run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("tosfwd-tee-client {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_are_one_line_naming_the_culprit_and_exit_2() {
    let e = CLIENT.usage_error(&["--bogus"]);
    assert!(
        e.starts_with("tosfwd-tee-client: error: unexpected argument '--bogus' found"),
        "{e}"
    );
    assert_eq!(
        CLIENT.usage_error(&["--bench", "5"]),
        "tosfwd-tee-client: error: --bench needs --xtest-tas (see tosfwd-tee-client --help)"
    );
    let e = CLIENT.usage_error(&["--partition-mark", "a b"]);
    assert!(
        e.contains("'a b'") && e.contains("a NAME is 1 to 64"),
        "{e}"
    );
    assert_eq!(
        CLIENT.usage_error(&["--service-fault", "--xtest-tas"]),
        "tosfwd-tee-client: error: --service-fault and --xtest-tas are different modes \
         (see tosfwd-tee-client --help)"
    );
}

#[test]
fn without_a_tee_device_every_case_is_skipped_with_exit_4() {
    let missing = "/nonexistent/tee9";
    let out = CLIENT.run(&[missing]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(
        stdout.contains(&format!("1..0 # SKIP cannot open {missing}")),
        "{stdout}"
    );
}
