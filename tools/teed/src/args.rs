// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The command line.

use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use host_tee::supplicant::storage::fresh_dir;
use host_tee::supplicant::{StorageDir, StorageError, StorageQuota};
pub use tee_remote::Address;

/// The TEE the service owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tee {
    /// The userspace TEE (its built-in TAs).
    User,
    /// The host's OP-TEE through --tee-device: each VM is one TEE context
    /// of the service.
    Host,
}

impl Tee {
    /// The name the command line gives it (`user`, `host`).
    pub fn name(self) -> &'static str {
        match self {
            Tee::User => "user",
            Tee::Host => "host",
        }
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

/// The name of the default storage base: this, then random characters.
pub const STORAGE_PREFIX: &str = "tosfwd-teed-tee-storage-";

/// The storage directory of the service's VM `n`: a fresh private
/// directory in `base`, `vm-N-` and random characters (never an existing
/// path, even one a previous run left behind).
pub fn vm_storage(base: &Path, n: u64) -> Result<PathBuf, StorageError> {
    fresh_dir(base, &format!("vm-{n}-"))
}

/// tosfwd-teed: serves a TEE to VMMs (tosfwd-vmm --tee remote:ADDR), each
/// under the policy its credentials map to; the VMMs need no access to the
/// TEE device.
#[derive(Debug, Clone, Parser)]
#[command(name = "tosfwd-teed", version)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Where to listen (repeatable): unix:PATH or tcp:HOST:PORT, the
    /// address tosfwd-vmm's --tee remote:ADDR takes. A stale socket file
    /// (nobody listening) is replaced.
    #[arg(long, required = true, value_name = "ADDR", value_parser = clap::value_parser!(Address))]
    pub listen: Vec<Address>,
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
    /// storage is made (a fresh private directory per VM, vm-N-XXXXXX,
    /// removed when the VM goes); created 0700 if missing, refused if it
    /// is a symbolic link, another user's, or writable by its group or
    /// others [default: a fresh private directory in $TMPDIR].
    #[arg(long, value_name = "DIR")]
    pub tee_storage: Option<PathBuf>,
    /// With --tee host and a partition per VM: the most bytes each VM's
    /// secure storage may hold (the sum of its files' sizes); a write past
    /// it is answered TEE_ERROR_STORAGE_NO_SPACE [default: 67108864, 64 MiB].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub tee_storage_max_bytes: Option<u64>,
    /// With --tee host and a partition per VM: the most files and
    /// directories each VM's secure storage may hold [default: 4096].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub tee_storage_max_objects: Option<u64>,
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
    /// -v/-q: the log's level (-v: connections, VMs and their teardown).
    #[command(flatten)]
    pub verbosity: tosfwd_log::Verbosity,
}

/// The end of `--help`: who is served, the log, the exit status.
const AFTER_HELP: &str = "Unix peers are known by their credentials (SO_PEERCRED) and \
matched against the policy file's rules; without --policy, only the service's own user is \
accepted. TCP peers carry no credentials and are refused unless a rule names them (tcp = \
\"ADDR\" or \"any\"): do that only on a network you trust.

Log: one line per record on standard error, warnings by default; RUST_LOG takes LEVEL or \
MODULE=LEVEL directives (e.g. RUST_LOG=info, RUST_LOG=tee_remote=debug), -v/-q set the \
level over RUST_LOG's.

Exit status:
  0  stopped by SIGTERM or SIGINT (the Unix sockets removed)
  1  an error: the policy file, the TEE device, a socket that cannot be listened on
  2  a command line it does not accept (one line on standard error), as every tosfwd binary";

