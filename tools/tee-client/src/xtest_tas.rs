// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `--xtest-tas`: cases and a benchmark against a real OP-TEE, with TAs
//! that Debian's optee-test package installs (OP-TEE's examples, such as
//! hello_world, are not packaged): the same binary runs on the host,
//! straight on the host's driver, and in a guest, through KVM, the VMM and
//! its host-TEE backend, so the two can be compared call for call.
//!
//! - sims (e6a33ed4-562b-463a-bb7e-ff5e15a493c8), GET_COUNTER: one value
//!   output, no memory: the cheapest round trip to a TA;
//! - os_test (5b9e0e40-2636-11e1-ad9e-0002a5d5c51b), PARAMS: four memory
//!   references that the TA only checks for a buffer and a size, so a
//!   64 KiB reference costs its transport (registration, mapping) and no
//!   work in the TA.

use std::time::Instant;

use optee_mediator::Uuid;
use tosfwd_tee_client::sys::{
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT as MEMREF_IN,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT as MEMREF_OUT,
};
use tosfwd_tee_client::{param, Param, RegisteredShm, Shm, Tee};

use crate::{close, invoke, open, CaseResult};

/// xtest's single-instance, multi-session TA.
const SIMS_UUID: Uuid = Uuid::from_fields(
    0xe6a3_3ed4,
    0x562b,
    0x463a,
    [0xbb, 0x7e, 0xff, 0x5e, 0x15, 0xa4, 0x93, 0xc8],
);
/// TA_SIMS_CMD_GET_COUNTER: value output a = a session counter.
const SIMS_CMD_GET_COUNTER: u32 = 3;

/// xtest's os_test TA.
pub const OS_TEST_UUID: Uuid = Uuid::from_fields(
    0x5b9e_0e40,
    0x2636,
    0x11e1,
    [0xad, 0x9e, 0x00, 0x02, 0xa5, 0xd5, 0xc5, 0x1b],
);
/// TA_OS_TEST_CMD_PARAMS: memrefs in, in, out, out, each non-NULL and
/// non-empty, or TEE_ERROR_BAD_PARAMETERS.
const OS_TEST_CMD_PARAMS: u32 = 13;

/// The size of the large reference.
pub const LARGE: usize = 64 << 10;
/// The size of the three small ones.
const SMALL: usize = 16;

/// One GET_COUNTER call in `session`.
fn sims_call(tee: &Tee, session: u32) -> CaseResult {
    let mut p = [param::value_out()];
    invoke(
        tee,
        session,
        SIMS_CMD_GET_COUNTER,
        &mut p,
        "sims GET_COUNTER",
    )
}

fn sims_value(tee: &Tee) -> CaseResult {
    let s = open(tee, SIMS_UUID, "the sims TA")?;
    sims_call(tee, s)?;
    close(tee, s, "the sims TA")
}

/// Registered user memory for PARAMS: a large input (not page aligned),
/// and three small buffers.
struct ParamsBuffers {
    large: Vec<u8>,
    small: [Vec<u8>; 3],
}

impl ParamsBuffers {
    fn new(large: usize) -> Self {
        ParamsBuffers {
            large: vec![0x5a; large],
            small: [vec![1; SMALL], vec![2; SMALL], vec![3; SMALL]],
        }
    }

    /// The four buffers registered (TEE_IOC_SHM_REGISTER), large first.
    fn register<'a>(&'a mut self, tee: &Tee) -> Result<[RegisteredShm<'a>; 4], String> {
        fn reg<'a>(tee: &Tee, m: &'a mut [u8]) -> Result<RegisteredShm<'a>, String> {
            let len = m.len();
            tee.shm_register(m)
                .map_err(|e| format!("TEE_IOC_SHM_REGISTER of {len} bytes: {e}"))
        }
        let [s0, s1, s2] = &mut self.small;
        Ok([
            reg(tee, &mut self.large)?,
            reg(tee, s0)?,
            reg(tee, s1)?,
            reg(tee, s2)?,
        ])
    }
}

/// The PARAMS parameters for shm ids (large, small...).
fn params_of(ids: [i32; 4], large: usize) -> [Param; 4] {
    [
        param::memref(MEMREF_IN, ids[0], 0, large as u64),
        param::memref(MEMREF_IN, ids[1], 0, SMALL as u64),
        param::memref(MEMREF_OUT, ids[2], 0, SMALL as u64),
        param::memref(MEMREF_OUT, ids[3], 0, SMALL as u64),
    ]
}

/// The driver's shared memory for PARAMS (TEE_IOC_SHM_ALLOC), large first.
fn alloc_params_shm(tee: &Tee) -> Result<[Shm; 4], String> {
    let alloc = |n: usize| {
        tee.shm_alloc(n)
            .map_err(|e| format!("TEE_IOC_SHM_ALLOC of {n} bytes: {e}"))
    };
    Ok([alloc(LARGE)?, alloc(SMALL)?, alloc(SMALL)?, alloc(SMALL)?])
}

/// `n` PARAMS calls (after `warm` untimed ones) naming the shm ids `ids`;
/// the mean in ns.
fn time_params(tee: &Tee, s: u32, ids: [i32; 4], n: u32, warm: u32) -> Result<u128, String> {
    time(n, warm, || {
        let mut p = params_of(ids, LARGE);
        invoke(tee, s, OS_TEST_CMD_PARAMS, &mut p, "os_test PARAMS")
    })
}

