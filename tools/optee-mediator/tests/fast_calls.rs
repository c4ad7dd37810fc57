// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Every fast call of the SMC ABI, unknown ids, and the register rules.

mod common;

use common::*;
use optee_mediator::abi::{self, caps, ret};
use optee_mediator::msg::{attr, cmd, login, teec, MsgParam};
use optee_mediator::utee::ta::device;
use optee_mediator::{Function, Policy, Quotas, SmcCall, UteeConfig};
use smccc::{Conduit, FunctionId};

#[test]
fn calls_uid_returns_the_optee_api_uid_in_a0_to_a3() {
    let r = guest().fast(abi::CALLS_UID);
    assert_eq!(
        r.regs(),
        &[0x384F_B3E0, 0xE7F8_11E3, 0xAF63_0002, 0xA5D5_C51B]
    );
}

#[test]
fn calls_revision_is_2_0() {
    assert_eq!(guest().fast(abi::CALLS_REVISION).regs(), &[2, 0]);
}

#[test]
fn calls_count_is_the_number_of_answered_functions() {
    assert_eq!(guest().fast(abi::CALLS_COUNT).regs(), &[14]);
}

#[test]
fn get_os_uuid_returns_the_optee_os_uuid() {
    let r = guest().fast(abi::GET_OS_UUID);
    assert_eq!(
        r.regs(),
        &[0x4861_78E0, 0xE7F8_11E3, 0xBC5E_0002, 0xA5D5_C51B]
    );
}

#[test]
fn get_os_revision_reports_the_backend_revision_and_build_id() {
    let mut cfg = UteeConfig::default();
    cfg.revision.major = 3;
    cfg.revision.minor = 22;
    cfg.revision.build_id = 0xabcd;
    let mut g = guest_with(Policy::default(), cfg);
    assert_eq!(g.fast(abi::GET_OS_REVISION).regs(), &[3, 22, 0xabcd]);
}

#[test]
fn exchange_capabilities_offers_dynamic_shm_and_memref_null_and_no_rpc_params() {
    let mut g = guest();
    for nsec in [0, caps::NSEC_UNIPROCESSOR, 0xffff_ffff] {
        let r = g.call(SmcCall::new(abi::EXCHANGE_CAPABILITIES, &[u64::from(nsec)]));
        assert_eq!(r.regs(), &[u64::from(ret::OK), 0x14, 0, 0]);
    }
}

/// A guest is never told OPTEE_SMC_SEC_CAP_VIRTUALIZATION, as Xen's mediator
/// masks it: with it, a Linux guest (7.3 with the TEE series) would take
/// itself for the hypervisor of an NS-virtualization OP-TEE and send the
/// hypervisor-only VM_CREATED. Whatever the guest announces, the bit is clear.
#[test]
fn exchange_capabilities_never_offers_virtualization() {
    let mut g = guest();
    for nsec in [0, caps::NSEC_UNIPROCESSOR, 0xffff_ffff] {
        let r = g.call(SmcCall::new(abi::EXCHANGE_CAPABILITIES, &[u64::from(nsec)]));
        assert_eq!(r.a0(), u64::from(ret::OK));
        assert_eq!(
            r.regs()[1] & u64::from(caps::VIRTUALIZATION),
            0,
            "nsec {nsec:#x}"
        );
    }
}

#[test]
fn get_shm_config_is_not_available() {
    assert_eq!(
        guest().fast(abi::GET_SHM_CONFIG).regs(),
        &[u64::from(ret::ENOTAVAIL)]
    );
}

#[test]
fn get_thread_count_is_the_backend_thread_count() {
    assert_eq!(guest().fast(abi::GET_THREAD_COUNT).regs(), &[0, 8]);
}

#[test]
fn get_thread_count_is_capped_by_the_call_quota() {
    let policy = Policy {
        quotas: Quotas {
            max_calls: Some(3),
            ..Quotas::default()
        },
        ..Policy::default()
    };
    let mut g = guest_with(policy, UteeConfig::default());
    assert_eq!(g.fast(abi::GET_THREAD_COUNT).regs(), &[0, 3]);
}

#[test]
fn shm_cache_calls_succeed_when_idle_and_disable_reports_an_empty_cache() {
    let mut g = guest();
    assert_eq!(
        g.fast(abi::DISABLE_SHM_CACHE).regs(),
        &[u64::from(ret::ENOTAVAIL)]
    );
    assert_eq!(g.fast(abi::ENABLE_SHM_CACHE).regs(), &[u64::from(ret::OK)]);
    assert_eq!(
        g.fast(abi::DISABLE_SHM_CACHE).regs(),
        &[u64::from(ret::ENOTAVAIL)]
    );
}

#[test]
fn async_notification_calls_are_not_available() {
    let mut g = guest();
    assert_eq!(
        g.fast(abi::ENABLE_ASYNC_NOTIF).regs(),
        &[u64::from(ret::ENOTAVAIL)]
    );
    assert_eq!(
        g.fast(abi::GET_ASYNC_NOTIF_VALUE).regs(),
        &[u64::from(ret::ENOTAVAIL)]
    );
}

