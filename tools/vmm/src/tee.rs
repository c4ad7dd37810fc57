// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The TEE behind the mediator, set up before the guest starts: with
//! `--tee host`, the host's TEE device opened once (so a missing device, a
//! refused one or a TEE that is not OP-TEE is a one-line start-up error)
//! and the lock that keeps a second VM off the same TEE.
//!
//! The lock: with a non-virtualized OP-TEE, every VM on the TEE shares its
//! TA instances and secure storage. This VMM runs one VM per process, so
//! "one VM per TEE" is an advisory lock (flock(2)) on a lock file named
//! after the device, in [`LOCK_DIR`]: exclusive for a VM that does not
//! accept sharing, shared with `--tee-shared`. Any number of
//! `--tee-shared` VMs run together; a VM without it runs alone. The lock
//! goes with the process (or the [`TeeLock`]); nothing needs cleaning up.
//!
//! With an OP-TEE that serves VMs apart (NS-virtualization; the host's
//! kernel reports TEE_GEN_CAP_VM), the VM's context becomes an OP-TEE VM
//! of its own instead ([`host_tee::DevTee::make_vm`]): its TA instances and secure
//! storage are its own, so no lock is needed, and this VMM serves the
//! partition's supplicant requests (TA loading, the secure storage's files
//! in --tee-storage) on a thread of its own. `--tee-shared` keeps the VM in
//! the host's partition, under the shared lock, as before.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use host_tee::supplicant::storage::fresh_dir;
use host_tee::supplicant::{StorageDir, StorageError, DEFAULT_TA_DIR};
use host_tee::{DevTee, HostTeeError, PartitionConfig, PartitionError, SupplicantMode};
use optee_mediator::Quotas;
use tee_remote::{RemoteConfig, RemoteError, RemoteTee};

use crate::args::{Args, Tee, TeeSupplicant};

/// Where the lock files live (created, mode 0755, if missing).
pub const LOCK_DIR: &str = "/run/tosfwd-vmm";

/// Why the TEE could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TeeError {
    /// The host's TEE device: missing, refused, not OP-TEE.
    #[error(transparent)]
    Device(#[from] HostTeeError),
    /// The TEE service could not be reached, or refused this VMM.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The device opened, but does not answer TEE_IOC_VERSION.
    #[error("{}: not a TEE device ({err})", path.display())]
    NotATee {
        /// The device path.
        path: PathBuf,
        /// The failed ioctl.
        err: HostTeeError,
    },
    /// The device path has no file name to name its lock after.
    #[error("{}: cannot name a lock file after this TEE device path", .0.display())]
    LockName(PathBuf),
    /// The lock directory could not be created.
    #[error("cannot create the TEE lock directory {}: {err}", dir.display())]
    LockDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// The lock file could not be opened or created.
    #[error("cannot open the TEE lock file {}: {err}", path.display())]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// Another VM holds the lock in a way this one may not share.
    #[error(
        "{}: another VM uses this TEE (the lock {} is held); VMs on a non-virtualized OP-TEE \
         share its TA instances and secure storage: pass --tee-shared to every VM that may \
         share it",
        device.display(),
        lock.display()
    )]
    InUse {
        /// The TEE device.
        device: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// flock failed otherwise.
    #[error("cannot lock the TEE lock file {}: {err}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// The TEE serves VMs apart but holds no more.
    #[error(
        "{}: OP-TEE holds as many VMs as it can (TEE_IOC_VM_CREATE: ENOSPC): stop another VM, \
         or pass --tee-shared to run this one in the host's partition",
        path.display()
    )]
    NoVmRoom {
        /// The TEE device.
        path: PathBuf,
    },
    /// Giving the VM a partition failed otherwise.
    #[error(transparent)]
    Partition(PartitionError),
    /// --tee-storage refused (a link, another user's, writable by others),
    /// or the default storage could not be made.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// --tee-storage, --tee-ta-dir or a storage quota without a partition
    /// to serve.
    #[error(
        "{}: --tee-storage, --tee-ta-dir and --tee-storage-max-* need an OP-TEE that serves VMs \
         apart (NS-virtualization, TEE_GEN_CAP_VM); this one keeps every VM in the host's \
         partition, whose storage the host's tee-supplicant serves",
        path.display()
    )]
    NoPartition {
        /// The TEE device.
        path: PathBuf,
    },
    /// --tee-supplicant guest without a partition of the VM's own.
    #[error(
        "{}: --tee-supplicant guest needs an OP-TEE that serves VMs apart (NS-virtualization, \
         TEE_GEN_CAP_VM); this one keeps every VM in the host's partition, whose requests the \
         host's tee-supplicant serves",
        path.display()
    )]
    NoPartitionForGuestSupplicant {
        /// The TEE device.
        path: PathBuf,
    },
}

