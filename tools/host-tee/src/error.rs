// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Errors of the host TEE device, worded for a VMM to print as one line at
//! start-up, and their TEEC translation for the guest.

use std::io;
use std::path::PathBuf;

use optee_mediator::msg::teec;
use tee_uapi::TooManyParams;

/// What went wrong with the host's TEE device.
#[derive(Debug, thiserror::Error)]
pub enum HostTeeError {
    /// No device node, or no driver behind it.
    #[error("{}: no such TEE device (is the host's OP-TEE driver loaded?)", path.display())]
    NoDevice {
        /// The device path.
        path: PathBuf,
    },
    /// The VMM may not open the device.
    #[error("{}: permission denied (the VMM needs read-write access to the host's TEE device)", path.display())]
    PermissionDenied {
        /// The device path.
        path: PathBuf,
    },
    /// Opening the device failed otherwise.
    #[error("{}: cannot open the TEE device: {source}", path.display())]
    Open {
        /// The device path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The device opened, but does not answer TEE_IOC_VERSION: not a TEE.
    #[error("{}: not a TEE device (TEE_IOC_VERSION failed: {})", path.display(), io::Error::from_raw_os_error(*errno))]
    NotATee {
        /// The device path.
        path: PathBuf,
        /// TEE_IOC_VERSION's errno.
        errno: i32,
    },
    /// The device is a TEE, but not OP-TEE.
    #[error("{}: not OP-TEE (TEE implementation id {impl_id}, OP-TEE's is 1)", path.display())]
    NotOpTee {
        /// The device path.
        path: PathBuf,
        /// What TEE_IOC_VERSION reported (TEE_IMPL_ID_*).
        impl_id: u32,
    },
    /// An ioctl failed.
    #[error("TEE_IOC_{ioctl} failed: {}", io::Error::from_raw_os_error(*errno))]
    Ioctl {
        /// The ioctl's name after TEE_IOC_ (VERSION, INVOKE, ...).
        ioctl: &'static str,
        /// The errno.
        errno: i32,
    },
    /// A call with more parameters than the uapi buffer holds.
    #[error("a TEE call with {0}")]
    TooManyParams(#[from] TooManyParams),
    /// A VM's context could not be given a partition of its own.
    #[error(transparent)]
    Partition(Box<crate::partition::PartitionError>),
}

impl From<crate::partition::PartitionError> for HostTeeError {
    fn from(e: crate::partition::PartitionError) -> Self {
        HostTeeError::Partition(Box::new(e))
    }
}

impl HostTeeError {
    /// The error of opening `path` with `e`.
    pub fn open(path: impl Into<PathBuf>, e: io::Error) -> Self {
        let path = path.into();
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) => HostTeeError::NoDevice { path },
            Some(libc::EACCES | libc::EPERM) => HostTeeError::PermissionDenied { path },
            _ => HostTeeError::Open { path, source: e },
        }
    }

    /// The TEEC result a guest sees for this error (origin COMMS), mapped
    /// as libteec maps a failed ioctl's errno, with BUSY kept apart:
    /// ENOMEM is OUT_OF_MEMORY, EINVAL and too many parameters
    /// BAD_PARAMETERS, EBUSY BUSY, anything else COMMUNICATION.
    pub fn teec(&self) -> u32 {
        match self {
            HostTeeError::Ioctl { errno, .. } => match *errno {
                libc::ENOMEM => teec::ERROR_OUT_OF_MEMORY,
                libc::EINVAL => teec::ERROR_BAD_PARAMETERS,
                libc::EBUSY => teec::ERROR_BUSY,
                _ => teec::ERROR_COMMUNICATION,
            },
            HostTeeError::TooManyParams(_) => teec::ERROR_BAD_PARAMETERS,
            _ => teec::ERROR_COMMUNICATION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_errors_name_the_device_and_the_cause() {
        let e = HostTeeError::open("/dev/tee0", io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            e.to_string(),
            "/dev/tee0: no such TEE device (is the host's OP-TEE driver loaded?)"
        );
        let e = HostTeeError::open("/dev/tee1", io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(
            e.to_string(),
            "/dev/tee1: permission denied (the VMM needs read-write access to the host's TEE device)"
        );
        let e = HostTeeError::open("/dev/tee0", io::Error::from_raw_os_error(libc::EBUSY));
        assert!(e
            .to_string()
            .starts_with("/dev/tee0: cannot open the TEE device: "));
        let e = HostTeeError::NotOpTee {
            path: "/dev/tee0".into(),
            impl_id: 2,
        };
        assert_eq!(
            e.to_string(),
            "/dev/tee0: not OP-TEE (TEE implementation id 2, OP-TEE's is 1)"
        );
    }

    #[test]
    fn ioctl_errors_name_the_ioctl_and_the_errno() {
        let e = HostTeeError::Ioctl {
            ioctl: "INVOKE",
            errno: libc::EINVAL,
        };
        assert_eq!(
            e.to_string(),
            "TEE_IOC_INVOKE failed: Invalid argument (os error 22)"
        );
    }

    #[test]
    fn every_message_is_one_line() {
        let all = [
            HostTeeError::open("/dev/tee0", io::Error::from_raw_os_error(libc::ENXIO)),
            HostTeeError::open("/dev/tee0", io::Error::from_raw_os_error(libc::EPERM)),
            HostTeeError::open("/dev/tee0", io::Error::from_raw_os_error(libc::EIO)),
            HostTeeError::Ioctl {
                ioctl: "SHM_REGISTER",
                errno: libc::ENOMEM,
            },
            HostTeeError::TooManyParams(TooManyParams(5)),
        ];
        for e in all {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn device_errors_become_teec_results_as_libteec_maps_errno() {
        let ioctl = |errno| HostTeeError::Ioctl {
            ioctl: "INVOKE",
            errno,
        };
        assert_eq!(ioctl(libc::ENOMEM).teec(), teec::ERROR_OUT_OF_MEMORY);
        assert_eq!(ioctl(libc::EINVAL).teec(), teec::ERROR_BAD_PARAMETERS);
        assert_eq!(ioctl(libc::EBUSY).teec(), teec::ERROR_BUSY);
        assert_eq!(ioctl(libc::EIO).teec(), teec::ERROR_COMMUNICATION);
        assert_eq!(
            HostTeeError::TooManyParams(TooManyParams(9)).teec(),
            teec::ERROR_BAD_PARAMETERS
        );
    }
}
