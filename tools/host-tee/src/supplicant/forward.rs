// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`Forwarder`]: the partition's supplicant requests relayed to the
//! guest's own tee-supplicant (see [`crate::relay`]) instead of served
//! here.
//!
//! The host's kernel still sees this context as the partition's
//! supplicant, and the memory it names is still shared memory allocated
//! on this context: every SHM_ALLOC is made twice, here (the memory the
//! TEE reads and writes) and in the guest (the buffer the guest's
//! tee-supplicant reads and writes), and the two are paired. A request's
//! memory references are translated from the one to the other, the input
//! bytes copied to the guest before it is asked, the output bytes back
//! after it answered, each range checked on both sides. What the guest
//! answers is bounded as anything from the TEE is here: a size larger
//! than its range copies no more than the range.
//!
//! Requests are relayed concurrently ([`crate::supplicant::SupplicantThread`]
//! answers each on a worker): the pairs are kept under a lock that is
//! never held while the guest is asked, and a buffer freed while another
//! request used it makes that request's outputs fail, not land elsewhere.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use optee_mediator::msg::{rpc_cmd, teec, Dir};

use super::shm::ShmTable;
use super::{appl_value, cmd, is_memref, is_value, param_type, Request, SupplicantChannel};
use crate::device::{Shm, TeeParam};
use crate::error::HostTeeError;
use crate::relay::{Answer, Forwarded, FwdOut, FwdParam, Relay, RelayError};

/// A parameter's direction (the uapi's types share OP-TEE's low bits).
fn dir(p: &TeeParam) -> Dir {
    match param_type(p) & 3 {
        1 => Dir::In,
        2 => Dir::Out,
        _ => Dir::InOut,
    }
}

/// The allocations made here and the guest buffers paired with them.
#[derive(Debug)]
struct Pairs<A> {
    shm: ShmTable<A>,
    /// The guest's cookie of the buffer paired with each allocation here.
    cookies: HashMap<i32, u64>,
}

/// The relaying supplicant of one partition.
#[derive(Debug)]
pub struct Forwarder<C: SupplicantChannel> {
    channel: C,
    relay: Arc<Relay>,
    pairs: Mutex<Pairs<C::Allocated>>,
}

impl<C: SupplicantChannel> Forwarder<C> {
    /// A forwarder on `channel` through `relay`.
    pub fn new(channel: C, relay: Arc<Relay>) -> Self {
        Forwarder {
            channel,
            relay,
            pairs: Mutex::new(Pairs {
                shm: ShmTable::default(),
                cookies: HashMap::new(),
            }),
        }
    }

    /// The pairs (recovered if a holder panicked: each change is whole).
    fn pairs(&self) -> MutexGuard<'_, Pairs<C::Allocated>> {
        self.pairs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The channel.
    pub fn channel(&self) -> &C {
        &self.channel
    }

    /// Relays `req` to the guest and sends the answer (TEE_IOC_SUPPL_SEND).
    /// An allocation whose answer the kernel refused (it gave up waiting)
    /// is undone on both sides: the TEE never learns its id, and would
    /// never free it.
    pub(super) fn answer(&self, mut req: Request, stop: &AtomicBool) -> Result<(), HostTeeError> {
        let params = &mut req.params[..req.used];
        let (ret, allocated) = match super::own_params(params) {
            Some(own) => {
                let ret = self.handle(req.func, own, stop);
                let made = req.func == cmd::SHM_ALLOC && ret == teec::SUCCESS;
                (ret, own.first().filter(|_| made).map(|p| p.c))
            }
            None => (teec::ERROR_BAD_PARAMETERS, None),
        };
        let sent = self.channel.supp_send(ret, params);
        if let (Err(_), Some(id)) = (&sent, allocated) {
            self.unpair(id as i32, stop);
        }
        sent
    }

    /// Frees allocation `id` here and its paired buffer in the guest.
    fn unpair(&self, id: i32, stop: &AtomicBool) {
        let cookie = {
            let mut pairs = self.pairs();
            drop(pairs.shm.remove(id));
            pairs.cookies.remove(&id)
        };
        if let Some(cookie) = cookie {
            let _ = self.ask(Forwarded::shm_free(cookie), stop);
        }
    }

    fn ask(&self, req: Forwarded, stop: &AtomicBool) -> Result<Answer, u32> {
        let func = req.func;
        self.relay.ask(req, stop).map_err(|e| {
            if e != RelayError::Closed {
                log::warn!("supplicant: request {func} relayed to the guest: {e}");
            }
            teec::ERROR_COMMUNICATION
        })
    }

    /// Relays request `func`; returns its TEEC result.
    fn handle(&self, func: u32, params: &mut [TeeParam], stop: &AtomicBool) -> u32 {
        match func {
            cmd::SHM_ALLOC => self.shm_alloc(params, stop),
            cmd::SHM_FREE => self.shm_free(params, stop),
            _ => self.relay_cmd(func, params, stop).unwrap_or_else(|e| e),
        }
    }