/// The lock file of `device` in `dir`: named after the device's file name
/// once symbolic links are resolved (/dev/tee0 gives `tee0.lock`), so that
/// two names of one device node share the lock.
pub fn lock_path(dir: &Path, device: &Path) -> Result<PathBuf, TeeError> {
    let real = std::fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
    let name = real
        .file_name()
        .ok_or_else(|| TeeError::LockName(device.to_path_buf()))?;
    let mut file = name.to_os_string();
    file.push(".lock");
    Ok(dir.join(file))
}

/// A held lock on one TEE device; released when dropped (or when the
/// process ends).
#[derive(Debug)]
pub struct TeeLock {
    _file: File,
    path: PathBuf,
    shared: bool,
}

impl TeeLock {
    /// Takes the lock of `device` in `dir` without waiting: shared if
    /// `shared` (--tee-shared), else exclusive. [`TeeError::InUse`] if
    /// another holder's lock conflicts.
    pub fn acquire(dir: &Path, device: &Path, shared: bool) -> Result<TeeLock, TeeError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|err| TeeError::LockDir {
                dir: dir.to_path_buf(),
                err,
            })?;
        let path = lock_path(dir, device)?;
        // Read-only is enough for flock: a lock file another user created
        // (mode 0644) can be locked too.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&path),
                _ => Err(e),
            })
            .map_err(|err| TeeError::LockFile {
                path: path.clone(),
                err,
            })?;
        let op = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
        loop {
            // SAFETY: flock only reads the fd, which `file` keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => {
                    return Err(TeeError::InUse {
                        device: device.to_path_buf(),
                        lock: path,
                    })
                }
                _ => return Err(TeeError::Lock { path, err }),
            }
        }
        Ok(TeeLock {
            _file: file,
            path,
            shared,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the lock is shared (--tee-shared) rather than exclusive.
    pub fn is_shared(&self) -> bool {
        self.shared
    }
}

/// The VM's TEE, ready before the guest starts.
#[derive(Debug)]
pub enum Ready {
    /// The userspace TEE, made with the mediator.
    User,
    /// The host's TEE device, opened (and checked to be OP-TEE): the VM's
    /// TEE context.
    Host(DevTee),
    /// The TEE service, connected.
    Remote(Box<RemoteTee>),
}

/// The name of a default storage directory: this, then random characters.
const STORAGE_PREFIX: &str = "tosfwd-vmm-tee-storage-";

/// The partition's configuration: --tee-storage checked (a one-line
/// refusal before the VM is made), or a fresh private directory in
/// $TMPDIR made for this VM (removed with it); the storage quota.
fn partition_config(args: &Args) -> Result<PartitionConfig, TeeError> {
    if args.tee_supplicant == TeeSupplicant::Guest {
        // Nothing of the partition's is kept here.
        return Ok(PartitionConfig {
            storage_dir: PathBuf::new(),
            supplicant: SupplicantMode::Guest,
            ..PartitionConfig::new("")
        });
    }
    let (storage_dir, remove_storage) = match &args.tee_storage {
        Some(dir) => {
            StorageDir::open(dir)?;
            (dir.clone(), false)
        }
        None => (fresh_dir(&std::env::temp_dir(), STORAGE_PREFIX)?, true),
    };
    Ok(PartitionConfig {
        ta_dir: args
            .tee_ta_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_TA_DIR)),
        storage_dir,
        remove_storage,
        quota: args.storage_quota(),
        supplicant: SupplicantMode::Vmm,
    })
}

