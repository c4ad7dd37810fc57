// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A VM's own OP-TEE partition: a TEE context made an OP-TEE VM of its own
//! (TEE_IOC_VM_CREATE, patches/tee-VERSION), the thread that serves the
//! partition's supplicant requests on it, and the partition's secure
//! storage directory.
//!
//! The [`Partition`] belongs to the [`crate::DevTee`] of the VM's context
//! ([`crate::DevTee::make_vm`]): when the backend drops that context at
//! the VM's teardown, the supplicant thread stops and closes its own fd of
//! the context, the kernel releases the context and OP-TEE destroys the
//! VM's partition. A storage directory made for the VM alone is removed
//! then too.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::HostTeeError;
use crate::relay::Relay;
use crate::supplicant::{
    StorageQuota, SupplicantConfig, SupplicantError, SupplicantThread, DEFAULT_TA_DIR,
};

/// Who serves a partition's supplicant requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SupplicantMode {
    /// The VMM: TAs from [`PartitionConfig::ta_dir`], secure storage in
    /// [`PartitionConfig::storage_dir`] (the host's files); no sockets or
    /// plugins.
    #[default]
    Vmm,
    /// The guest's own tee-supplicant, through the guest's calls
    /// ([`crate::relay`]): TAs, storage, sockets and plugins in the
    /// guest's world. The storage directory and TA directory are not used.
    Guest,
}

/// How a VM's partition is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionConfig {
    /// Where the partition's TAs are loaded from.
    pub ta_dir: PathBuf,
    /// The partition's secure storage (created if missing, mode 0700;
    /// refused if it is a symbolic link, another user's, or writable by
    /// its group or others).
    pub storage_dir: PathBuf,
    /// Whether the storage goes with the VM (removed at its teardown):
    /// for a storage directory made for this VM alone (such as one of
    /// [`crate::supplicant::storage::fresh_dir`]).
    pub remove_storage: bool,
    /// How much the VM may keep in its storage.
    pub quota: StorageQuota,
    /// Who serves its supplicant requests.
    pub supplicant: SupplicantMode,
}

impl PartitionConfig {
    /// Storage in `storage_dir`, kept; TAs from [`DEFAULT_TA_DIR`].
    pub fn new(storage_dir: impl Into<PathBuf>) -> PartitionConfig {
        PartitionConfig {
            ta_dir: PathBuf::from(DEFAULT_TA_DIR),
            storage_dir: storage_dir.into(),
            remove_storage: false,
            quota: StorageQuota::default(),
            supplicant: SupplicantMode::Vmm,
        }
    }
}

/// Why a context could not be given a partition of its own.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// The TEE holds no more VMs (TEE_IOC_VM_CREATE: ENOSPC).
    #[error(
        "{}: OP-TEE holds as many VMs as it can (TEE_IOC_VM_CREATE: ENOSPC)",
        path.display()
    )]
    NoRoom {
        /// The TEE device.
        path: PathBuf,
    },
    /// Creating a VM takes CAP_SYS_ADMIN (TEE_IOC_VM_CREATE: EPERM).
    #[error(
        "{}: creating an OP-TEE VM takes CAP_SYS_ADMIN (TEE_IOC_VM_CREATE: EPERM)",
        path.display()
    )]
    NotPermitted {
        /// The TEE device.
        path: PathBuf,
    },
    /// This user has as many VMs as the driver allows (TEE_IOC_VM_CREATE:
    /// EDQUOT; the optee module's max_vms_per_user).
    #[error(
        "{}: this user has as many OP-TEE VMs as the driver allows \
         (TEE_IOC_VM_CREATE: EDQUOT; /sys/module/optee/parameters/max_vms_per_user)",
        path.display()
    )]
    UserLimit {
        /// The TEE device.
        path: PathBuf,
    },
    /// TEE_IOC_VM_CREATE failed otherwise.
    #[error("{}: cannot make the context an OP-TEE VM of its own: {err}", path.display())]
    Create {
        /// The TEE device.
        path: PathBuf,
        /// The failed ioctl.
        err: HostTeeError,
    },
    /// The context is a VM's, but its supplicant could not start.
    #[error("{}: the VM partition's supplicant: {err}", path.display())]
    Supplicant {
        /// The TEE device.
        path: PathBuf,
        /// Why.
        err: SupplicantError,
    },
}

