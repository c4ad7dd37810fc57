// SPDX-License-Identifier: Apache-2.0 OR MIT
//! OPTEE_RPC_CMD_LOAD_TA: a TA binary from the TA directory.
//!
//! value[0] a and b hold the TA's UUID as 16 octets (OP-TEE's
//! tee_uuid_to_octets, in the value's memory); memref[1] is the buffer.
//! OP-TEE first asks with a NULL buffer for the size (answered with the
//! size and success), then allocates that much and asks again; a buffer
//! too small gets the size and SHORT_BUFFER (tee-supplicant's load_ta).
//! The file is `<uuid>.ta`, the UUID in RFC 4122 form, or in the older
//! form without the fourth dash, as tee-supplicant's teec_ta_load.c looks.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use optee_mediator::msg::teec;
use tee_uapi::sys::TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT;

use super::shm::ShmTable;
use super::{is_memref, is_value, param_type};
use crate::device::{AllocatedShm, TeeParam};

/// The TA's UUID: the octets in value a and b as they lie in memory.
fn uuid_octets(p: &TeeParam) -> [u8; 16] {
    let mut o = [0; 16];
    o[..8].copy_from_slice(&p.a.to_ne_bytes());
    o[8..].copy_from_slice(&p.b.to_ne_bytes());
    o
}

/// The file names tried for `uuid`: the RFC 4122 form, then the older one.
pub(super) fn file_names(uuid: &[u8; 16]) -> [String; 2] {
    let hex = |r: std::ops::Range<usize>| -> String {
        uuid[r].iter().map(|b| format!("{b:02x}")).collect()
    };
    let head = format!("{}-{}-{}-{}", hex(0..4), hex(4..6), hex(6..8), hex(8..10));
    [
        format!("{head}-{}.ta", hex(10..16)),
        format!("{head}{}.ta", hex(10..16)),
    ]
}

/// The TA file of `uuid` in `dir`, open. O_NONBLOCK: a FIFO in its place
/// does not block the open (and is refused as not a file, below).
fn open_ta(dir: &Path, uuid: &[u8; 16]) -> Option<(PathBuf, File)> {
    file_names(uuid).into_iter().find_map(|name| {
        let path = dir.join(name);
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .ok()
            .map(|f| (path, f))
    })
}

/// Serves LOAD_TA.
pub(super) fn load<A: AllocatedShm>(
    ta_dir: &Path,
    shm: &mut ShmTable<A>,
    params: &mut [TeeParam],
) -> u32 {
    let [uuid, buf] = params else {
        return teec::ERROR_BAD_PARAMETERS;
    };
    if !is_value(uuid) || !is_memref(buf) {
        return teec::ERROR_BAD_PARAMETERS;
    }
    let region = match shm.region(buf) {
        Ok(r) => r,
        Err(e) => return e,
    };
    // Asking for the size of an input buffer makes no sense.
    if region.is_none() && param_type(buf) == TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT {
        return teec::ERROR_BAD_PARAMETERS;
    }
    let uuid = uuid_octets(uuid);
    let Some((path, mut file)) = open_ta(ta_dir, &uuid) else {
        log::debug!(
            "supplicant: TA {} not found in {}",
            file_names(&uuid)[0],
            ta_dir.display()
        );
        return teec::ERROR_ITEM_NOT_FOUND;
    };
    let size = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        _ => return teec::ERROR_ITEM_NOT_FOUND,
    };
    buf.b = size;
    let Some(region) = region else {
        // The size query.
        return teec::SUCCESS;
    };
    if size > region.len as u64 {
        return teec::ERROR_SHORT_BUFFER;
    }
    // Read at most one byte more than fits, in case the file grew.
    let mut data = Vec::with_capacity(region.len);
    if let Err(e) = (&mut file)
        .take(region.len as u64 + 1)
        .read_to_end(&mut data)
    {
        log::warn!("supplicant: reading {}: {e}", path.display());
        return teec::ERROR_ITEM_NOT_FOUND;
    }
    buf.b = data.len() as u64;
    match shm.write(&region, &data) {
        Ok(()) => teec::SUCCESS,
        Err(e) => e,
    }
}
