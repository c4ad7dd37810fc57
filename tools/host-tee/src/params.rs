// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Parameters between the mediator's [`Param`]s and the uapi's.
//!
//! A call's parameters are planned on the vCPU thread, where guest memory
//! is ([`plan`]): values as they are, NULL memory references as
//! TEE_MEMREF_NULL, references into a guest buffer registered with the
//! host as (offset, size, that registration's id), any other reference as
//! a host-contiguous piece to register for the call, or as bytes for a
//! bounce buffer. The worker turns the plan into uapi parameters
//! ([`materialize`], the registrations and allocations made there, off the
//! vCPU), and the results come back to the guest on the vCPU thread
//! ([`write_back`]).

use std::sync::Arc;

use optee_mediator::backend::{Param, StdCall};
use optee_mediator::msg::{teec, Dir};
use optee_mediator::shm::GuestBuffer;
use optee_mediator::{CallCost, GuestRam};
use tee_uapi::sys::{
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT, TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT, TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INOUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT, TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT,
};
use tee_uapi::{MAX_PARAMS, MEMREF_NULL};

use crate::device::{AllocatedShm, Shm, TeeDevice, TeeParam};
use crate::error::HostTeeError;
use crate::memory::{host_span, HostPtr, Pinned, Window};

/// One planned parameter.
#[derive(Debug)]
pub(crate) enum Planned {
    /// Ready as it is (none, value, NULL or registered memory reference).
    Ready(TeeParam),
    /// Register `len` bytes of the VMM's mapping of guest RAM for the call
    /// (in a window of its own if the pages are scattered).
    Host {
        /// The uapi attribute.
        attr: u32,
        /// Where.
        ptr: HostPtr,
        /// How many bytes.
        len: usize,
        /// The window `ptr` is in, if the pages needed one.
        window: Option<Window>,
    },
    /// Copy through driver memory: the bytes in (zeros for an output).
    Bounce {
        /// The uapi attribute.
        attr: u32,
        /// The input.
        data: Vec<u8>,
    },
}

/// Memory a call holds until its result is written back.
#[derive(Debug)]
pub(crate) enum Temp<D: TeeDevice> {
    /// The guest's pages, registered for the call.
    Registered(Pinned<D::Registered>),
    /// A bounce buffer for parameter `index`.
    Bounce {
        /// The driver memory.
        shm: D::Allocated,
        /// The parameter it serves.
        index: usize,
    },
}

fn value_attr(dir: Dir) -> u32 {
    match dir {
        Dir::In => TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT,
        Dir::Out => TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT,
        Dir::InOut => TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INOUT,
    }
}

fn memref_attr(dir: Dir) -> u32 {
    match dir {
        Dir::In => TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT,
        Dir::Out => TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT,
        Dir::InOut => TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT,
    }
}

fn param(attr: u32, a: u64, b: u64, c: u64) -> TeeParam {
    TeeParam {
        attr: attr.into(),
        a,
        b,
        c,
    }
}

/// Plans `params`; `registered` gives the host shm id of a guest buffer
/// registered with the host. Fails with a TEEC code (origin COMMS): more
/// parameters than the uapi carries, or guest memory that stopped being
/// RAM.
pub(crate) fn plan(
    params: &[Param],
    registered: &dyn Fn(&Arc<GuestBuffer>) -> Option<i32>,
    mem: &dyn GuestRam,
) -> Result<Vec<Planned>, u32> {
    if params.len() > MAX_PARAMS {
        return Err(teec::ERROR_BAD_PARAMETERS);
    }
    params
        .iter()
        .map(|p| match p {
            Param::None => Ok(Planned::Ready(TeeParam::default())),
            Param::Value { dir, a, b, c } => {
                let (a, b, c) = if dir.is_input() {
                    (*a, *b, *c)
                } else {
                    (0, 0, 0)
                };
                Ok(Planned::Ready(param(value_attr(*dir), a, b, c)))
            }
            Param::Memref {
                dir,
                mem: None,
                size,
            } => Ok(Planned::Ready(param(
                memref_attr(*dir),
                0,
                *size,
                MEMREF_NULL,
            ))),
            Param::Memref {
                dir, mem: Some(r), ..
            } => {
                let attr = memref_attr(*dir);
                if let Some(id) = registered(r.buffer()) {
                    return Ok(Planned::Ready(param(attr, r.offset(), r.size(), id as u64)));
                }
                let len = usize::try_from(r.size()).map_err(|_| teec::ERROR_OUT_OF_MEMORY)?;
                if let Some(ptr) = host_span(mem, r.buffer(), r.offset(), r.size()) {
                    return Ok(Planned::Host {
                        attr,
                        ptr,
                        len,
                        window: None,
                    });
                }
                if let Some((window, ptr)) = Window::map(mem, r.buffer(), r.offset(), r.size()) {
                    return Ok(Planned::Host {
                        attr,
                        ptr,
                        len,
                        window: Some(window),
                    });
                }
                // The guest's bytes, whatever the direction: what the TEE
                // does not write of an output must read back as the guest
                // left it, as in a registered buffer.
                let data = r.read_all(mem).map_err(|_| teec::ERROR_BAD_PARAMETERS)?;
                Ok(Planned::Bounce { attr, data })
            }
        })
        .collect()
}

