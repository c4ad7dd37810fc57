// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The shared memory the supplicant allocated for the secure world
//! (OPTEE_RPC_CMD_SHM_ALLOC), by id, and the memory references of requests
//! resolved against it.
//!
//! The kernel presents a memory reference to a supplicant as a = offset,
//! b = size, c = the id of the shared memory (tee_core.c's
//! params_to_supp), or c = -1 for a NULL reference: the only memory a
//! request can name is what this supplicant allocated on its context.

use std::collections::HashMap;

use optee_mediator::msg::teec;
use tee_uapi::MEMREF_NULL;

use crate::device::{AllocatedShm, TeeParam};

/// A range of one allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Region {
    /// The allocation's id.
    pub id: i32,
    /// Where the range starts in it.
    pub offset: usize,
    /// Its length.
    pub len: usize,
}

/// The allocations alive, by id; dropping one releases it.
#[derive(Debug)]
pub(super) struct ShmTable<A> {
    shms: HashMap<i32, A>,
}

impl<A> Default for ShmTable<A> {
    fn default() -> Self {
        ShmTable {
            shms: HashMap::new(),
        }
    }
}

impl<A: AllocatedShm> ShmTable<A> {
    /// Keeps `shm` under its id.
    pub fn insert(&mut self, shm: A) {
        self.shms.insert(shm.id(), shm);
    }

    /// Takes the allocation `id` out (to drop it).
    pub fn remove(&mut self, id: i32) -> Option<A> {
        self.shms.remove(&id)
    }

    /// How many allocations are alive.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shms.len()
    }

    /// What memory reference `p` names: `None` for a NULL reference;
    /// BAD_PARAMETERS for an id this supplicant did not allocate or a
    /// range outside the allocation.
    pub fn region(&self, p: &TeeParam) -> Result<Option<Region>, u32> {
        if p.c == MEMREF_NULL {
            return Ok(None);
        }
        let bad = teec::ERROR_BAD_PARAMETERS;
        let id = i32::try_from(p.c).map_err(|_| bad)?;
        let shm = self.shms.get(&id).ok_or(bad)?;
        let offset = usize::try_from(p.a).map_err(|_| bad)?;
        let len = usize::try_from(p.b).map_err(|_| bad)?;
        match offset.checked_add(len) {
            Some(end) if end <= shm.len() => Ok(Some(Region { id, offset, len })),
            _ => Err(bad),
        }
    }

    /// The bytes of `r`.
    pub fn read(&self, r: &Region) -> Result<Vec<u8>, u32> {
        let mut buf = vec![0; r.len];
        match self.shms.get(&r.id) {
            Some(shm) if shm.read(r.offset, &mut buf) => Ok(buf),
            _ => Err(teec::ERROR_BAD_PARAMETERS),
        }
    }

    /// Copies `data` (at most `r.len` bytes) to the start of `r`.
    pub fn write(&mut self, r: &Region, data: &[u8]) -> Result<(), u32> {
        if data.len() > r.len {
            return Err(teec::ERROR_SHORT_BUFFER);
        }
        let written = self
            .shms
            .get_mut(&r.id)
            .is_some_and(|shm| shm.write(r.offset, data));
        if written {
            Ok(())
        } else {
            Err(teec::ERROR_BAD_PARAMETERS)
        }
    }
}