/// Makes `device`'s context a VM of its own, its supplicant served as
/// --tee-ta-dir and --tee-storage say, until the VM's backend drops the
/// device.
fn partition(args: &Args, path: &Path, device: &mut DevTee) -> Result<(), TeeError> {
    let config = partition_config(args)?;
    let made = config.remove_storage.then(|| config.storage_dir.clone());
    let part = device.make_vm(config).map_err(|e| {
        // The fresh directory goes if the partition does not come.
        if let Some(dir) = &made {
            let _ = std::fs::remove_dir(dir);
        }
        match e {
            PartitionError::NoRoom { .. } => TeeError::NoVmRoom {
                path: path.to_path_buf(),
            },
            e => TeeError::Partition(e),
        }
    })?;
    if part.config.supplicant == SupplicantMode::Guest {
        log::info!(
            "{}: OP-TEE VM {}, a partition of its own: its supplicant requests (TAs, secure \
             storage, sockets, plugins) go to the guest's tee-supplicant",
            path.display(),
            part.id,
        );
        return Ok(());
    }
    log::info!(
        "{}: OP-TEE VM {}, a partition of its own: TAs from {}, secure storage in {}{}",
        path.display(),
        part.id,
        part.config.ta_dir.display(),
        part.config.storage_dir.display(),
        if part.config.remove_storage {
            " (removed at exit)"
        } else {
            ""
        }
    );
    Ok(())
}

/// Sets up what `args` asks for: nothing for the userspace TEE; for
/// `--tee host`, opens the device (a one-line error if it is missing,
/// refused or not OP-TEE), then gives the VM an OP-TEE partition of its
/// own if the TEE serves VMs apart (and --tee-shared does not say
/// otherwise), else takes the device's lock in `lock_dir`; for
/// `--tee remote:ADDR`, connects to the service (a one-line error if it
/// cannot be reached or refuses). The lock, if any, must outlive the VM's
/// mediator; a partition goes with the device.
pub fn start(args: &Args, lock_dir: &Path) -> Result<(Ready, Option<TeeLock>), TeeError> {
    if let Tee::Remote(addr) = &args.tee {
        let config = RemoteConfig {
            // The service relays the partition's requests to this VMM,
            // and its guest's tee-supplicant serves them.
            relay_supplicant: args.tee_supplicant == TeeSupplicant::Guest,
            // The service waits for a short call, as this VMM does for
            // the host's TEE: one request and one guest exit (by default
            // for a VM of one vCPU only: the round trip holds the VM's
            // mediator lock).
            call_wait: args.remote_call_wait(),
            ..RemoteConfig::default()
        };
        let r = RemoteTee::connect(addr.clone(), config)?;
        return Ok((Ready::Remote(Box::new(r)), None));
    }
    let Some(path) = args.host_tee_device() else {
        return Ok((Ready::User, None));
    };
    // A device that does not answer TEE_IOC_VERSION is HostTeeError's
    // NotATee, which names it.
    let mut device = DevTee::open(&path)?;
    let serves_vms = device.serves_vms().map_err(|err| TeeError::NotATee {
        path: path.clone(),
        err,
    })?;
    if serves_vms && !args.tee_shared {
        partition(args, &path, &mut device)?;
        return Ok((Ready::Host(device), None));
    }
    if args.tee_supplicant == TeeSupplicant::Guest {
        return Err(TeeError::NoPartitionForGuestSupplicant { path });
    }
    if args.tee_storage.is_some() || args.tee_ta_dir.is_some() || args.has_storage_quota() {
        return Err(TeeError::NoPartition { path });
    }
    let lock = TeeLock::acquire(lock_dir, &path, args.tee_shared)?;
    Ok((Ready::Host(device), Some(lock)))
}

/// The VM's quotas on what it shares with the TEE: the mediator's
/// defaults (Xen's), but with `--tee-supplicant guest` one buffer may be as
/// large as a TA: the guest's tee-supplicant loads each TA into a buffer
/// of its size (Debian's largest, xtest's large TA, is 1.1 MiB), where
/// the defaults stop at 129 pages (512 KiB).
pub fn quotas(args: &Args) -> Quotas {
    let defaults = Quotas::default();
    match args.tee_supplicant {
        TeeSupplicant::Guest => Quotas {
            max_pages_per_buffer: GUEST_SUPPLICANT_MAX_PAGES,
            ..defaults
        },
        TeeSupplicant::Vmm => defaults,
    }
}

