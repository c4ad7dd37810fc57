// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The command line, and the machine configuration it describes.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use host_tee::supplicant::StorageQuota;
use optee_mediator::utee::ta::{DEVICE_PTA_UUID, HELLO_UUID, MEMORY_UUID};
use optee_mediator::Uuid;
use tee_remote::Address;

use crate::hostile::{self, Forgeries};
use crate::layout;

/// The longest kernel command line arm64 Linux keeps (COMMAND_LINE_SIZE,
/// 2048 with its NUL): it cuts a longer one silently.
pub const MAX_CMDLINE: usize = 2047;

/// The instruction the guest's OP-TEE driver calls the Trusted OS with
/// (the `method` of the device tree's `linaro,optee-tz` node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Conduit {
    /// `smc #0` (trapped by KVM: HCR_EL2.TSC).
    Smc,
    /// `hvc #0`.
    Hvc,
}

impl Conduit {
    /// The device tree's `method` string.
    pub fn method(self) -> &'static str {
        match self {
            Conduit::Smc => "smc",
            Conduit::Hvc => "hvc",
        }
    }
}

/// Who serves the supplicant requests of a VM's own OP-TEE partition
/// (`--tee-supplicant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TeeSupplicant {
    /// This VMM: TAs from --tee-ta-dir, secure storage in --tee-storage;
    /// no TA sockets, no supplicant plugins.
    #[default]
    Vmm,
    /// The guest's own tee-supplicant, reached through the guest's calls:
    /// TAs, secure storage, TA sockets and plugins in the guest's world.
    Guest,
}

/// The TEE that answers the guest's OP-TEE calls behind the mediator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tee {
    /// The userspace TEE in this VMM (its built-in TAs only).
    User,
    /// The host's OP-TEE through --tee-device: this VMM is one client of
    /// the host's TEE driver, one TEE context per VM.
    Host,
    /// A TEE service (tosfwd-teed) at this address: a Unix socket path or
    /// HOST:PORT.
    Remote(Address),
}

/// `user`, `host` or `remote:ADDR`, ADDR as tosfwd-teed's --listen takes
/// it ([`Address`]: `unix:PATH`, `tcp:HOST:PORT`).
pub fn parse_tee(s: &str) -> Result<Tee, String> {
    match s {
        "user" => Ok(Tee::User),
        "host" => Ok(Tee::Host),
        _ => match s.strip_prefix("remote:") {
            Some(a) => a.parse().map(Tee::Remote),
            None => Err(format!(
                "'{s}': want user, host or remote:ADDR (ADDR: unix:PATH or tcp:HOST:PORT)"
            )),
        },
    }
}

/// The end of `--help`: the host TEE's sharing, the log, the exit status.
const AFTER_HELP: &str = "With --tee host and an OP-TEE without NS virtualization, OP-TEE sees \
one client, the host: every VM on it (and the host's own TEE clients) shares its TA \
instances and secure storage, and TAs see the VMM's host identity (every session is opened \
with the PUBLIC login). So a second VM on the same TEE device is refused unless each VM \
involved was started with --tee-shared (an flock(2) on /run/tosfwd-vmm/DEVICE.lock, such as \
tee0.lock for /dev/tee0, held while the VMM runs).

Log: one line per record on standard error, warnings by default; RUST_LOG takes LEVEL or \
MODULE=LEVEL directives (e.g. RUST_LOG=info, RUST_LOG=host_tee=debug), -v/-q set the level \
over RUST_LOG's.

Exit status:
  0  the guest powered off (PSCI SYSTEM_OFF)
  1  an error: the VM could not be built or run, or the TEE could not be reached
  2  a command line it does not accept (one line on standard error), as every tosfwd binary
  3  the guest reset (a panic with panic=-1) or stopped with another system event";

/// The host TEE device used when --tee-device is not given.
pub const DEFAULT_TEE_DEVICE: &str = "/dev/tee0";

