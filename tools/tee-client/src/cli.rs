// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The command line: clap reads it ([`Cli`]), [`options`] checks that the
//! modes it asks for go together.

use std::path::PathBuf;

use clap::Parser;

use crate::partition;

/// The program's name in its messages.
pub const PROGRAM: &str = "tosfwd-tee-client";

/// The end of `--help`: the output and the exit statuses.
const AFTER_HELP: &str = "Output: KTAP on standard output (the partition modes: one \
`ok partition: ...` or `FAIL partition: ...` line per check). Log of the libraries: standard \
error, warnings by default; RUST_LOG takes LEVEL or MODULE=LEVEL directives, -v/-q set the \
level over RUST_LOG's.

Exit status (kselftest's):
  0  every case passed
  1  a case failed (a TEE device that exists but cannot be opened fails every case)
  2  a command line it does not accept (one line on standard error), as every tosfwd binary
  4  no TEE device (no device node or no driver): every case skipped; the partition modes
     exit 1 then";

/// tosfwd-tee-client: the guest side of the end-to-end test. Uses OP-TEE
/// through the TEE device as an unmodified application would and reports
/// KTAP. Without a mode, the cases against tosfwd-vmm's userspace TEE and
/// its built-in TAs.
#[derive(Debug, Parser)]
#[command(name = PROGRAM, version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The cases against a real OP-TEE with Debian's xtest TAs.
    #[arg(long)]
    pub xtest_tas: bool,
    /// With --xtest-tas: then the benchmark, N calls of each kind.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub bench: Option<u32>,
    /// The guest's side of the bench's fault run, where the VMM's TEE
    /// service is killed and restarted during the cases.
    #[arg(long)]
    pub service_fault: bool,
    /// Leave NAME in the caller's OP-TEE partition (a persistent object
    /// of xtest's storage2 TA, a slot of its sims_keepalive TA).
    #[arg(long, value_name = "NAME", value_parser = parse_mark)]
    pub partition_mark: Option<String>,
    /// Check that both hold NAME, or with `none` that neither holds
    /// anything.
    #[arg(long, value_name = "NAME|none", value_parser = parse_name)]
    pub partition_expect: Option<String>,
    /// Check that the object holds NAME and the sims_keepalive instance is
    /// fresh: the partition was made again (a reboot, a kexec), its storage
    /// kept.
    #[arg(long, value_name = "NAME", value_parser = parse_mark)]
    pub partition_expect_stored: Option<String>,
    /// Remove the partition's mark and end the sims_keepalive instance.
    #[arg(long)]
    pub partition_clear: bool,
    /// A protected guest whose driver shares what it hands to the TEE
    /// (alone or with --xtest-tas).
    #[arg(long)]
    pub private_memory: bool,
    /// A protected guest whose driver shares nothing.
    #[arg(long)]
    pub unshared_memory: bool,
    /// The guest's side of tosfwd-vmm --hostile-host (a test tool that
    /// makes the VMM lie to its guest): one call per forgery that
    /// /proc/cmdline's tosfwd.hostile= lists, each of which must end with
    /// an error.
    #[arg(long)]
    pub hostile_host: bool,
    /// The TEE device.
    #[arg(value_name = "DEVICE", default_value = "/dev/tee0")]
    pub device: PathBuf,
    /// -v/-q: the log's level.
    #[command(flatten)]
    pub verbosity: tosfwd_log::Verbosity,
}

/// `--bench`'s N: a count of calls, at least 1.
fn parse_count(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "not a count of calls".to_owned())
}

/// A partition NAME ([`partition::NAME_RULE`]).
fn parse_name(s: &str) -> Result<String, String> {
    if partition::valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(partition::NAME_RULE.to_owned())
    }
}

/// `--partition-mark`'s NAME: not `none`.
fn parse_mark(s: &str) -> Result<String, String> {
    if s == "none" {
        return Err("none is what --partition-expect checks for (no mark)".to_owned());
    }
    parse_name(s)
}

/// The guest's memory, as far as the TEE is concerned ([`crate::private`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// An ordinary guest: the host reaches all of it.
    Shared,
    /// A protected guest whose driver shares what it hands to the TEE
    /// (`--private-memory`).
    Private,
    /// A protected guest whose driver shares nothing (`--unshared-memory`).
    Unshared,
}