/// A context's partition: dropped with the context's [`crate::DevTee`].
#[derive(Debug)]
pub struct Partition {
    /// The VM's id in OP-TEE.
    pub id: u32,
    /// How it is served.
    pub config: PartitionConfig,
    pub(crate) supplicant: Option<SupplicantThread>,
    /// The relay to the guest's tee-supplicant ([`SupplicantMode::Guest`]).
    pub(crate) relay: Option<Arc<Relay>>,
}

impl Drop for Partition {
    fn drop(&mut self) {
        if let Some(r) = &self.relay {
            // A request waiting for the guest fails now, not at the stop.
            r.close();
        }
        if let Some(t) = self.supplicant.take() {
            if let Err(e) = t.stop() {
                log::warn!("OP-TEE VM {}: its supplicant ended with: {e}", self.id);
            }
        }
        if self.config.remove_storage {
            match std::fs::remove_dir_all(&self.config.storage_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log::warn!(
                    "OP-TEE VM {}: cannot remove its storage {}: {e}",
                    self.id,
                    self.config.storage_dir.display()
                ),
            }
        }
    }
}

impl Partition {
    /// The supplicant's configuration.
    pub(crate) fn supplicant_config(config: &PartitionConfig) -> SupplicantConfig {
        SupplicantConfig {
            ta_dir: config.ta_dir.clone(),
            storage_dir: config.storage_dir.clone(),
            quota: config.quota,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("host-tee-partition-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/dirf.db"), b"x").unwrap();
        d
    }

    fn partition(dir: &std::path::Path, remove: bool) -> Partition {
        Partition {
            id: 2,
            config: PartitionConfig {
                remove_storage: remove,
                ..PartitionConfig::new(dir)
            },
            supplicant: None,
            relay: None,
        }
    }

    #[test]
    fn a_vms_own_storage_goes_with_its_partition() {
        let d = temp_dir("own");
        drop(partition(&d, true));
        assert!(!d.exists());
    }

    #[test]
    fn a_named_storage_outlives_the_partition() {
        let d = temp_dir("named");
        drop(partition(&d, false));
        assert!(d.join("sub/dirf.db").is_file());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn errors_name_the_device_and_what_is_wrong() {
        let e = PartitionError::NoRoom {
            path: "/dev/tee0".into(),
        };
        assert_eq!(
            e.to_string(),
            "/dev/tee0: OP-TEE holds as many VMs as it can (TEE_IOC_VM_CREATE: ENOSPC)"
        );
        let e = PartitionError::Create {
            path: "/dev/tee0".into(),
            err: HostTeeError::Ioctl {
                ioctl: "VM_CREATE",
                errno: libc::EOPNOTSUPP,
            },
        };
        assert!(e
            .to_string()
            .starts_with("/dev/tee0: cannot make the context an OP-TEE VM of its own: TEE_IOC_VM_CREATE failed: "));
        let e = PartitionError::NotPermitted {
            path: "/dev/tee0".into(),
        };
        assert_eq!(
            e.to_string(),
            "/dev/tee0: creating an OP-TEE VM takes CAP_SYS_ADMIN (TEE_IOC_VM_CREATE: EPERM)"
        );
        let e = PartitionError::UserLimit {
            path: "/dev/tee0".into(),
        };
        assert!(e.to_string().contains("EDQUOT"));
        assert_eq!(
            PartitionConfig::new("/s").ta_dir,
            PathBuf::from(DEFAULT_TA_DIR)
        );
    }
}
