// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The cases of a guest whose memory is private to it (a protected VM under
//! pKVM): its VMM reaches only the memory the guest shares.
//!
//! `--private-memory`: the guest's OP-TEE driver shares what it hands to
//! the TEE (the guest series, patches/guest-VERSION). The ordinary cases
//! (or those of `--xtest-tas`, and its benchmark) run, except those about
//! registered memory: such a driver offers none (a client's own buffer is
//! private), which [`version`] and [`registration_refused`] check instead.
//!
//! `--unshared-memory`: a driver that shares nothing (the same kernel
//! without the series). Its fast calls, which carry registers only, work:
//! the driver probed ([`probed`]). Its standard calls pass their message in
//! private memory, which the VMM cannot read: they fail with
//! TEEC_ERROR_COMMUNICATION from TEEC_ORIGIN_COMMS ([`standard_calls_fail`]).

use optee_mediator::msg::teec;
use optee_mediator::utee::ta::HELLO_UUID;
use tosfwd_tee_client::sys::{TEE_GEN_CAP_GP, TEE_GEN_CAP_REG_MEM, TEE_IOCTL_LOGIN_PUBLIC};
use tosfwd_tee_client::Tee;

use crate::{optee_version, xtest_tas, Case, CaseResult, CASES, PAGE};

/// Which cases `--private-memory` replaces (of the ordinary ones and of
/// `--xtest-tas`), and with what.
const REPLACED: [(&str, Case); 3] = [
    (
        "tee_version_reports_optee_with_registered_memory",
        (
            "tee_version_reports_optee_without_registered_memory",
            version,
        ),
    ),
    (
        "memory_ta_reverses_registered_unaligned_user_memory",
        (
            "registering_user_memory_is_refused_with_eopnotsupp",
            registration_refused,
        ),
    ),
    (
        "os_test_ta_takes_64k_of_registered_unaligned_user_memory",
        (
            "registering_user_memory_is_refused_with_eopnotsupp",
            registration_refused,
        ),
    ),
];

/// The cases of `--private-memory`: the ordinary ones (or with
/// `--xtest-tas`, those), in their order, with those about registered
/// memory replaced.
pub fn cases(xtest_tas: bool) -> Vec<Case> {
    let base: &[Case] = if xtest_tas { &xtest_tas::CASES } else { &CASES };
    base.iter()
        .map(|c| {
            REPLACED
                .iter()
                .find(|(name, _)| *name == c.0)
                .map_or(*c, |(_, with)| *with)
        })
        .collect()
}

/// The cases of `--unshared-memory`.
pub const UNSHARED_CASES: [Case; 2] = [
    ("the_driver_probed_through_fast_calls", probed),
    (
        "standard_calls_fail_with_a_communication_error",
        standard_calls_fail,
    ),
];

fn version(tee: &Tee) -> CaseResult {
    let v = optee_version(tee)?;
    ensure!(
        v.gen_caps & TEE_GEN_CAP_GP != 0,
        "gen_caps {:#x} lack GP",
        v.gen_caps
    );
    ensure!(
        v.gen_caps & TEE_GEN_CAP_REG_MEM == 0,
        "gen_caps {:#x} offer registered memory (REG_MEM), which the guest cannot share",
        v.gen_caps
    );
    Ok(())
}

fn registration_refused(tee: &Tee) -> CaseResult {
    let mut buf = vec![0u8; 2 * PAGE];
    match tee.shm_register(&mut buf) {
        Ok(_) => Err("TEE_IOC_SHM_REGISTER of a private buffer succeeded".to_owned()),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
        Err(e) => Err(format!(
            "TEE_IOC_SHM_REGISTER of a private buffer: {e}, want EOPNOTSUPP"
        )),
    }
}

fn probed(tee: &Tee) -> CaseResult {
    optee_version(tee).map(|_| ())
}

fn standard_calls_fail(tee: &Tee) -> CaseResult {
    let (_, r) = tee
        .open_session(HELLO_UUID.0, TEE_IOCTL_LOGIN_PUBLIC, &mut [])
        .map_err(|e| format!("TEE_IOC_OPEN_SESSION: {e}"))?;
    ensure!(
        r.ret == teec::ERROR_COMMUNICATION && r.origin == teec::ORIGIN_COMMS,
        "opening the hello TA gave ret {:#x} origin {}, want COMMUNICATION ({:#x}) from COMMS \
         ({}): the VMM read a message the guest did not share",
        r.ret,
        r.origin,
        teec::ERROR_COMMUNICATION,
        teec::ORIGIN_COMMS
    );
    Ok(())
}