/// A small arm64 KVM VMM: boots a Linux Image with an initramfs on an
/// in-kernel GICv3, a 16550 console and PSCI, and answers the guest's
/// OP-TEE calls (forwarded by KVM's SMCCC filter) with the optee-mediator
/// library and its userspace TEE, the host's OP-TEE (--tee host) or a TEE
/// service in another process (--tee remote:ADDR).
#[derive(Debug, Clone, Parser)]
#[command(name = "tosfwd-vmm", version)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// -v/-q: the log's level.
    #[command(flatten)]
    pub verbosity: tosfwd_log::Verbosity,
    /// The guest kernel: an arm64 Linux Image (arch/arm64/boot/Image).
    #[arg(short, long)]
    pub kernel: PathBuf,
    /// An initramfs (cpio, optionally compressed as the kernel supports).
    #[arg(short, long)]
    pub initrd: Option<PathBuf>,
    /// Guest RAM in MiB.
    #[arg(short, long, default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(layout::MIN_MEM_MIB..=layout::MAX_MEM_MIB))]
    pub memory: u64,
    /// Number of vCPUs.
    #[arg(short = 'c', long, default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=layout::MAX_VCPUS as i64))]
    pub vcpus: u8,
    /// Create a protected VM (pKVM's KVM_VM_TYPE_ARM_PROTECTED: a host
    /// booted with kvm-arm.mode=protected). Its memory is the guest's own:
    /// the mediator reaches only what the guest shares with the host, and
    /// a call whose memory the guest kept private is answered with the
    /// ABI's error. The guest's OP-TEE driver must share what it hands to
    /// the TEE (patches/guest-VERSION).
    #[arg(long)]
    pub protected: bool,
    /// How the guest calls OP-TEE: the `method` of firmware/optee.
    #[arg(long, value_enum, default_value_t = Conduit::Smc)]
    pub conduit: Conduit,
    /// The kernel command line (replaces the default, which names the
    /// console: see --append to add to it).
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Words appended to the kernel command line.
    #[arg(long, default_value = "")]
    pub append: String,
    /// A trusted application the guest may open sessions with (repeatable;
    /// default: the userspace TEE's built-in TAs, or any TA with --tee
    /// host). Others are refused by the
    /// mediator's policy with TEEC_ERROR_ACCESS_DENIED.
    #[arg(long = "allow-ta", value_name = "UUID", value_parser = parse_uuid)]
    pub allow_ta: Vec<Uuid>,
    /// Let the guest open any TA (no policy filter; the default with
    /// --tee host).
    #[arg(long, conflicts_with = "allow_ta")]
    pub allow_any_ta: bool,
    /// Which TEE answers the guest's OP-TEE calls: `user`, this VMM's
    /// userspace TEE; `host`, the host's OP-TEE through --tee-device (with
    /// a non-virtualized OP-TEE, VMs share its TA instances and secure
    /// storage: see --tee-shared); `remote:ADDR`, the TEE service
    /// (tosfwd-teed) at ADDR, unix:PATH or tcp:HOST:PORT as its --listen
    /// takes it (a bare /PATH or HOST:PORT is taken too), which
    /// applies its own policy (this VMM then allows any TA unless
    /// --allow-ta narrows it).
    #[arg(long, value_name = "user|host|remote:ADDR", value_parser = parse_tee,
          default_value = "user")]
    pub tee: Tee,
    /// The host's TEE device for --tee host [default: /dev/tee0].
    #[arg(long, value_name = "PATH")]
    pub tee_device: Option<PathBuf>,
    /// With --tee host: accept sharing the TEE with other VMs started with
    /// --tee-shared (they share TA instances and secure storage). Without
    /// it, a VM is refused while another VM uses the same TEE device;
    /// unless the TEE serves VMs apart (an OP-TEE built with
    /// NS-virtualization, TEE_GEN_CAP_VM): then the VM gets a partition of
    /// its own, and --tee-shared keeps it in the host's instead.
    #[arg(long)]
    pub tee_shared: bool,
    /// With --tee host and a partition of the VM's own: the directory of
    /// the VM's secure storage (OP-TEE's REE file system, served by this
    /// VMM; created 0700 if missing). Refused if it is a symbolic link,
    /// another user's, or writable by its group or others. Default: a
    /// fresh private directory in $TMPDIR (never an existing one), removed
    /// when the VMM exits.
    #[arg(long, value_name = "DIR")]
    pub tee_storage: Option<PathBuf>,
    /// With --tee host and a partition of the VM's own: the most bytes its
    /// secure storage may hold (the sum of its files' sizes); a write past
    /// it is answered TEE_ERROR_STORAGE_NO_SPACE [default: 67108864, 64 MiB].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub tee_storage_max_bytes: Option<u64>,
    /// With --tee host and a partition of the VM's own: the most files and
    /// directories its secure storage may hold (one file per persistent
    /// object) [default: 4096].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub tee_storage_max_objects: Option<u64>,
    /// With --tee host and a partition of the VM's own: where the TAs the
    /// VM opens are loaded from [default: /lib/optee_armtz].
    #[arg(long, value_name = "DIR")]
    pub tee_ta_dir: Option<PathBuf>,
    /// With --tee host and a partition of the VM's own, or --tee
    /// remote:ADDR: who serves the partition's supplicant requests
    /// (loading TAs, secure storage's files, TA sockets, supplicant
    /// plugins). `vmm`: this VMM, as --tee-ta-dir and --tee-storage say,
    /// or the TEE service; no sockets or plugins. `guest`:
    /// the guest's own tee-supplicant, which must run in the guest (a
    /// request waits for it; this VMM warns after 10 s): TAs, storage,
    /// sockets and plugins in the guest's world, as on a machine of its
    /// own. The partition's storage is then the guest's to keep.
    #[arg(long, value_enum, value_name = "WHO", default_value_t)]
    pub tee_supplicant: TeeSupplicant,
    /// With --tee host or remote:ADDR: how long a vCPU whose call is
    /// still in the TEE waits for the result (in this VMM, or in the TEE
    /// service, which grants up to its policy's max_call_wait_us) before
    /// the guest may take its interrupts (OP-TEE's RPC_FOREIGN_INTR), in
    /// microseconds. Longer means fewer guest exits per call and later
    /// interrupts on that vCPU; 0 answers at once, and the guest spins
    /// through RETURN_FROM_RPC until the result is in [default: 1000: a
    /// call shorter than that costs the guest one exit, and an interrupt
    /// waits at most a quarter of a 250 Hz tick; docs/measurements.md;
    /// with remote:ADDR and more than one vCPU, 0: the service's round
    /// trip holds up the VM's other calls].
    #[arg(long, value_name = "US",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_TEE_WAIT_US)))]
    pub tee_wait_us: Option<u32>,
    /// With --tee remote:unix:PATH: give the TEE service this VM's guest
    /// RAM (its memfd, passed on the socket), so that memory parameters go
    /// by reference and nothing is copied. The service can then read and
    /// write all of the guest's memory, not only what each call passes:
    /// only for a service trusted that far (without it, each call's
    /// buffers go by value). Not for a protected VM, whose memory is its
    /// own.
    #[arg(long)]
    pub tee_share_memory: bool,
    /// A TEST TOOL: make this VMM lie to its own guest, as a hostile host
    /// would, to test the guest's OP-TEE driver (`all`, or forgery names
    /// separated by commas: tools/vmm/src/hostile/mod.rs). The guest's client
    /// marks one call per forgery (tosfwd-tee-client --hostile-host, which
    /// reads the list from the guest's command line, where this VMM
    /// appends `tosfwd.hostile=...`); every other call is answered as
    /// usual. Never for anything but testing a guest kernel.
    #[arg(long, value_name = "FORGERY[,...]|all", value_parser = hostile::parse_forgeries)]
    pub hostile_host: Option<Forgeries>,
}