fn params_registered(tee: &Tee) -> CaseResult {
    let s = open(tee, OS_TEST_UUID, "the os_test TA")?;
    let mut b = ParamsBuffers::new(LARGE);
    let regs = b.register(tee)?;
    let mut p = params_of(regs.each_ref().map(|r| r.id()), LARGE);
    invoke(tee, s, OS_TEST_CMD_PARAMS, &mut p, "os_test PARAMS")?;
    drop(regs);
    close(tee, s, "the os_test TA")
}

fn params_allocated(tee: &Tee) -> CaseResult {
    let s = open(tee, OS_TEST_UUID, "the os_test TA")?;
    let shms = alloc_params_shm(tee)?;
    let mut p = params_of(shms.each_ref().map(|m| m.id()), LARGE);
    invoke(tee, s, OS_TEST_CMD_PARAMS, &mut p, "os_test PARAMS")?;
    // An empty reference where the TA wants a buffer is the TA's to refuse.
    p[1] = param::memref(MEMREF_IN, shms[1].id(), 0, 0);
    let r = tee
        .invoke(s, OS_TEST_CMD_PARAMS, &mut p)
        .map_err(|e| format!("TEE_IOC_INVOKE os_test PARAMS: {e}"))?;
    ensure!(
        r.ret == optee_mediator::msg::teec::ERROR_BAD_PARAMETERS
            && r.origin == optee_mediator::msg::teec::ORIGIN_TRUSTED_APP,
        "PARAMS with an empty reference: ret {:#x} origin {}, want BAD_PARAMETERS from the TA",
        r.ret,
        r.origin
    );
    drop(shms);
    close(tee, s, "the os_test TA")
}

fn closed_session(tee: &Tee) -> CaseResult {
    let s = open(tee, SIMS_UUID, "the sims TA")?;
    close(tee, s, "the sims TA")?;
    let e = tee.invoke(s, SIMS_CMD_GET_COUNTER, &mut [param::value_out()]);
    ensure!(
        matches!(&e, Err(e) if e.raw_os_error() == Some(libc::EINVAL)),
        "invoking closed session {s}: {e:?}, want EINVAL"
    );
    Ok(())
}

/// The cases of `--xtest-tas`.
pub const CASES: [crate::Case; 5] = [
    (
        "tee_version_reports_optee_with_registered_memory",
        crate::version,
    ),
    ("sims_ta_answers_a_value_call", sims_value),
    (
        "os_test_ta_takes_64k_of_registered_unaligned_user_memory",
        params_registered,
    ),
    (
        "os_test_ta_takes_allocated_shm_and_refuses_an_empty_reference",
        params_allocated,
    ),
    ("a_closed_session_refuses_invoke", closed_session),
];

/// Calls `call` `n` times after `warm` untimed ones; the mean in ns.
fn time(n: u32, warm: u32, mut call: impl FnMut() -> CaseResult) -> Result<u128, String> {
    for _ in 0..warm {
        call()?;
    }
    let t = Instant::now();
    for _ in 0..n {
        call()?;
    }
    Ok(t.elapsed().as_nanos() / u128::from(n.max(1)))
}

/// The benchmark: `n` GET_COUNTER calls, then `n` PARAMS calls with a
/// 64 KiB reference, to user memory registered once and to the driver's
/// shared memory allocated once (the transport of the reference, not its
/// registration); one line each, as KTAP comments. In a guest the two
/// references differ: user memory is scattered over guest pages (the VMM
/// bounces it), the driver's shared memory is contiguous (the VMM
/// registers the guest's pages with the host: zero-copy). Without
/// `registered` (a guest whose driver offers no registered memory) the
/// first reference is left out, and a line says so. Each kind has a
/// session of its own, so that a VMM's cost report (one line per session,
/// `optee_mediator::cost`) tells them apart.
pub fn bench(tee: &Tee, n: u32, registered: bool) -> CaseResult {
    let warm = (n / 10).max(1);
    let s = open(tee, SIMS_UUID, "the sims TA")?;
    let ns = time(n, warm, || sims_call(tee, s))?;
    close(tee, s, "the sims TA")?;
    println!("# bench: value_invoke {ns} ns/call ({n} calls, sims GET_COUNTER)");

    let s = open(tee, OS_TEST_UUID, "the os_test TA")?;
    if registered {
        let mut b = ParamsBuffers::new(LARGE);
        let regs = b.register(tee)?;
        let ids = regs.each_ref().map(|r| r.id());
        let ns = time_params(tee, s, ids, n, warm)?;
        drop(regs);
        println!(
            "# bench: memref64k_invoke {ns} ns/call ({n} calls, os_test PARAMS, 64 KiB of user \
             memory registered once)"
        );
    } else {
        println!("# memref64k_invoke not measured: the driver offers no registered memory");
    }
    close(tee, s, "the os_test TA")?;

    let s = open(tee, OS_TEST_UUID, "the os_test TA")?;
    let shms = alloc_params_shm(tee)?;
    let ids = shms.each_ref().map(|m| m.id());
    let ns = time_params(tee, s, ids, n, warm)?;
    drop(shms);
    close(tee, s, "the os_test TA")?;
    println!(
        "# bench: memref64k_shm_invoke {ns} ns/call ({n} calls, os_test PARAMS, 64 KiB of the \
         driver's shared memory, allocated once)"
    );
    Ok(())
}