/// What [`materialize`] will cost: an ioctl per registration or bounce
/// buffer, and for each bounce buffer two copies of its bytes (read from
/// the guest by [`plan`], written into the bounce buffer).
pub(crate) fn setup_cost(planned: &[Planned]) -> CallCost {
    let mut cost = CallCost::default();
    for p in planned {
        match p {
            Planned::Ready(_) => {}
            Planned::Host { .. } => cost.tee_requests += 1,
            Planned::Bounce { data, .. } => {
                cost.tee_requests += 1;
                cost.bytes_copied += 2 * data.len() as u64;
            }
        }
    }
    cost
}

/// What the TEE wrote into a bounce buffer: read out by the worker that
/// made the call, before it releases the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output {
    /// The parameter it serves.
    pub index: usize,
    /// The bytes, as many as the TEE reported (at most the buffer's).
    pub data: Vec<u8>,
}

/// The outputs of a finished call's bounce buffers (`out`, the parameters
/// as the TEE left them), read before `temps` are released. Releasing
/// them is an unregistration in the TEE, which may wait for a free TEE
/// thread: it is the worker's to do, never the collecting thread's, which
/// may be the one that carries what the TEE threads wait for.
pub(crate) fn outputs<D: TeeDevice>(out: &[TeeParam], temps: &[Temp<D>]) -> Vec<Output> {
    let mut outputs = Vec::new();
    for t in temps {
        let Temp::Bounce { shm, index } = t else {
            continue;
        };
        let Some(p) = out.get(*index) else {
            continue;
        };
        let kind = (p.attr & 0xff) as u32;
        if kind != TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT
            && kind != TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT
        {
            continue;
        }
        let len = usize::try_from(p.b).unwrap_or(usize::MAX).min(shm.len());
        let mut data = vec![0u8; len];
        if shm.read(0, &mut data) {
            outputs.push(Output {
                index: *index,
                data,
            });
        }
    }
    outputs
}

/// Makes the planned parameters real on `dev`: registrations and bounce
/// buffers (at least one byte: the driver refuses empty ones).
///
/// # Safety
/// Every [`Planned::Host`] range must stay mapped until the returned
/// temporaries are dropped.
pub(crate) unsafe fn materialize<D: TeeDevice>(
    dev: &D,
    planned: Vec<Planned>,
) -> Result<(Vec<TeeParam>, Vec<Temp<D>>), HostTeeError> {
    let mut params = Vec::with_capacity(planned.len());
    let mut temps = Vec::new();
    for (index, p) in planned.into_iter().enumerate() {
        match p {
            Planned::Ready(p) => params.push(p),
            Planned::Host {
                attr,
                ptr,
                len,
                window,
            } => {
                // SAFETY: the caller keeps guest RAM mapped as long as the
                // registration, which lives in `temps` (with the window
                // `ptr` is in, if any).
                let reg = unsafe { dev.shm_register(ptr.0, len) }?;
                params.push(param(attr, 0, len as u64, reg.id() as u64));
                temps.push(Temp::Registered(Pinned::new(reg, window)));
            }
            Planned::Bounce { attr, data } => {
                let mut shm = dev.shm_alloc(data.len().max(1))?;
                if !shm.write(0, &data) {
                    return Err(HostTeeError::Ioctl {
                        ioctl: "SHM_ALLOC",
                        errno: libc::ENOMEM,
                    });
                }
                params.push(param(attr, 0, data.len() as u64, shm.id() as u64));
                temps.push(Temp::Bounce { shm, index });
            }
        }
    }
    Ok((params, temps))
}

/// Writes the outputs of `out` into `call`: output values, output sizes,
/// and the bytes of bounced output references up to the size the TEE
/// reports, or to the reference's end if it reports more: what the guest
/// would read in a registered buffer. (A size larger than the buffer asks
/// for a bigger one, but the TEE may have filled this one first: a
/// truncated datagram, xtest 2004's "UDP Socket truncated recv".) A
/// bounced output that can no longer be written to the guest is logged
/// and its size set to 0. Returns the bytes copied: two copies of each
/// bounced output (out of the bounce buffer, into the guest).
pub(crate) fn write_back(
    call: &mut StdCall,
    out: &[TeeParam],
    outputs: &[Output],
    mem: &dyn GuestRam,
) -> u64 {
    let mut copied = 0;
    for (p, o) in call.params.iter_mut().zip(out) {
        match p {
            Param::Value { dir, a, b, c } if dir.is_output() => {
                (*a, *b, *c) = (o.a, o.b, o.c);
            }
            Param::Memref { dir, size, .. } if dir.is_output() => *size = o.b,
            _ => {}
        }
    }
    for Output { index, data } in outputs {
        let Some(Param::Memref {
            dir,
            mem: Some(r),
            size,
        }) = call.params.get_mut(*index)
        else {
            continue;
        };
        if !dir.is_output() {
            continue;
        }
        let Ok(len) = usize::try_from((*size).min(r.size())) else {
            continue;
        };
        let written = data
            .get(..len)
            .is_some_and(|data| r.write(mem, 0, data).is_ok());
        if !written {
            log::warn!("host TEE: output parameter {index} could not be copied back to the guest");
            *size = 0;
        } else {
            copied += 2 * len as u64;
        }
    }
    copied
}