impl Args {
    /// Checks what clap cannot.
    pub fn check(&self) -> Result<(), String> {
        // The same socket twice (`unix:s.sock` and `unix:./s.sock` too):
        // binding the second would find the first and blame another
        // service.
        let key = |a: &Address| match a {
            Address::Unix(p) => Address::Unix(std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            Address::Tcp(_) => a.clone(),
        };
        for (i, a) in self.listen.iter().enumerate() {
            if self.listen[..i].iter().any(|b| key(b) == key(a)) {
                return Err(format!("--listen {a} given twice"));
            }
        }
        if self.tee == Tee::User {
            for (set, name) in [
                (self.tee_device.is_some(), "--tee-device"),
                (self.tee_shared, "--tee-shared"),
                (self.tee_storage.is_some(), "--tee-storage"),
                (self.tee_ta_dir.is_some(), "--tee-ta-dir"),
                (
                    self.tee_storage_max_bytes.is_some(),
                    "--tee-storage-max-bytes",
                ),
                (
                    self.tee_storage_max_objects.is_some(),
                    "--tee-storage-max-objects",
                ),
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
        if self.tee_shared && self.has_storage_quota() {
            return Err(
                "--tee-storage-max-bytes and --tee-storage-max-objects are for a partition per \
                 VM, not with --tee-shared"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// Whether a storage quota option is given.
    pub fn has_storage_quota(&self) -> bool {
        self.tee_storage_max_bytes.is_some() || self.tee_storage_max_objects.is_some()
    }

    /// The quota of each VM's secure storage: the options, or the defaults.
    pub fn storage_quota(&self) -> StorageQuota {
        StorageQuota::given_or_default(self.tee_storage_max_bytes, self.tee_storage_max_objects)
    }

    /// The directory the VMs' storage directories are made in: --tee-storage
    /// (made 0700 if missing; refused if it is a symbolic link, another
    /// user's, or writable by others), or a fresh private directory in
    /// $TMPDIR (never an existing path).
    pub fn storage_base(&self) -> Result<PathBuf, StorageError> {
        match &self.tee_storage {
            Some(dir) => StorageDir::open(dir).map(|_| dir.clone()),
            None => fresh_dir(&std::env::temp_dir(), STORAGE_PREFIX),
        }
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
    fn listen_addresses_are_the_vmms_and_bad_ones_say_what_is_wanted() {
        let listen = |v: &str| args(&["--listen", v]).map(|a| a.listen);
        assert_eq!(
            listen("unix:/run/t.sock").unwrap(),
            [Address::Unix("/run/t.sock".into())]
        );
        assert_eq!(
            listen("tcp:127.0.0.1:7000").unwrap(),
            [Address::Tcp("127.0.0.1:7000".into())]
        );
        assert_eq!(
            listen("tcp:localhost:7000").unwrap(),
            [Address::Tcp("localhost:7000".into())]
        );
        for (bad, want) in [
            ("unix:", "unix: needs a socket path (unix:PATH)"),
            ("tcp:7000", "tcp:7000: want tcp:HOST:PORT"),
            ("t.sock", "'t.sock': want unix:PATH or tcp:HOST:PORT"),
        ] {
            let e = tosfwd_log::usage_line(&listen(bad).unwrap_err());
            assert!(e.ends_with(want), "{bad}: {e}");
        }
    }

    #[test]
    fn the_same_listen_address_twice_is_named() {
        for (a, b) in [
            ("unix:/run/t.sock", "unix:/run/t.sock"),
            ("unix:t.sock", "unix:./t.sock"),
            ("tcp:127.0.0.1:7000", "tcp:127.0.0.1:7000"),
        ] {
            let e = args(&["--listen", a, "--listen", b])
                .unwrap()
                .check()
                .unwrap_err();
            assert_eq!(
                e,
                format!("--listen {} given twice", b.parse::<Address>().unwrap())
            );
        }
        args(&["--listen", "unix:/a", "--listen", "unix:/b"])
            .unwrap()
            .check()
            .unwrap();
    }

    #[test]
    fn help_lists_every_exit_status_and_the_tee_names_are_the_options() {
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        for (status, what) in [
            ("0", "stopped by SIGTERM"),
            ("1", "an error"),
            ("2", "a command line it does not accept"),
        ] {
            assert!(
                help.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{status}  ")) && l.contains(what)),
                "{status}: {help}"
            );
        }
        assert!(
            help.contains("RUST_LOG") && help.contains("-q, --quiet"),
            "{help}"
        );
        for t in [Tee::User, Tee::Host] {
            assert_eq!(Tee::from_str(t.name(), false), Ok(t));
        }
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
        assert_eq!(h.verbosity.verbose, 2);
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

    #[test]
    fn each_vms_storage_is_fresh_and_private_under_a_checked_base() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        let host = |v: &[&str]| {
            let mut all = vec!["--listen", "unix:/x", "--tee", "host"];
            all.extend_from_slice(v);
            args(&all).unwrap()
        };
        // The default base: fresh, private, not the old predictable name.
        let predictable =
            std::env::temp_dir().join(format!("tosfwd-teed-{}-tee-storage", std::process::id()));
        let base = host(&[]).storage_base().unwrap();
        assert_ne!(base, predictable);
        assert!(base
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(STORAGE_PREFIX));
        assert_eq!(mode(&base), 0o700);
        assert_ne!(host(&[]).storage_base().unwrap(), base, "never reused");

        // VM directories: fresh each time, even where a previous run (or
        // someone else) left a vm-1.
        let theirs = base.join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        symlink(&theirs, base.join("vm-1")).unwrap();
        let one = vm_storage(&base, 1).unwrap();
        let again = vm_storage(&base, 1).unwrap();
        for d in [&one, &again] {
            assert_eq!(d.parent(), Some(base.as_path()));
            assert!(d
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vm-1-"));
            assert!(std::fs::symlink_metadata(d).unwrap().is_dir());
            assert_eq!(mode(d), 0o700);
        }
        assert_ne!(one, again);
        assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);

        // A given base: checked.
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o757)).unwrap();
        let e = host(&["--tee-storage", open.to_str().unwrap()])
            .storage_base()
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("open: refused as the VM's secure storage: writable by its group or others (mode 0757; chmod go-w it)"), "{e}");
        let link = base.join("link");
        symlink(&theirs, &link).unwrap();
        let e = host(&["--tee-storage", link.to_str().unwrap()])
            .storage_base()
            .unwrap_err()
            .to_string();
        assert!(e.contains("it is a symbolic link"), "{e}");
        let made = base.join("made").join("here");
        assert_eq!(
            host(&["--tee-storage", made.to_str().unwrap()])
                .storage_base()
                .unwrap(),
            made
        );
        assert_eq!(mode(&made), 0o700, "made private");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_storage_quota_options_are_per_vm_and_host_only() {
        let a = args(&["--listen", "unix:/x", "--tee", "host"]).unwrap();
        assert_eq!(a.storage_quota(), StorageQuota::default());
        let a = args(&[
            "--listen",
            "unix:/x",
            "--tee",
            "host",
            "--tee-storage-max-bytes",
            "65536",
            "--tee-storage-max-objects",
            "8",
        ])
        .unwrap();
        a.check().unwrap();
        assert_eq!(
            a.storage_quota(),
            StorageQuota {
                max_bytes: 65536,
                max_objects: 8
            }
        );
        assert!(args(&["--listen", "unix:/x", "--tee-storage-max-objects", "0"]).is_err());
        let e = args(&["--listen", "unix:/x", "--tee-storage-max-bytes", "9"])
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(e, "--tee-storage-max-bytes applies to --tee host only");
        let e = args(&[
            "--listen",
            "unix:/x",
            "--tee",
            "host",
            "--tee-shared",
            "--tee-storage-max-objects",
            "9",
        ])
        .unwrap()
        .check()
        .unwrap_err();
        assert!(e.ends_with("not with --tee-shared"), "{e}");
    }
}
