// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The tosfwd-vmm binary's command line as a user meets it, on any host
//! (the machine itself needs aarch64 and KVM; the command line does not):
//! --help and --version, and a command line it does not take as one line
//! on standard error and exit status 2, as in every tosfwd binary.

#[path = "../../tosfwd-log/testsupport/cli.rs"]
mod cli;

/// This build's tosfwd-vmm, or the one TOSFWD_VMM_BIN names (to try another build).
const VMM: cli::Bin = cli::Bin {
    name: "tosfwd-vmm",
    env: "TOSFWD_VMM_BIN",
    built: env!("CARGO_BIN_EXE_tosfwd-vmm"),
};

#[test]
fn help_and_version_print_to_standard_output_and_exit_0() {
    let out = VMM.run(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        help.contains("Usage: tosfwd-vmm [OPTIONS] --kernel <KERNEL>"),
        "{help}"
    );
    for want in [
        "--protected",
        "--tee <user|host|remote:ADDR>",
        "unix:PATH or tcp:HOST:PORT",
        "-v, --verbose",
        "-q, --quiet",
        "RUST_LOG",
        "Exit status:",
        "0  the guest powered off",
        "1  an error",
        "2  a command line it does not accept",
        "3  the guest reset",
    ] {
        assert!(help.contains(want), "{want}: {help}");
    }
    // Wrapped (clap's width without a terminal), not 474 columns.
    let widest = help.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 100, "{widest} columns: {help}");
    let short = VMM.run(&["-h"]);
    assert_eq!(short.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&short.stdout).contains("Exit status:"));

    let out = VMM.run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("tosfwd-vmm {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_are_one_line_naming_the_culprit_and_exit_2() {
    assert_eq!(
        VMM.usage_error(&["--kernel", "Image", "--bogus"]),
        "tosfwd-vmm: error: unexpected argument '--bogus' found (see tosfwd-vmm --help)"
    );
    let e = VMM.usage_error(&[]);
    assert!(e.contains("--kernel <KERNEL>"), "{e}");
    let e = VMM.usage_error(&["-k", "Image", "--vcpus", "9"]);
    assert!(e.contains("'9'") && e.contains("--vcpus"), "{e}");
    let e = VMM.usage_error(&["-k", "Image", "--tee", "remote:nowhere"]);
    assert!(
        e.contains("'nowhere': want unix:PATH or tcp:HOST:PORT"),
        "{e}"
    );
    // What clap cannot check is a usage error too.
    assert_eq!(
        VMM.usage_error(&["-k", "Image", "--tee-shared"]),
        "tosfwd-vmm: error: --tee-shared applies to --tee host only (see tosfwd-vmm --help)"
    );
    let long = "x".repeat(3000);
    let e = VMM.usage_error(&["-k", "Image", "--cmdline", &long]);
    assert!(e.contains("COMMAND_LINE_SIZE"), "{e}");
}
