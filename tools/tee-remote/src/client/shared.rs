// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The VMM's side of shared guest memory (protocol version 4): its guest
//! RAM's memfd passed to the service on each connection, and memory
//! parameters named by guest page instead of carried by value.

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Arc;

use optee_mediator::backend::ClientId;
use optee_mediator::shm::{GuestBuffer, MemRef};

use super::RemoteTee;
use crate::addr::Address;
use crate::wire::{self, MemRegion, Request, Response, MAX_SHARED_REGIONS};

/// A VM's guest RAM as the service can map it: a memfd sealed against
/// shrinking (F_SEAL_SHRINK; the service refuses any other file), and
/// where each region of guest RAM is in it.
#[derive(Debug, Clone)]
pub struct SharedMemory {
    /// The memfd.
    pub file: Arc<File>,
    /// Guest RAM in it.
    pub regions: Vec<MemRegion>,
}

/// A buffer's pages, as the wire names them.
pub(super) fn page_list(b: &GuestBuffer) -> wire::PageList {
    wire::PageList {
        page_offset: b.offset(),
        size: b.size(),
        pages: b.pages().to_vec(),
    }
}

impl RemoteTee {
    /// Shares `client`'s guest RAM with the service, from its next
    /// connection's creation of the VM on (call it before the VM's first
    /// call): its memory parameters then name guest pages and nothing is
    /// copied. Only on a Unix socket; if the service refuses (its policy,
    /// the file), the VM's memory goes by value, as without this.
    pub fn share_memory(&mut self, client: ClientId, memory: SharedMemory) -> Result<(), String> {
        if !matches!(self.addr, Address::Unix(_)) {
            return Err(format!(
                "{}: memory is shared on a Unix socket only",
                self.addr
            ));
        }
        if memory.regions.is_empty() || memory.regions.len() > MAX_SHARED_REGIONS {
            return Err(format!(
                "{} regions: want 1 to {MAX_SHARED_REGIONS}",
                memory.regions.len()
            ));
        }
        let vm = self.vms.entry(client).or_default();
        vm.share = Some(memory);
        // A VM the service has already: shared now (refused if it made a
        // call); else when the service creates it.
        if vm.created == self.epoch && self.link.is_some() {
            self.share(client);
        }
        Ok(())
    }

    /// Whether `client`'s memory parameters go by reference now.
    pub(super) fn shares(&self, client: ClientId) -> bool {
        self.vms
            .get(&client)
            // Connections count from 1: 0, never shared, matches none.
            .is_some_and(|vm| vm.shared == self.epoch)
    }

    /// A reference's range of guest pages: by cookie if it is in a buffer
    /// registered on this connection.
    pub(super) fn shared_ref(&self, client: ClientId, m: &MemRef) -> wire::SharedRef {
        let buffer = match self.registered_cookie(client, m) {
            Some(cookie) => wire::SharedBuffer::Registered { cookie },
            None => wire::SharedBuffer::Pages(page_list(m.buffer())),
        };
        wire::SharedRef {
            buffer,
            offset: m.offset(),
            len: m.size(),
        }
    }

    /// Passes `client`'s guest RAM, if it has one to share, to the service
    /// that has just created the VM. False only if the connection is gone.
    pub(super) fn share(&mut self, client: ClientId) -> bool {
        let epoch = self.epoch;
        let Some(memory) = self.vms.get(&client).and_then(|vm| vm.share.clone()) else {
            return true;
        };
        let req = Request::ShareMemory {
            client: client.0,
            regions: memory.regions.clone(),
        };
        match self.exchange_with(&req, Some(memory.file.as_fd())) {
            Ok(Response::Shared(Ok(()))) => {
                log::info!(
                    "VM {}: guest memory shared with the TEE service at {}",
                    client.0,
                    self.addr
                );
                if let Some(vm) = self.vms.get_mut(&client) {
                    vm.shared = epoch;
                }
                true
            }
            Ok(Response::Shared(Err(why))) => {
                log::warn!(
                    "VM {}: the TEE service at {} does not share its memory ({why}): memory by value",
                    client.0,
                    self.addr
                );
                true
            }
            Ok(other) => {
                self.protocol(format!("{other:?} in answer to ShareMemory"));
                false
            }
            Err(_) => false,
        }
    }
}
