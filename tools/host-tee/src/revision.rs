// SPDX-License-Identifier: Apache-2.0 OR MIT
//! OP-TEE's revision as the host's driver tells it: the uapi has no ioctl
//! for it, but Linux 6.19 and later show it in sysfs
//! (`/sys/class/tee/teeN/revision`: "MAJOR.MINOR", or "MAJOR.MINOR
//! (BUILD_ID)" with the build id in hex). Older kernels do not: the guest
//! is then told 0.0 (unknown).

use std::path::Path;

use optee_mediator::backend::OsRevision;

/// Where sysfs shows the TEE devices.
pub const SYSFS_TEE_CLASS: &str = "/sys/class/tee";

/// Parses the driver's revision string.
pub fn parse(s: &str) -> Option<OsRevision> {
    let s = s.trim();
    let (numbers, build) = match s.split_once(' ') {
        Some((n, rest)) => {
            let hex = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
            (n, u64::from_str_radix(hex, 16).ok()?)
        }
        None => (s, 0),
    };
    let (major, minor) = numbers.split_once('.')?;
    Some(OsRevision {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        // The SMC ABI's build id is 32 bits (GET_OS_REVISION's a2).
        build_id: u32::try_from(build).unwrap_or(u32::MAX),
    })
}

/// The revision of the TEE behind `device` (such as /dev/tee0), read from
/// `class_dir` (normally [`SYSFS_TEE_CLASS`]); `None` where the kernel
/// does not show it or it cannot be read.
pub fn of_device(class_dir: &Path, device: &Path) -> Option<OsRevision> {
    let real = std::fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
    let name = real.file_name()?;
    let text = std::fs::read_to_string(class_dir.join(name).join("revision")).ok()?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(major: u32, minor: u32, build_id: u32) -> Option<OsRevision> {
        Some(OsRevision {
            major,
            minor,
            build_id,
        })
    }

    #[test]
    fn the_drivers_two_forms_parse() {
        assert_eq!(parse("4.5\n"), rev(4, 5, 0));
        assert_eq!(parse("4.5 (00000000deadbeef)\n"), rev(4, 5, 0xdead_beef));
        // A build id wider than the ABI's 32 bits is saturated, not cut.
        assert_eq!(parse("3.22 (123456789abcdef0)"), rev(3, 22, u32::MAX));
    }

    #[test]
    fn anything_else_is_no_revision() {
        for bad in ["", "4", "4.x", "x.5", "4.5 deadbeef", "4.5 (zz)", "-1.5"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_revision_is_read_from_the_devices_class_directory() {
        let dir = std::env::temp_dir().join(format!("host-tee-rev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tee3")).unwrap();
        std::fs::write(dir.join("tee3/revision"), "4.5 (0000000000000007)\n").unwrap();
        assert_eq!(of_device(&dir, Path::new("/dev/tee3")), rev(4, 5, 7));
        assert_eq!(of_device(&dir, Path::new("/dev/tee4")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