impl Memory {
    fn flag(self) -> &'static str {
        match self {
            Memory::Shared => "",
            Memory::Private => "--private-memory",
            Memory::Unshared => "--unshared-memory",
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub dev: PathBuf,
    pub xtest_tas: bool,
    pub bench: Option<u32>,
    pub service_fault: bool,
    pub partition: Option<partition::Mode>,
    pub memory: Memory,
    pub hostile_host: bool,
}

/// The options of `cli`, if its modes go together.
pub fn options(cli: Cli) -> Result<Options, String> {
    let modes = [
        cli.partition_mark.map(partition::Mode::Mark),
        cli.partition_expect
            .map(|n| partition::Mode::Expect(Some(n).filter(|n| n != "none"))),
        cli.partition_expect_stored
            .map(partition::Mode::ExpectStored),
        cli.partition_clear.then_some(partition::Mode::Clear),
    ];
    let mut partition: Option<partition::Mode> = None;
    for m in modes.into_iter().flatten() {
        if let Some(p) = &partition {
            return Err(format!("{} and {} are different modes", p.flag(), m.flag()));
        }
        partition = Some(m);
    }
    let memory = match (cli.private_memory, cli.unshared_memory) {
        (true, true) => {
            return Err("--private-memory and --unshared-memory are different modes".to_owned())
        }
        (true, false) => Memory::Private,
        (false, true) => Memory::Unshared,
        (false, false) => Memory::Shared,
    };
    let o = Options {
        dev: cli.device,
        xtest_tas: cli.xtest_tas,
        bench: cli.bench,
        service_fault: cli.service_fault,
        partition,
        memory,
        hostile_host: cli.hostile_host,
    };
    if o.hostile_host
        && (o.xtest_tas || o.service_fault || o.partition.is_some() || o.memory != Memory::Shared)
    {
        return Err("--hostile-host is a mode of its own".to_owned());
    }
    if o.bench.is_some() && !o.xtest_tas {
        return Err("--bench needs --xtest-tas".to_owned());
    }
    if o.service_fault && o.xtest_tas {
        return Err("--service-fault and --xtest-tas are different modes".to_owned());
    }
    if let Some(p) = &o.partition {
        for (on, other) in [
            (o.xtest_tas, "--xtest-tas"),
            (o.service_fault, "--service-fault"),
        ] {
            if on {
                return Err(format!("{} and {other} are different modes", p.flag()));
            }
        }
    }
    if o.memory != Memory::Shared {
        for (on, other) in [
            (o.xtest_tas && o.memory == Memory::Unshared, "--xtest-tas"),
            (o.service_fault, "--service-fault"),
            (o.partition.is_some(), "a partition mode"),
        ] {
            if on {
                return Err(format!(
                    "{} and {other} are different modes",
                    o.memory.flag()
                ));
            }
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options of the command line `v`, or its one-line error.
    fn p(v: &[&str]) -> Result<Options, String> {
        Cli::try_parse_from(std::iter::once(PROGRAM).chain(v.iter().copied()))
            .map_err(|e| tosfwd_log::usage_line(&e))
            .and_then(options)
    }

    #[test]
    fn the_device_defaults_to_tee0_and_options_parse() {
        let o = p(&[]).unwrap();
        assert_eq!(
            (o.dev, o.xtest_tas, o.bench, o.service_fault),
            ("/dev/tee0".into(), false, None, false)
        );
        let o = p(&["--xtest-tas", "--bench", "50", "/dev/tee1"]).unwrap();
        assert_eq!(
            (o.dev, o.xtest_tas, o.bench, o.service_fault),
            ("/dev/tee1".into(), true, Some(50), false)
        );
        let o = p(&["--service-fault"]).unwrap();
        assert_eq!(
            (o.dev, o.xtest_tas, o.bench, o.service_fault),
            ("/dev/tee0".into(), false, None, true)
        );
        let o = p(&["/dev/tee2", "--service-fault"]).unwrap();
        assert_eq!((o.dev, o.service_fault), ("/dev/tee2".into(), true));
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        assert_eq!(
            p(&["--bench", "5"]).unwrap_err(),
            "--bench needs --xtest-tas"
        );
        assert_eq!(
            p(&["--xtest-tas", "--bench"]).unwrap_err(),
            "a value is required for '--bench <N>' but none was supplied"
        );
        assert_eq!(
            p(&["--xtest-tas", "--bench", "0"]).unwrap_err(),
            "invalid value '0' for '--bench <N>': not a count of calls"
        );
        assert_eq!(
            p(&["--service-fault", "--xtest-tas"]).unwrap_err(),
            "--service-fault and --xtest-tas are different modes"
        );
        assert_eq!(
            p(&["--service-fault", "--bench", "5"]).unwrap_err(),
            "--bench needs --xtest-tas"
        );
        assert!(p(&["-x"])
            .unwrap_err()
            .starts_with("unexpected argument '-x' found"));
        assert_eq!(p(&["a", "b"]).unwrap_err(), "unexpected argument 'b' found");
    }

    #[test]
    fn partition_modes_parse() {
        use partition::Mode;
        let o = p(&["--partition-mark", "host"]).unwrap();
        assert_eq!(
            (o.dev, o.partition),
            ("/dev/tee0".into(), Some(Mode::Mark("host".into())))
        );
        let o = p(&["--partition-expect", "guest-a", "/dev/tee1"]).unwrap();
        assert_eq!(
            (o.dev, o.partition),
            (
                "/dev/tee1".into(),
                Some(Mode::Expect(Some("guest-a".into())))
            )
        );
        let o = p(&["/dev/tee2", "--partition-expect", "none"]).unwrap();
        assert_eq!(
            (o.dev, o.partition),
            ("/dev/tee2".into(), Some(Mode::Expect(None)))
        );
        let o = p(&["--partition-clear"]).unwrap();
        assert_eq!(
            (o.xtest_tas, o.service_fault, o.bench, o.partition),
            (false, false, None, Some(Mode::Clear))
        );
        let o = p(&["--partition-expect-stored", "host"]).unwrap();
        assert_eq!(o.partition, Some(Mode::ExpectStored("host".into())));
        assert!(p(&["--partition-expect-stored", "none"]).is_err());
        assert!(p(&["--partition-expect-stored", "a", "--partition-expect", "a"]).is_err());
        assert_eq!(p(&[]).unwrap().partition, None);
    }

    #[test]
    fn bad_partition_command_lines_say_what_is_wrong() {
        assert_eq!(
            p(&["--partition-mark"]).unwrap_err(),
            "a value is required for '--partition-mark <NAME>' but none was supplied"
        );
        assert_eq!(
            p(&["--partition-expect", "--xtest-tas"]).unwrap_err(),
            "a value is required for '--partition-expect <NAME|none>' but none was supplied"
        );
        let rule = "a NAME is 1 to 64 letters, digits, '.', '_' or '-', not starting with '-'";
        assert_eq!(
            p(&["--partition-mark", "a b"]).unwrap_err(),
            format!("invalid value 'a b' for '--partition-mark <NAME>': {rule}")
        );
        let long = "x".repeat(65);
        assert_eq!(
            p(&["--partition-mark", &long]).unwrap_err(),
            format!("invalid value '{long}' for '--partition-mark <NAME>': {rule}")
        );
        assert_eq!(
            p(&["--partition-mark", "none"]).unwrap_err(),
            "invalid value 'none' for '--partition-mark <NAME>': none is what \
             --partition-expect checks for (no mark)"
        );
        assert_eq!(
            p(&["--partition-mark", "a", "--partition-expect", "a"]).unwrap_err(),
            "--partition-mark and --partition-expect are different modes"
        );
        assert_eq!(
            p(&["--partition-clear", "--partition-clear"]).unwrap_err(),
            "the argument '--partition-clear' cannot be used multiple times"
        );
        assert_eq!(
            p(&["--partition-expect", "none", "--xtest-tas"]).unwrap_err(),
            "--partition-expect and --xtest-tas are different modes"
        );
        assert_eq!(
            p(&["--service-fault", "--partition-clear"]).unwrap_err(),
            "--partition-clear and --service-fault are different modes"
        );
        assert_eq!(
            p(&["--partition-mark", "host", "--bench", "5"]).unwrap_err(),
            "--bench needs --xtest-tas"
        );
        assert_eq!(
            p(&["--partition-mark", "host", "a", "b"]).unwrap_err(),
            "unexpected argument 'b' found"
        );
    }

    #[test]
    fn the_memory_modes_parse_alone() {
        assert_eq!(p(&[]).unwrap().memory, Memory::Shared);
        assert_eq!(p(&["--private-memory"]).unwrap().memory, Memory::Private);
        let o = p(&["--unshared-memory", "/dev/tee1"]).unwrap();
        assert_eq!((o.memory, o.dev), (Memory::Unshared, "/dev/tee1".into()));
        assert_eq!(
            p(&["--private-memory", "--private-memory"]).unwrap_err(),
            "the argument '--private-memory' cannot be used multiple times"
        );
        assert_eq!(
            p(&["--private-memory", "--unshared-memory"]).unwrap_err(),
            "--private-memory and --unshared-memory are different modes"
        );
        assert_eq!(
            p(&["--unshared-memory", "--xtest-tas"]).unwrap_err(),
            "--unshared-memory and --xtest-tas are different modes"
        );
        assert_eq!(
            p(&["--partition-clear", "--private-memory"]).unwrap_err(),
            "--private-memory and a partition mode are different modes"
        );
        let o = p(&["--xtest-tas", "--private-memory", "--bench", "3"]).unwrap();
        assert_eq!(
            (o.xtest_tas, o.memory, o.bench),
            (true, Memory::Private, Some(3))
        );
    }

    #[test]
    fn hostile_host_is_a_mode_of_its_own() {
        let o = p(&["--hostile-host"]).unwrap();
        assert!(o.hostile_host);
        assert!(!p(&[]).unwrap().hostile_host);
        for other in [
            &["--hostile-host", "--xtest-tas"][..],
            &["--hostile-host", "--private-memory"][..],
            &["--hostile-host", "--service-fault"][..],
            &["--hostile-host", "--partition-clear"][..],
        ] {
            assert_eq!(
                p(other).unwrap_err(),
                "--hostile-host is a mode of its own",
                "{other:?}"
            );
        }
    }

    #[test]
    fn help_lists_every_exit_status() {
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        for (status, what) in [
            ("0", "every case passed"),
            ("1", "a case failed"),
            ("2", "a command line it does not accept"),
            ("4", "no TEE device"),
        ] {
            assert!(
                help.lines().any(|l| l
                    .trim_start()
                    .starts_with(&format!("{status}  "))
                    && l.contains(what)),
                "{status}: {help}"
            );
        }
        for o in [
            "--xtest-tas",
            "--partition-expect <NAME|none>",
            "-q, --quiet",
        ] {
            assert!(help.contains(o), "{o}: {help}");
        }
    }
}