/// Pages of one buffer with `--tee-supplicant guest`: 4 MiB at any offset.
const GUEST_SUPPLICANT_MAX_PAGES: u64 = 1025;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn with_the_guests_own_supplicant_a_buffer_may_hold_the_largest_ta() {
        let args = |v: &[&str]| {
            Args::try_parse_from(std::iter::once("tosfwd-vmm").chain(v.iter().copied())).unwrap()
        };
        let vmm = quotas(&args(&["-k", "I", "--tee", "host"]));
        assert_eq!(vmm, Quotas::default());
        let guest = quotas(&args(&[
            "-k",
            "I",
            "--tee",
            "host",
            "--tee-supplicant",
            "guest",
        ]));
        // Debian's xtest large TA: 1,162,256 bytes at any page offset.
        assert!(guest.max_pages_per_buffer * 4096 >= 1_162_256 + 4096);
        assert_eq!(
            Quotas {
                max_pages_per_buffer: vmm.max_pages_per_buffer,
                ..guest
            },
            vmm,
            "nothing else changes"
        );
    }

    /// A fresh directory under the system's temporary directory.
    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tosfwd-vmm-test-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_lock_is_named_after_the_device_and_follows_symbolic_links() {
        let dir = temp_dir("name");
        std::fs::create_dir_all(&dir).unwrap();
        let dev = dir.join("tee7");
        File::create(&dev).unwrap();
        let link = dir.join("other-name");
        std::os::unix::fs::symlink(&dev, &link).unwrap();
        let locks = Path::new("/run/x");
        assert_eq!(lock_path(locks, &dev).unwrap(), locks.join("tee7.lock"));
        assert_eq!(lock_path(locks, &link).unwrap(), locks.join("tee7.lock"));
        // A device that does not exist (yet) still names one.
        assert_eq!(
            lock_path(locks, Path::new("/dev/tee3")).unwrap(),
            locks.join("tee3.lock")
        );
        assert!(matches!(
            lock_path(locks, Path::new("/")),
            Err(TeeError::LockName(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_exclusive_lock_on_one_device_is_refused_until_the_first_goes() {
        let dir = temp_dir("exclusive");
        let dev = Path::new("/dev/tee0");
        let first = TeeLock::acquire(&dir, dev, false).unwrap();
        assert_eq!(first.path(), dir.join("tee0.lock"));
        assert!(!first.is_shared());
        let e = TeeLock::acquire(&dir, dev, false).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, TeeError::InUse { .. }), "{e:?}");
        assert!(
            msg.contains(&dir.join("tee0.lock").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("--tee-shared"), "{msg}");
        assert!(
            msg.starts_with("/dev/tee0: another VM uses this TEE"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        // Asking to share does not get past a VM that does not.
        assert!(matches!(
            TeeLock::acquire(&dir, dev, true),
            Err(TeeError::InUse { .. })
        ));
        // Another device is another lock.
        let other = TeeLock::acquire(&dir, Path::new("/dev/tee1"), false).unwrap();
        drop(first);
        let again = TeeLock::acquire(&dir, dev, false).unwrap();
        drop((again, other));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shared_locks_coexist_and_keep_an_exclusive_one_out() {
        let dir = temp_dir("shared");
        let dev = Path::new("/dev/tee0");
        let a = TeeLock::acquire(&dir, dev, true).unwrap();
        let b = TeeLock::acquire(&dir, dev, true).unwrap();
        assert!(a.is_shared() && b.is_shared());
        assert!(matches!(
            TeeLock::acquire(&dir, dev, false),
            Err(TeeError::InUse { .. })
        ));
        drop(a);
        assert!(TeeLock::acquire(&dir, dev, false).is_err());
        drop(b);
        assert!(TeeLock::acquire(&dir, dev, false).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_uncreatable_lock_directory_is_one_line_naming_it() {
        let dir = temp_dir("notadir");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("file");
        File::create(&file).unwrap();
        let e = TeeLock::acquire(&file.join("locks"), Path::new("/dev/tee0"), false).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, TeeError::LockDir { .. }), "{e:?}");
        assert!(
            msg.starts_with("cannot create the TEE lock directory "),
            "{msg}"
        );
        assert!(msg.contains("file/locks"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn args(v: &[&str]) -> Args {
        Args::try_parse_from(["tosfwd-vmm", "-k", "Image"].iter().chain(v)).unwrap()
    }

    #[test]
    fn the_userspace_tee_needs_no_device_and_no_lock() {
        let dir = temp_dir("user");
        assert!(matches!(
            start(&args(&[]), &dir).unwrap(),
            (Ready::User, None)
        ));
        assert!(!dir.exists());
    }

    #[test]
    fn an_unreachable_tee_service_is_one_line_naming_it() {
        let dir = temp_dir("remote");
        let sock = dir.join("none.sock");
        let tee = format!("remote:{}", sock.display());
        let e = start(&args(&["--tee", &tee]), &dir).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "cannot reach the TEE service at unix:{}: ",
                sock.display()
            )),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        assert!(!dir.exists());
    }

    #[test]
    fn a_missing_device_is_refused_before_anything_is_locked() {
        let dir = temp_dir("missing");
        let e = start(
            &args(&["--tee", "host", "--tee-device", "/nonexistent/tee9"]),
            &dir,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/tee9: no such TEE device (is the host's OP-TEE driver loaded?)"
        );
        assert!(!dir.exists());
    }

    #[test]
    fn a_device_that_is_not_a_tee_is_refused() {
        let dir = temp_dir("null");
        let e = start(&args(&["--tee", "host", "--tee-device", "/dev/null"]), &dir).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/null: not a TEE device (TEE_IOC_VERSION failed: Inappropriate ioctl for device \
             (os error 25))"
        );
        assert!(!dir.exists());
    }

    #[test]
    fn the_default_storage_is_fresh_and_private_never_an_existing_path() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // What an attacker can plant: the old, predictable default name,
        // pointing at a directory of theirs; and names with the prefix.
        let theirs = temp_dir("theirs");
        std::fs::create_dir_all(&theirs).unwrap();
        let predictable =
            std::env::temp_dir().join(format!("tosfwd-vmm-{}-tee-storage", std::process::id()));
        let _ = std::fs::remove_file(&predictable);
        std::os::unix::fs::symlink(&theirs, &predictable).unwrap();

        let a = partition_config(&args(&["--tee", "host"])).unwrap();
        let b = partition_config(&args(&["--tee", "host"])).unwrap();
        for c in [&a, &b] {
            let d = &c.storage_dir;
            assert!(c.remove_storage, "made for the VM, removed with it");
            assert_ne!(d, &predictable);
            assert_eq!(d.parent(), Some(std::env::temp_dir().as_path()));
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with(STORAGE_PREFIX), "{name}");
            let m = std::fs::symlink_metadata(d).unwrap();
            assert!(m.is_dir(), "a directory, not a link");
            assert_eq!(m.permissions().mode() & 0o777, 0o700);
            // SAFETY: geteuid has no preconditions.
            assert_eq!(m.uid(), unsafe { libc::geteuid() });
            assert_eq!(std::fs::read_dir(d).unwrap().count(), 0, "empty");
        }
        assert_ne!(a.storage_dir, b.storage_dir, "each VM its own");
        assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);
        assert_eq!(a.quota, host_tee::supplicant::StorageQuota::default());
        for d in [&a.storage_dir, &b.storage_dir] {
            std::fs::remove_dir(d).unwrap();
        }
        std::fs::remove_file(&predictable).unwrap();
        std::fs::remove_dir_all(&theirs).unwrap();
    }

    #[test]
    fn a_given_storage_that_others_can_write_or_that_is_a_link_is_refused_in_one_line() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("given");
        let open = dir.join("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = dir.join("link");
        let private = dir.join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&private, &link).unwrap();
        let config = |p: &Path| {
            partition_config(&args(&[
                "--tee",
                "host",
                "--tee-storage",
                p.to_str().unwrap(),
                "--tee-storage-max-bytes",
                "4096",
            ]))
        };
        let e = config(&open).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: refused as the VM's secure storage: writable by its group or others \
                 (mode 0777; chmod go-w it)",
                open.display()
            )
        );
        let e = config(&link).unwrap_err().to_string();
        assert!(e.ends_with("link: refused as the VM's secure storage: it is a symbolic link (name the directory itself)"), "{e}");
        let ok = config(&private).unwrap();
        assert_eq!(ok.storage_dir, private);
        assert!(!ok.remove_storage, "a given storage is kept");
        assert_eq!(ok.quota.max_bytes, 4096);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