/// --tee-wait-us by default. On hardware an OP-TEE call is tens of
/// microseconds and a wake-up a few, so waiting up to a millisecond ends
/// nearly every call with the guest's one exit, where answering at once
/// makes the guest spin through an exit per RETURN_FROM_RPC while its vCPU
/// does nothing else; a millisecond is a quarter of a 250 Hz tick, the
/// most an interrupt of that vCPU is delayed. Under the bench's emulator a
/// wake-up costs more than the exits it saves (docs/measurements.md): the
/// choice is for real machines, the exits are counted in both.
pub const DEFAULT_TEE_WAIT_US: u32 = 1000;

/// The most --tee-wait-us accepts: one 100 Hz tick.
pub const MAX_TEE_WAIT_US: u32 = 10_000;

impl Args {
    /// The kernel command line: the default (or --cmdline) plus --append,
    /// plus the forgeries' list with --hostile-host.
    pub fn kernel_cmdline(&self) -> String {
        let mut line = self.cmdline.clone().unwrap_or_else(layout::default_cmdline);
        let extra = self.append.trim();
        if !extra.is_empty() {
            line = format!("{line} {extra}");
        }
        // The hostile host tells the guest's client which forgeries come.
        if let Some(f) = &self.hostile_host {
            line = format!("{line} {}", hostile::cmdline_word(&f.0));
        }
        line
    }

    /// Whether a storage quota option is given.
    pub fn has_storage_quota(&self) -> bool {
        self.tee_storage_max_bytes.is_some() || self.tee_storage_max_objects.is_some()
    }

    /// The quota of the VM's secure storage: the options, or the defaults.
    pub fn storage_quota(&self) -> StorageQuota {
        StorageQuota::given_or_default(self.tee_storage_max_bytes, self.tee_storage_max_objects)
    }