    fn relay_cmd(&self, func: u32, params: &mut [TeeParam], stop: &AtomicBool) -> Result<u32, u32> {
        let bad = teec::ERROR_BAD_PARAMETERS;
        let mut sent = Vec::with_capacity(params.len());
        let mut regions = Vec::with_capacity(params.len());
        let pairs = self.pairs();
        for p in params.iter() {
            let (fwd, region) = if is_value(p) {
                let (a, b, c) = (p.a, p.b, p.c);
                (
                    FwdParam::Value {
                        dir: dir(p),
                        a,
                        b,
                        c,
                    },
                    None,
                )
            } else if is_memref(p) {
                match pairs.shm.region(p)? {
                    None => (
                        FwdParam::NullMemref {
                            dir: dir(p),
                            size: p.b,
                        },
                        None,
                    ),
                    Some(r) => {
                        let cookie = *pairs.cookies.get(&r.id).ok_or(bad)?;
                        let data = if dir(p).is_input() {
                            pairs.shm.read(&r)?
                        } else {
                            Vec::new()
                        };
                        let fwd = FwdParam::Memref {
                            dir: dir(p),
                            cookie,
                            offs: r.offset as u64,
                            size: r.len as u64,
                            data,
                        };
                        (fwd, Some(r))
                    }
                }
            } else if param_type(p) == 0 {
                (FwdParam::None, None)
            } else {
                return Err(bad);
            };
            sent.push(fwd);
            regions.push(region);
        }
        drop(pairs);
        let answer = self.ask(Forwarded { func, params: sent }, stop)?;
        let mut pairs = self.pairs();
        for (i, p) in params.iter_mut().enumerate() {
            match (answer.params.get(i), &regions[i]) {
                (Some(FwdOut::Value { a, b, c }), _) if is_value(p) && dir(p).is_output() => {
                    (p.a, p.b, p.c) = (*a, *b, *c);
                }
                (Some(FwdOut::Memref { size, data }), region) if dir(p).is_output() => {
                    if let Some(r) = region {
                        let n = data.len().min(r.len);
                        pairs.shm.write(r, &data[..n])?;
                    }
                    p.b = *size;
                }
                _ => {}
            }
        }
        Ok(answer.ret)
    }

    /// SHM_ALLOC (value a = APPL, b = size): allocated here, and in the
    /// guest; the id of the one goes back to the kernel, the cookie of the
    /// other is kept with it.
    fn shm_alloc(&self, params: &mut [TeeParam], stop: &AtomicBool) -> u32 {
        let p = match appl_value(params) {
            Ok(p) => p,
            Err(ret) => return ret,
        };
        let Ok(size) = usize::try_from(p.b) else {
            return teec::ERROR_OUT_OF_MEMORY;
        };
        let here = match self.channel.supp_alloc(size) {
            Ok(shm) => shm,
            Err(e) => {
                log::warn!("supplicant: allocating {size} bytes of shared memory: {e}");
                return teec::ERROR_OUT_OF_MEMORY;
            }
        };
        let req = Forwarded {
            func: rpc_cmd::SHM_ALLOC,
            params: vec![FwdParam::Value {
                dir: Dir::In,
                a: rpc_cmd::SHM_TYPE_APPL,
                b: p.b,
                c: 0,
            }],
        };
        let answer = match self.ask(req, stop) {
            Ok(a) => a,
            Err(ret) => return ret,
        };
        match answer.params.first() {
            Some(FwdOut::Allocated { cookie }) if answer.ret == teec::SUCCESS => {
                p.c = here.id() as u64;
                let mut pairs = self.pairs();
                pairs.cookies.insert(here.id(), *cookie);
                pairs.shm.insert(here);
                teec::SUCCESS
            }
            Some(FwdOut::Refused { cookie }) => {
                log::warn!(
                    "supplicant: the guest's buffer for {size} bytes of shared memory was \
                     refused (too small or bad pages): given back"
                );
                let _ = self.ask(Forwarded::shm_free(*cookie), stop);
                teec::ERROR_OUT_OF_MEMORY
            }
            _ if answer.ret != teec::SUCCESS => answer.ret,
            _ => teec::ERROR_OUT_OF_MEMORY,
        }
    }

    /// SHM_FREE (value a = APPL, b = the id): freed in the guest, then here.
    fn shm_free(&self, params: &mut [TeeParam], stop: &AtomicBool) -> u32 {
        let p = match appl_value(params) {
            Ok(p) => p,
            Err(ret) => return ret,
        };
        let Some(id) = i32::try_from(p.b).ok() else {
            return teec::ERROR_BAD_PARAMETERS;
        };
        let (cookie, here) = {
            let mut pairs = self.pairs();
            (pairs.cookies.remove(&id), pairs.shm.remove(id))
        };
        let (Some(cookie), Some(here)) = (cookie, here) else {
            return teec::ERROR_BAD_PARAMETERS;
        };
        let ret = self
            .ask(Forwarded::shm_free(cookie), stop)
            .map_or_else(|e| e, |a| a.ret);
        drop(here);
        ret
    }

    /// How many allocations are paired with a guest buffer.
    #[cfg(test)]
    pub(super) fn paired(&self) -> usize {
        self.pairs().cookies.len()
    }

    /// The allocations made here (tests: what the TEE reads and writes).
    #[cfg(test)]
    pub(super) fn shm_mut(&mut self) -> &mut ShmTable<C::Allocated> {
        &mut self.pairs.get_mut().unwrap_or_else(|e| e.into_inner()).shm
    }
}
