// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The command line.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// The TEE the service owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tee {
    /// The userspace TEE (its built-in TAs).
    User,
    /// The host's OP-TEE through --tee-device: each VM is one TEE context
    /// of the service.
    Host,
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// TCP on this address.
    Tcp(std::net::SocketAddr),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// `unix:PATH` or `tcp:ADDR:PORT` (an IP address: the service binds it).
pub fn parse_listen(s: &str) -> Result<Listen, String> {
    if let Some(p) = s.strip_prefix("unix:") {
        if p.is_empty() {
            return Err("unix: needs a socket path".to_owned());
        }
        Ok(Listen::Unix(PathBuf::from(p)))
    } else if let Some(a) = s.strip_prefix("tcp:") {
        a.parse()
            .map(Listen::Tcp)
            .map_err(|_| format!("tcp:{a}: want an IP address and a port, e.g. tcp:0.0.0.0:7000"))
    } else {
        Err(format!("'{s}': want unix:PATH or tcp:ADDR:PORT"))
    }
}

/// Permission bits in octal, at most 0777.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("'{s}': want permission bits in octal, e.g. 0660"))
}

/// The host TEE device by default.
pub const DEFAULT_TEE_DEVICE: &str = "/dev/tee0";

/// tosfwd-teed: serves a TEE to VMMs (tosfwd-vmm --tee remote:ADDR), each
/// under the policy its credentials map to; the VMMs need no access to the
/// TEE device.
#[derive(Debug, Clone, Parser)]
#[command(name = "tosfwd-teed", version)]
#[command(
    after_help = "Unix peers are known by their credentials (SO_PEERCRED) and matched \
against the policy file's rules; without --policy, only the service's own user is accepted. \
TCP peers carry no credentials and are refused unless a rule names them (tcp = \"ADDR\" or \
\"any\"): do that only on a network you trust. The log level is TOSFWD_TEED_LOG (off, error, \
warn, info, debug, trace; warn by default), raised by -v."
)]
pub struct Args {
    /// Where to listen: unix:PATH or tcp:ADDR:PORT (repeatable). A stale
    /// socket file (nobody listening) is replaced.
    #[arg(long, required = true, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Vec<Listen>,
    /// The TEE to serve.
    #[arg(long, value_enum, default_value_t = Tee::User)]
    pub tee: Tee,
    /// The host's TEE device for --tee host [default: /dev/tee0].
    #[arg(long, value_name = "PATH")]
    pub tee_device: Option<PathBuf>,
    /// With --tee host and an OP-TEE that serves VMs apart
    /// (NS-virtualization, TEE_GEN_CAP_VM): keep every VM in the host's
    /// partition instead of one of its own (they then share TA instances
    /// and secure storage).
    #[arg(long)]
    pub tee_shared: bool,
    /// With --tee host and a partition per VM: where each VM's secure
    /// storage is made (a directory per VM, removed when the VM goes)
    /// [default: a temporary directory].
    #[arg(long, value_name = "DIR")]
    pub tee_storage: Option<PathBuf>,
    /// With --tee host and a partition per VM: where the TAs are loaded
    /// from [default: /lib/optee_armtz].
    #[arg(long, value_name = "DIR")]
    pub tee_ta_dir: Option<PathBuf>,
    /// The policy file (TOML; see the README): who may connect, which TAs,
    /// login treatment, quotas.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Authenticated peers served at once (a thread each); more are
    /// refused.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_connections: u32,
    /// Connections waiting for their greeting at once (no thread, a few
    /// hundred bytes each), at most a quarter of them of peers the policy
    /// refuses; more are closed at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_unauthenticated: u32,
    /// Seconds a peer has for its whole greeting.
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=300))]
    pub greeting_timeout: u64,
    /// Seconds an authenticated peer may send nothing before it is
    /// dropped, its VMs torn down as if it had gone (0: never). A guest
    /// that keeps a session open while idle longer loses it.
    #[arg(long, default_value_t = 3600, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=30 * 24 * 3600))]
    pub idle_timeout: u64,
    /// The Unix sockets' permissions, in octal: connecting takes write
    /// permission (e.g. 0660 with --socket-group for a group of VMM users;
    /// the policy then decides who is served).
    #[arg(long, default_value = "0600", value_name = "MODE", value_parser = parse_mode)]
    pub socket_mode: u32,
    /// The Unix sockets' group: a name or a number [default: the
    /// service's].
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// More log: -v info (connections), -vv debug, -vvv trace.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Args {
    /// Checks what clap cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.tee == Tee::User {
            for (set, name) in [
                (self.tee_device.is_some(), "--tee-device"),
                (self.tee_shared, "--tee-shared"),
                (self.tee_storage.is_some(), "--tee-storage"),
                (self.tee_ta_dir.is_some(), "--tee-ta-dir"),
            ] {
                if set {
                    return Err(format!("{name} applies to --tee host only"));
                }
            }
        }
        if self.tee_shared && (self.tee_storage.is_some() || self.tee_ta_dir.is_some()) {
            return Err(
                "--tee-storage and --tee-ta-dir are for a partition per VM, not with --tee-shared"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// The service's bounds on connections.
    pub fn limits(&self) -> crate::listen::Limits {
        crate::listen::Limits {
            max_connections: self.max_connections,
            max_unauthenticated: self.max_unauthenticated,
            greeting_timeout: std::time::Duration::from_secs(self.greeting_timeout),
            idle_timeout: (self.idle_timeout > 0)
                .then(|| std::time::Duration::from_secs(self.idle_timeout)),
        }
    }

    /// The TEE device with --tee host.
    pub fn tee_device(&self) -> Option<PathBuf> {
        (self.tee == Tee::Host).then(|| {
            self.tee_device
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_TEE_DEVICE))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(["tosfwd-teed"].iter().chain(v))
    }

    #[test]
    fn listen_addresses_parse_and_bad_ones_say_what_is_wanted() {
        assert_eq!(
            parse_listen("unix:/run/t.sock"),
            Ok(Listen::Unix("/run/t.sock".into()))
        );
        assert_eq!(
            parse_listen("tcp:127.0.0.1:7000"),
            Ok(Listen::Tcp("127.0.0.1:7000".parse().unwrap()))
        );
        assert_eq!(
            parse_listen("unix:").unwrap_err(),
            "unix: needs a socket path"
        );
        assert!(parse_listen("tcp:localhost:7000")
            .unwrap_err()
            .starts_with("tcp:localhost:7000: want an IP address"));
        assert_eq!(
            parse_listen("/run/t.sock").unwrap_err(),
            "'/run/t.sock': want unix:PATH or tcp:ADDR:PORT"
        );
    }

    #[test]
    fn a_listener_is_required_and_the_user_tee_is_the_default() {
        assert!(args(&[]).is_err());
        let a = args(&["--listen", "unix:/x", "--listen", "tcp:0.0.0.0:1"]).unwrap();
        assert_eq!(a.listen.len(), 2);
        assert_eq!(a.tee, Tee::User);
        assert_eq!(a.tee_device(), None);
        assert_eq!(a.max_connections, 64);
        assert_eq!(
            a.limits(),
            crate::listen::Limits {
                max_connections: 64,
                max_unauthenticated: 32,
                greeting_timeout: std::time::Duration::from_secs(10),
                idle_timeout: Some(std::time::Duration::from_secs(3600)),
            }
        );
        assert_eq!((a.socket_mode, a.socket_group.as_deref()), (0o600, None));
        a.check().unwrap();
        let h = args(&["--listen", "unix:/x", "--tee", "host", "-vv"]).unwrap();
        assert_eq!(h.tee_device(), Some(PathBuf::from("/dev/tee0")));
        assert_eq!(h.verbose, 2);
        let e = args(&["--listen", "unix:/x", "--tee-device", "/dev/tee1"]).unwrap();
        assert_eq!(
            e.check().unwrap_err(),
            "--tee-device applies to --tee host only"
        );
    }

    #[test]
    fn connection_bounds_and_socket_access_parse() {
        let a = args(&[
            "--listen",
            "unix:/x",
            "--max-unauthenticated",
            "8",
            "--greeting-timeout",
            "3",
            "--idle-timeout",
            "0",
            "--socket-mode",
            "660",
            "--socket-group",
            "kvm",
        ])
        .unwrap();
        let l = a.limits();
        assert_eq!(
            (
                l.max_unauthenticated,
                l.greeting_timeout.as_secs(),
                l.idle_timeout
            ),
            (8, 3, None)
        );
        assert_eq!(
            (a.socket_mode, a.socket_group.as_deref()),
            (0o660, Some("kvm"))
        );
        assert_eq!(
            parse_mode("0999").unwrap_err(),
            "'0999': want permission bits in octal, e.g. 0660"
        );
        assert!(parse_mode("1777").is_err());
        for bad in [
            ["--greeting-timeout", "0"],
            ["--max-unauthenticated", "0"],
            ["--socket-mode", "rw"],
        ] {
            assert!(
                args(&["--listen", "unix:/x", bad[0], bad[1]]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn partition_options_are_for_the_host_tee_without_sharing() {
        let a = args(&[
            "--listen",
            "unix:/x",
            "--tee",
            "host",
            "--tee-storage",
            "/var/lib/teed",
            "--tee-ta-dir",
            "/srv/tas",
        ])
        .unwrap();
        assert_eq!(a.check(), Ok(()));
        for (flag, value) in [
            ("--tee-storage", Some("/s")),
            ("--tee-ta-dir", Some("/t")),
            ("--tee-shared", None),
        ] {
            let mut v = vec!["--listen", "unix:/x", flag];
            v.extend(value);
            assert_eq!(
                args(&v).unwrap().check().unwrap_err(),
                format!("{flag} applies to --tee host only")
            );
        }
        let e = args(&[
            "--listen",
            "unix:/x",
            "--tee",
            "host",
            "--tee-shared",
            "--tee-storage",
            "/s",
        ])
        .unwrap()
        .check()
        .unwrap_err();
        assert!(
            e.starts_with("--tee-storage and --tee-ta-dir are for a partition"),
            "{e}"
        );
    }
}