    /// Checks what clap cannot: the command line the guest gets (default or
    /// --cmdline, plus --append) must fit arm64 Linux's COMMAND_LINE_SIZE.
    pub fn check(&self) -> Result<(), String> {
        if self.tee != Tee::Host {
            if self.tee_device.is_some() {
                return Err("--tee-device applies to --tee host only".to_owned());
            }
            if self.tee_shared {
                return Err("--tee-shared applies to --tee host only".to_owned());
            }
            if self.tee_wait_us.is_some() && !matches!(self.tee, Tee::Remote(_)) {
                return Err(
                    "--tee-wait-us applies to --tee host and --tee remote:ADDR only".to_owned(),
                );
            }
            if self.tee_storage.is_some() {
                return Err("--tee-storage applies to --tee host only".to_owned());
            }
            if self.tee_ta_dir.is_some() {
                return Err("--tee-ta-dir applies to --tee host only".to_owned());
            }
            if self.tee_supplicant != TeeSupplicant::Vmm && !matches!(self.tee, Tee::Remote(_)) {
                return Err(
                    "--tee-supplicant applies to --tee host and --tee remote:ADDR only".to_owned(),
                );
            }
            if self.has_storage_quota() {
                return Err(
                    "--tee-storage-max-bytes and --tee-storage-max-objects apply to --tee host only"
                        .to_owned(),
                );
            }
        }
        if self.tee_share_memory {
            if !matches!(&self.tee, Tee::Remote(Address::Unix(_))) {
                return Err("--tee-share-memory applies to --tee remote:unix:PATH only".to_owned());
            }
            if self.protected {
                return Err(
                    "--tee-share-memory is not for a protected VM: its memory is its own"
                        .to_owned(),
                );
            }
        }
        if self.tee_supplicant == TeeSupplicant::Guest {
            if self.tee_shared {
                return Err(
                    "--tee-supplicant guest needs a partition of the VM's own, not --tee-shared \
                     (the host's tee-supplicant serves the host's partition)"
                        .to_owned(),
                );
            }
            if self.tee_storage.is_some() || self.tee_ta_dir.is_some() || self.has_storage_quota() {
                return Err(
                    "--tee-storage, --tee-ta-dir and --tee-storage-max-* are for --tee-supplicant \
                     vmm: with guest, the guest's tee-supplicant keeps its own TAs and storage"
                        .to_owned(),
                );
            }
        }
        if self.tee_shared && self.has_storage_quota() {
            return Err(
                "--tee-storage-max-bytes and --tee-storage-max-objects are for a partition of \
                 the VM's own, not with --tee-shared (the host's tee-supplicant serves the \
                 host's partition)"
                    .to_owned(),
            );
        }
        if self.tee_shared && (self.tee_storage.is_some() || self.tee_ta_dir.is_some()) {
            return Err(
                "--tee-storage and --tee-ta-dir are for a partition of the VM's own, not with \
                 --tee-shared (the host's tee-supplicant serves the host's partition)"
                    .to_owned(),
            );
        }
        let len = self.kernel_cmdline().len();
        if len > MAX_CMDLINE {
            return Err(format!(
                "the kernel command line is {len} bytes, more than the {MAX_CMDLINE} arm64 Linux \
                 keeps (COMMAND_LINE_SIZE): shorten --cmdline or --append"
            ));
        }
        Ok(())
    }

    /// The TAs the guest may open; `None` for any. By default the
    /// userspace TEE's built-in TAs, or any TA the host's OP-TEE can load
    /// with --tee host.
    pub fn allowed_tas(&self) -> Option<Vec<Uuid>> {
        if self.allow_any_ta {
            None
        } else if !self.allow_ta.is_empty() {
            Some(self.allow_ta.clone())
        } else {
            match self.tee {
                Tee::User => Some(vec![HELLO_UUID, MEMORY_UUID, DEVICE_PTA_UUID]),
                Tee::Host | Tee::Remote(_) => None,
            }
        }
    }

    /// How long a vCPU waits for the host TEE's result before answering
    /// FOREIGN_INTR (--tee-wait-us).
    pub fn tee_wait(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.tee_wait_us.unwrap_or(DEFAULT_TEE_WAIT_US).into())
    }

    /// How long the TEE service waits for a call before answering
    /// FOREIGN_INTR (--tee remote:ADDR): --tee-wait-us if given; by
    /// default as with --tee host for one vCPU, none for more. The
    /// service's round trip is made under the VM's mediator lock, so its
    /// wait would hold up the other vCPUs' calls; one vCPU has none.
    pub fn remote_call_wait(&self) -> std::time::Duration {
        match self.tee_wait_us {
            Some(us) => std::time::Duration::from_micros(us.into()),
            None if self.vcpus == 1 => self.tee_wait(),
            None => std::time::Duration::ZERO,
        }
    }

    /// The host's TEE device with --tee host (None for the userspace TEE).
    pub fn host_tee_device(&self) -> Option<PathBuf> {
        match self.tee {
            Tee::User | Tee::Remote(_) => None,
            Tee::Host => Some(
                self.tee_device
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_TEE_DEVICE)),
            ),
        }
    }

    /// Guest RAM in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory << 20
    }
}