#[test]
fn unknown_and_forbidden_ids_answer_minus_one_sign_extended_in_x0_only() {
    let mut g = guest();
    let ids = [
        abi::VM_CREATED,
        abi::VM_DESTROYED,
        abi::CALL_LOAD_IMAGE,
        abi::CALL_WITH_RPC_ARG,
        abi::CALL_WITH_REGD_ARG,
        abi::GET_PROTMEM_CONFIG,
        FunctionId(0xB200_0004), // CALL_WITH_ARG as a fast call
        FunctionId(0x7200_0004), // SMC64 twin
        FunctionId(0xF200_0000), // SMC64 GET_OS_UUID
        FunctionId(0xB200_0002),
        FunctionId(0xB200_FFFF),
        FunctionId(0xBD00_0001),
        FunctionId(0x3F00_0001),
    ];
    for id in ids {
        // SMCCC's NOT_SUPPORTED as KVM, Xen and TF-A give it: -1 in x0,
        // which an SMC32 caller reads as w0 = 0xFFFF_FFFF.
        let r = g.call(SmcCall::new(id, &[1, 2, 3, 4, 5, 6, 7]));
        assert_eq!(r.regs(), &[u64::MAX], "{id:?}");
    }
}

#[test]
fn vm_created_from_a_guest_changes_nothing() {
    let mut g = guest();
    let r = g.call(SmcCall::new(abi::VM_DESTROYED, &[1]));
    assert_eq!(r.regs(), &[u64::MAX]);
    let s = g.open(HELLO);
    let out = g.invoke(s, 0, vec![value(attr::VALUE_INOUT, 1)]);
    assert_eq!(out.params[0].a, 2);
}

#[test]
fn every_result_register_is_a_zero_extended_32_bit_value() {
    let mut g = guest();
    for (id, _) in Function::ANSWERED {
        let r = g.call(SmcCall::new(id, &[u64::MAX; 7]));
        assert!(!r.regs().is_empty(), "x0 is always written");
        assert!(
            r.regs().iter().all(|v| *v <= u64::from(u32::MAX)),
            "{id:?}: {:?}",
            r.regs()
        );
    }
}

#[test]
fn upper_halves_of_argument_registers_are_ignored() {
    let mut g = guest();
    let r = g.call(SmcCall::new(
        abi::EXCHANGE_CAPABILITIES,
        &[0xffff_ffff_0000_0000],
    ));
    assert_eq!(r.a0(), 0);
}

#[test]
fn hvc_is_answered_like_smc() {
    let mut g = guest();
    let mut c = SmcCall::new(abi::CALLS_UID, &[]);
    c.conduit = Conduit::Hvc;
    assert_eq!(g.call(c).a0(), 0x384F_B3E0);
}

#[test]
fn linux_probe_sequence_succeeds_and_enumerates_no_devices() {
    // optee_probe(): UID, revision, thread count, capabilities, OS
    // revision, cache flush and enable, then optee_enumerate_devices().
    let mut g = guest();
    assert_eq!(g.fast(abi::CALLS_UID).a0(), 0x384F_B3E0);
    assert_eq!(g.fast(abi::CALLS_REVISION).regs(), &[2, 0]);
    assert_eq!(g.fast(abi::GET_THREAD_COUNT).regs(), &[0, 8]);
    let caps = g.call(SmcCall::new(abi::EXCHANGE_CAPABILITIES, &[0]));
    assert_eq!(caps.regs()[1] as u32 & caps::DYNAMIC_SHM, caps::DYNAMIC_SHM);
    assert_eq!(g.fast(abi::GET_OS_REVISION).regs(), &[4, 0, 0]);
    assert_eq!(
        g.fast(abi::DISABLE_SHM_CACHE).a0(),
        u64::from(ret::ENOTAVAIL)
    );
    assert_eq!(g.fast(abi::ENABLE_SHM_CACHE).a0(), u64::from(ret::OK));
    for lg in [login::PUBLIC, login::REE_KERNEL] {
        let (r, _, s) = g.open_with(DEVICE_PTA, lg, vec![]);
        assert_eq!(r, teec::SUCCESS);
        // get_devices() with no buffer: a NULL temporary memref of size 0.
        let out = g.invoke(
            s,
            device::CMD_GET_DEVICES,
            vec![
                MsgParam::new(attr::TMEM_OUTPUT, 0, 0, 0),
                MsgParam::default(),
                MsgParam::default(),
                MsgParam::default(),
            ],
        );
        assert_eq!(out.header.ret, teec::SUCCESS);
        assert_eq!(out.params[0].b, 0, "no devices");
        assert_eq!(g.close(s), teec::SUCCESS);
    }
    assert_eq!(g.m.usage().sessions, 0);
    // optee_smc_remove(): the cache is emptied.
    assert_eq!(
        g.fast(abi::DISABLE_SHM_CACHE).a0(),
        u64::from(ret::ENOTAVAIL)
    );
    let _ = cmd::OPEN_SESSION;
}