/// Parses a UUID in its RFC 4122 text form (8-4-4-4-12 hex digits).
pub fn parse_uuid(s: &str) -> Result<Uuid, String> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return Err(format!(
            "'{s}' is not a UUID (want 8-4-4-4-12 hexadecimal digits)"
        ));
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let byte = hex.get(2 * i..2 * i + 2).unwrap_or("");
        *o = u8::from_str_radix(byte, 16)
            .map_err(|_| format!("'{s}' is not a UUID: '{byte}' is not hexadecimal"))?;
    }
    Ok(Uuid(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("tosfwd-vmm").chain(v.iter().copied()))
    }

    #[test]
    fn defaults_are_one_vcpu_256_mib_smc_and_the_builtin_tas() {
        let a = parse(&["--kernel", "Image"]).unwrap();
        assert_eq!((a.vcpus, a.memory, a.conduit), (1, 256, Conduit::Smc));
        assert_eq!(a.memory_bytes(), 256 << 20);
        assert_eq!(a.initrd, None);
        assert_eq!(
            a.allowed_tas(),
            Some(vec![HELLO_UUID, MEMORY_UUID, DEVICE_PTA_UUID])
        );
        assert_eq!(a.kernel_cmdline(), layout::default_cmdline());
    }

    #[test]
    fn every_option_parses() {
        let a = parse(&[
            "-k",
            "Image",
            "-i",
            "rd.cpio",
            "-m",
            "512",
            "-c",
            "2",
            "--conduit",
            "hvc",
            "--cmdline",
            "console=ttyS0",
            "--append",
            " quiet ",
            "--allow-ta",
            "8aaaf200-2450-11e4-abe2-0002a5d5c51b",
        ])
        .unwrap();
        assert_eq!(a.initrd.as_deref(), Some(std::path::Path::new("rd.cpio")));
        assert_eq!((a.vcpus, a.memory, a.conduit), (2, 512, Conduit::Hvc));
        assert_eq!(a.kernel_cmdline(), "console=ttyS0 quiet");
        assert_eq!(a.allowed_tas(), Some(vec![HELLO_UUID]));
        assert_eq!(Conduit::Hvc.method(), "hvc");
    }

    #[test]
    fn the_tee_is_the_userspace_one_unless_told_and_host_defaults_to_tee0() {
        let a = parse(&["-k", "I"]).unwrap();
        assert_eq!((a.tee.clone(), a.tee_shared), (Tee::User, false));
        assert_eq!(a.host_tee_device(), None);
        let a = parse(&["-k", "I", "--tee", "host"]).unwrap();
        assert_eq!(a.tee, Tee::Host);
        assert_eq!(a.check(), Ok(()));
        assert_eq!(
            a.host_tee_device().as_deref(),
            Some(std::path::Path::new("/dev/tee0"))
        );
        // Any TA the host's OP-TEE can load, unless --allow-ta says which.
        assert_eq!(a.allowed_tas(), None);
        let a = parse(&[
            "-k",
            "I",
            "--tee",
            "host",
            "--tee-device",
            "/dev/tee1",
            "--tee-shared",
            "--allow-ta",
            "8aaaf200-2450-11e4-abe2-0002a5d5c51b",
        ])
        .unwrap();
        assert_eq!(a.check(), Ok(()));
        assert!(a.tee_shared);
        assert_eq!(
            a.host_tee_device().as_deref(),
            Some(std::path::Path::new("/dev/tee1"))
        );
        assert_eq!(a.allowed_tas(), Some(vec![HELLO_UUID]));
        assert!(parse(&["-k", "I", "--tee", "host", "--tee-device"]).is_err());
        assert!(parse(&["-k", "I", "--tee", "xen"]).is_err());
    }

    #[test]
    fn a_partitions_storage_and_ta_dir_are_host_options_without_sharing() {
        let a = parse(&[
            "-k",
            "I",
            "--tee",
            "host",
            "--tee-storage",
            "/var/lib/vm1/tee",
            "--tee-ta-dir",
            "/srv/tas",
        ])
        .unwrap();
        assert_eq!(a.check(), Ok(()));
        assert_eq!(
            a.tee_storage.as_deref(),
            Some(std::path::Path::new("/var/lib/vm1/tee"))
        );
        assert_eq!(
            a.tee_ta_dir.as_deref(),
            Some(std::path::Path::new("/srv/tas"))
        );
        for (v, e) in [
            (
                &["-k", "I", "--tee-storage", "/s"][..],
                "--tee-storage applies to --tee host only",
            ),
            (
                &["-k", "I", "--tee-ta-dir", "/t"][..],
                "--tee-ta-dir applies to --tee host only",
            ),
        ] {
            assert_eq!(parse(v).unwrap().check().unwrap_err(), e);
        }
        let e = parse(&[
            "-k",
            "I",
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
    fn the_storage_quota_is_the_options_or_the_defaults() {
        let d = StorageQuota::default();
        assert_eq!(
            (d.max_bytes, d.max_objects),
            (64 << 20, 4096),
            "the README's defaults"
        );
        let a = parse(&["-k", "I", "--tee", "host"]).unwrap();
        assert_eq!(a.storage_quota(), d);
        let a = parse(&[
            "-k",
            "I",
            "--tee",
            "host",
            "--tee-storage-max-bytes",
            "1048576",
            "--tee-storage-max-objects",
            "16",
        ])
        .unwrap();
        assert_eq!(a.check(), Ok(()));
        assert_eq!(
            a.storage_quota(),
            StorageQuota {
                max_bytes: 1 << 20,
                max_objects: 16
            }
        );
        let a = parse(&["-k", "I", "--tee", "host", "--tee-storage-max-objects", "9"]).unwrap();
        assert_eq!(a.storage_quota().max_bytes, d.max_bytes);
        for bad in ["0", "-1", "1M", ""] {
            assert!(
                parse(&["-k", "I", "--tee", "host", "--tee-storage-max-bytes", bad]).is_err(),
                "{bad}"
            );
        }
        let e = parse(&["-k", "I", "--tee-storage-max-bytes", "5"])
            .unwrap()
            .check()
            .unwrap_err();
        assert!(e.ends_with("apply to --tee host only"), "{e}");
        let e = parse(&[
            "-k",
            "I",
            "--tee",
            "host",
            "--tee-shared",
            "--tee-storage-max-objects",
            "5",
        ])
        .unwrap()
        .check()
        .unwrap_err();
        assert!(e.contains("not with --tee-shared"), "{e}");
    }

    #[test]
    fn the_guests_own_supplicant_is_for_a_partition_of_its_own_with_no_vmm_storage() {
        let a = parse(&["-k", "I", "--tee", "host"]).unwrap();
        assert_eq!(a.tee_supplicant, TeeSupplicant::Vmm);
        let a = parse(&["-k", "I", "--tee", "host", "--tee-supplicant", "guest"]).unwrap();
        assert_eq!(a.tee_supplicant, TeeSupplicant::Guest);
        assert_eq!(a.check(), Ok(()));
        let refused = |v: &[&str]| parse(v).unwrap().check().unwrap_err();
        let e = refused(&["-k", "I", "--tee-supplicant", "guest"]);
        assert_eq!(
            e,
            "--tee-supplicant applies to --tee host and --tee remote:ADDR only"
        );
        // Through the TEE service: it relays the partition's requests.
        let a = parse(&[
            "-k",
            "I",
            "--tee",
            "remote:unix:/run/t.sock",
            "--tee-supplicant",
            "guest",
        ])
        .unwrap();
        assert_eq!(a.check(), Ok(()));
        let e = refused(&[
            "-k",
            "I",
            "--tee",
            "host",
            "--tee-supplicant",
            "guest",
            "--tee-shared",
        ]);
        assert!(e.contains("needs a partition of the VM's own"), "{e}");
        for extra in [
            ["--tee-storage", "/tmp/x"],
            ["--tee-ta-dir", "/tmp/x"],
            ["--tee-storage-max-bytes", "5"],
        ] {
            let mut v = vec!["-k", "I", "--tee", "host", "--tee-supplicant", "guest"];
            v.extend(extra);
            let e = refused(&v);
            assert!(e.contains("are for --tee-supplicant vmm"), "{extra:?}: {e}");
        }
        assert!(parse(&["-k", "I", "--tee-supplicant", "host"]).is_err());
    }

    #[test]
    fn a_remote_tee_is_a_socket_path_or_host_port_and_takes_no_host_options() {
        let a = parse(&["-k", "I", "--tee", "remote:/run/tosfwd-teed.sock"]).unwrap();
        assert_eq!(
            a.tee,
            Tee::Remote(Address::Unix("/run/tosfwd-teed.sock".into()))
        );
        assert_eq!(a.check(), Ok(()));
        assert_eq!(a.host_tee_device(), None);
        // The service applies its own policy.
        assert_eq!(a.allowed_tas(), None);
        let a = parse(&["-k", "I", "--tee", "remote:10.0.0.2:7000"]).unwrap();
        assert_eq!(a.tee, Tee::Remote(Address::Tcp("10.0.0.2:7000".into())));
        // The syntax of tosfwd-teed's --listen.
        let a = parse(&["-k", "I", "--tee", "remote:tcp:teed.example:7000"]).unwrap();
        assert_eq!(a.tee, Tee::Remote(Address::Tcp("teed.example:7000".into())));
        let a = parse(&["-k", "I", "--tee", "remote:unix:/run/t.sock"]).unwrap();
        assert_eq!(a.tee, Tee::Remote(Address::Unix("/run/t.sock".into())));
        let e = parse(&["-k", "I", "--tee", "remote:/s", "--tee-shared"])
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(e, "--tee-shared applies to --tee host only");
        assert_eq!(
            parse_tee("remote:nowhere").unwrap_err(),
            "'nowhere': want unix:PATH or tcp:HOST:PORT"
        );
        assert_eq!(
            parse_tee("xen").unwrap_err(),
            "'xen': want user, host or remote:ADDR (ADDR: unix:PATH or tcp:HOST:PORT)"
        );
    }

    #[test]
    fn host_tee_options_without_tee_host_are_refused() {
        use std::time::Duration;
        let e = parse(&["-k", "I", "--tee-shared"])
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(e, "--tee-shared applies to --tee host only");
        let e = parse(&["-k", "I", "--tee", "user", "--tee-device", "/dev/tee0"])
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(e, "--tee-device applies to --tee host only");
        let e = parse(&["-k", "I", "--tee-wait-us", "1000"])
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(
            e,
            "--tee-wait-us applies to --tee host and --tee remote:ADDR only"
        );
        let a = parse(&[
            "-k",
            "I",
            "--tee",
            "remote:unix:/s",
            "--tee-wait-us",
            "2000",
        ])
        .unwrap();
        assert_eq!(
            (a.check(), a.remote_call_wait()),
            (Ok(()), Duration::from_millis(2))
        );
        let a = parse(&["-k", "I", "--tee", "remote:unix:/s"]).unwrap();
        assert_eq!(a.remote_call_wait(), Duration::from_millis(1));
        let a = parse(&["-k", "I", "--tee", "remote:unix:/s", "--vcpus", "2"]).unwrap();
        assert_eq!(a.remote_call_wait(), Duration::ZERO);
        let a = parse(&["-k", "I", "--tee", "remote:unix:/s", "--tee-share-memory"]).unwrap();
        assert_eq!(a.check(), Ok(()));
        for (bad, why) in [
            (
                &["-k", "I", "--tee", "remote:tcp:h:1", "--tee-share-memory"][..],
                "--tee-share-memory applies to --tee remote:unix:PATH only",
            ),
            (
                &["-k", "I", "--tee", "host", "--tee-share-memory"][..],
                "--tee-share-memory applies to --tee remote:unix:PATH only",
            ),
            (
                &[
                    "-k",
                    "I",
                    "--tee",
                    "remote:unix:/s",
                    "--tee-share-memory",
                    "--protected",
                ][..],
                "--tee-share-memory is not for a protected VM: its memory is its own",
            ),
        ] {
            assert_eq!(parse(bad).unwrap().check().unwrap_err(), why, "{bad:?}");
        }
    }

    #[test]
    fn the_tee_wait_defaults_to_a_millisecond_and_is_bounded_by_a_tick() {
        use std::time::Duration;
        let a = parse(&["-k", "I", "--tee", "host"]).unwrap();
        assert_eq!(a.tee_wait(), Duration::from_millis(1));
        let a = parse(&["-k", "I", "--tee", "host", "--tee-wait-us", "2000"]).unwrap();
        assert_eq!(a.tee_wait(), Duration::from_millis(2));
        let a = parse(&["-k", "I", "--tee", "host", "--tee-wait-us", "0"]).unwrap();
        assert_eq!((a.check(), a.tee_wait()), (Ok(()), Duration::ZERO));
        let a = parse(&["-k", "I", "--tee", "host", "--tee-wait-us", "10000"]).unwrap();
        assert_eq!(a.tee_wait(), Duration::from_millis(10));
        assert!(parse(&["-k", "I", "--tee", "host", "--tee-wait-us", "10001"]).is_err());
        assert!(parse(&["-k", "I", "--tee", "host", "--tee-wait-us", "-1"]).is_err());
    }

    #[test]
    fn help_says_that_vms_on_the_host_tee_share_tas_and_storage() {
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains("--tee <user|host|remote:ADDR>"), "{help}");
        assert!(help.contains("--tee-device <PATH>"), "{help}");
        assert!(help.contains("--tee-shared"), "{help}");
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("shares its TA instances and secure storage"),
            "{help}"
        );
    }

    #[test]
    fn hostile_host_takes_all_or_names_and_lists_them_on_the_guests_command_line() {
        use crate::hostile::Forgery;
        let a = parse(&["-k", "I", "--hostile-host", "rpc-free-zero,bogus-thread"]).unwrap();
        assert_eq!(
            a.hostile_host,
            Some(Forgeries(vec![Forgery::RpcFreeZero, Forgery::BogusThread]))
        );
        assert!(a
            .kernel_cmdline()
            .ends_with(" tosfwd.hostile=rpc-free-zero,bogus-thread"));
        let a = parse(&["-k", "I", "--hostile-host", "all", "--append", "x"]).unwrap();
        assert_eq!(a.hostile_host, Some(Forgeries(Forgery::ALL.to_vec())));
        assert_eq!(a.check(), Ok(()));
        assert!(a
            .kernel_cmdline()
            .contains(" x tosfwd.hostile=answer-unknown-ref,"));
        assert!(parse(&["-k", "I", "--hostile-host", "kind"]).is_err());
        assert_eq!(parse(&["-k", "I"]).unwrap().hostile_host, None);
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(
            help.contains("A TEST TOOL: make this VMM lie to its own guest"),
            "{help}"
        );
    }

    #[test]
    fn allow_any_ta_lifts_the_filter() {
        let a = parse(&["-k", "Image", "--allow-any-ta"]).unwrap();
        assert_eq!(a.allowed_tas(), None);
        assert!(parse(&[
            "-k",
            "I",
            "--allow-any-ta",
            "--allow-ta",
            "8aaaf200-2450-11e4-abe2-0002a5d5c51b"
        ])
        .is_err());
    }

    #[test]
    fn out_of_range_values_and_a_missing_kernel_are_usage_errors() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["-k", "I", "-c", "0"]).is_err());
        assert!(parse(&["-k", "I", "-c", "9"]).is_err());
        assert!(parse(&["-k", "I", "-m", "8"]).is_err());
        assert!(parse(&["-k", "I", "--conduit", "svc"]).is_err());
        assert!(parse(&["-k", "I", "--allow-ta", "nope"]).is_err());
    }

    #[test]
    fn help_lists_every_exit_status_and_the_log_convention() {
        use crate::outcome::{Stop, EXIT_ERROR};
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        for (status, what) in [
            (Stop::PowerOff.exit_status(), "the guest powered off"),
            (EXIT_ERROR, "an error"),
            (tosfwd_log::EXIT_USAGE, "a command line it does not accept"),
            (Stop::Reset.exit_status(), "the guest reset"),
            (Stop::Event(9).exit_status(), "another system event"),
        ] {
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{status}  ")))
                .unwrap_or_else(|| panic!("no exit status {status}: {help}"));
            assert!(line.contains(what), "{line}");
        }
        assert!(help.contains("RUST_LOG"), "{help}");
        assert!(help.contains("-v, --verbose"), "{help}");
        assert!(help.contains("-q, --quiet"), "{help}");
    }

    #[test]
    fn v_and_q_set_the_log_level() {
        let a = parse(&["-k", "I", "-vv"]).unwrap();
        assert_eq!(a.verbosity.level(), Some(log::LevelFilter::Debug));
        let a = parse(&["-k", "I", "-q"]).unwrap();
        assert_eq!(a.verbosity.level(), Some(log::LevelFilter::Error));
        assert_eq!(parse(&["-k", "I"]).unwrap().verbosity.level(), None);
    }

    #[test]
    fn a_command_line_longer_than_arm64_linux_keeps_is_refused() {
        let a = parse(&["-k", "I"]).unwrap();
        assert_eq!(a.check(), Ok(()));
        let fits = "x".repeat(MAX_CMDLINE);
        assert_eq!(
            parse(&["-k", "I", "--cmdline", &fits]).unwrap().check(),
            Ok(())
        );
        let long = "x".repeat(MAX_CMDLINE + 1);
        let e = parse(&["-k", "I", "--cmdline", &long])
            .unwrap()
            .check()
            .unwrap_err();
        assert!(e.contains("2048 bytes, more than the 2047"), "{e}");
        // --append counts too.
        let append = "y".repeat(MAX_CMDLINE - layout::default_cmdline().len());
        assert!(parse(&["-k", "I", "--append", &append])
            .unwrap()
            .check()
            .is_err());
    }

    #[test]
    fn uuids_parse_in_rfc4122_form_only() {
        let u = parse_uuid("7011a688-ddde-4053-a5a9-7b3c4ddf13b8").unwrap();
        assert_eq!(u, DEVICE_PTA_UUID);
        assert_eq!(u.to_string(), "7011a688-ddde-4053-a5a9-7b3c4ddf13b8");
        assert!(parse_uuid("7011a688ddde4053a5a97b3c4ddf13b8").is_err());
        assert!(parse_uuid("7011a688-ddde-4053-a5a9-7b3c4ddf13bx").is_err());
        assert!(parse_uuid("7011a688-ddde-4053-a5a9-7b3c4ddf13b").is_err());
    }
}
