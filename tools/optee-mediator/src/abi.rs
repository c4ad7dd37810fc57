// SPDX-License-Identifier: Apache-2.0 OR MIT
//! OP-TEE's SMC ABI (drivers/tee/optee/optee_smc.h): function ids, return
//! codes, capabilities, RPC functions, and the SMCCC filter ranges a VMM
//! installs to receive these calls.
//!
//! Every OP-TEE call is SMC32: arguments in w0..w7, results in w0..w3,
//! 64-bit values travel as register pairs, high half first.

use smccc::kvm::{FilterAction, KvmSmcccFilter};
use smccc::{CallKind, Convention, FunctionId, FunctionRange, TRUSTED_OS_RANGES};

/// SMCCC owner number of the Trusted OS calls OP-TEE uses (ARM_SMCCC_OWNER_TRUSTED_OS).
pub const OWNER_TRUSTED_OS: u8 = 50;
/// SMCCC owner number of the generic Trusted OS queries (ARM_SMCCC_OWNER_TRUSTED_OS_END).
pub const OWNER_TRUSTED_OS_END: u8 = 63;

const fn fast(owner: u8, number: u16) -> FunctionId {
    FunctionId::new(CallKind::Fast, Convention::Smc32, owner, number)
}

const fn yielding(number: u16) -> FunctionId {
    FunctionId::new(
        CallKind::Yielding,
        Convention::Smc32,
        OWNER_TRUSTED_OS,
        number,
    )
}

/// OPTEE_SMC_CALLS_COUNT.
pub const CALLS_COUNT: FunctionId = fast(OWNER_TRUSTED_OS_END, 0xFF00);
/// OPTEE_SMC_CALLS_UID.
pub const CALLS_UID: FunctionId = fast(OWNER_TRUSTED_OS_END, 0xFF01);
/// OPTEE_SMC_CALLS_REVISION.
pub const CALLS_REVISION: FunctionId = fast(OWNER_TRUSTED_OS_END, 0xFF03);
/// OPTEE_SMC_CALL_LOAD_IMAGE (Linux's insecure firmware loading): always refused.
pub const CALL_LOAD_IMAGE: FunctionId = fast(OWNER_TRUSTED_OS_END, 2);
/// OPTEE_SMC_CALL_GET_OS_UUID.
pub const GET_OS_UUID: FunctionId = fast(OWNER_TRUSTED_OS, 0);
/// OPTEE_SMC_CALL_GET_OS_REVISION.
pub const GET_OS_REVISION: FunctionId = fast(OWNER_TRUSTED_OS, 1);
/// OPTEE_SMC_CALL_RETURN_FROM_RPC.
pub const RETURN_FROM_RPC: FunctionId = yielding(3);
/// OPTEE_SMC_CALL_WITH_ARG.
pub const CALL_WITH_ARG: FunctionId = yielding(4);
/// OPTEE_SMC_GET_SHM_CONFIG.
pub const GET_SHM_CONFIG: FunctionId = fast(OWNER_TRUSTED_OS, 7);
/// OPTEE_SMC_EXCHANGE_CAPABILITIES.
pub const EXCHANGE_CAPABILITIES: FunctionId = fast(OWNER_TRUSTED_OS, 9);
/// OPTEE_SMC_DISABLE_SHM_CACHE.
pub const DISABLE_SHM_CACHE: FunctionId = fast(OWNER_TRUSTED_OS, 10);
/// OPTEE_SMC_ENABLE_SHM_CACHE.
pub const ENABLE_SHM_CACHE: FunctionId = fast(OWNER_TRUSTED_OS, 11);
/// OPTEE_SMC_VM_CREATED: hypervisor only, refused from a guest.
pub const VM_CREATED: FunctionId = fast(OWNER_TRUSTED_OS, 13);
/// OPTEE_SMC_VM_DESTROYED: hypervisor only, refused from a guest.
pub const VM_DESTROYED: FunctionId = fast(OWNER_TRUSTED_OS, 14);
/// OPTEE_SMC_GET_THREAD_COUNT.
pub const GET_THREAD_COUNT: FunctionId = fast(OWNER_TRUSTED_OS, 15);
/// OPTEE_SMC_ENABLE_ASYNC_NOTIF.
pub const ENABLE_ASYNC_NOTIF: FunctionId = fast(OWNER_TRUSTED_OS, 16);
/// OPTEE_SMC_GET_ASYNC_NOTIF_VALUE.
pub const GET_ASYNC_NOTIF_VALUE: FunctionId = fast(OWNER_TRUSTED_OS, 17);
/// OPTEE_SMC_CALL_WITH_RPC_ARG (only with SEC_CAP_RPC_ARG, never offered).
pub const CALL_WITH_RPC_ARG: FunctionId = yielding(18);
/// OPTEE_SMC_CALL_WITH_REGD_ARG (only with SEC_CAP_RPC_ARG, never offered).
pub const CALL_WITH_REGD_ARG: FunctionId = yielding(19);
/// OPTEE_SMC_GET_PROTMEM_CONFIG (only with SEC_CAP_PROTMEM, never offered).
pub const GET_PROTMEM_CONFIG: FunctionId = fast(OWNER_TRUSTED_OS, 20);

/// OPTEE_MSG_UID_0..3: the API UID returned by CALLS_UID.
pub const API_UID: [u32; 4] = [0x384F_B3E0, 0xE7F8_11E3, 0xAF63_0002, 0xA5D5_C51B];
/// OPTEE_MSG_OS_OPTEE_UUID_0..3: the Trusted OS UUID returned by GET_OS_UUID.
pub const OS_UUID: [u32; 4] = [0x4861_78E0, 0xE7F8_11E3, 0xBC5E_0002, 0xA5D5_C51B];
/// OPTEE_MSG_REVISION_MAJOR / MINOR.
pub const API_REVISION: (u32, u32) = (2, 0);

/// OPTEE_SMC_SHM_CACHED: the only cache setting of a CALL_WITH_ARG argument.
pub const SHM_CACHED: u32 = 1;

/// OPTEE_SMC_RETURN_* codes, returned in w0.
pub mod ret {
    /// OPTEE_SMC_RETURN_OK.
    pub const OK: u32 = 0;
    /// OPTEE_SMC_RETURN_ETHREAD_LIMIT: no thread free, retry later.
    pub const ETHREAD_LIMIT: u32 = 1;
    /// OPTEE_SMC_RETURN_EBUSY.
    pub const EBUSY: u32 = 2;
    /// OPTEE_SMC_RETURN_ERESUME: the resume information was corrupt.
    pub const ERESUME: u32 = 3;
    /// OPTEE_SMC_RETURN_EBADADDR: bad physical pointer to the argument.
    pub const EBADADDR: u32 = 4;
    /// OPTEE_SMC_RETURN_EBADCMD: bad command in the argument.
    pub const EBADCMD: u32 = 5;
    /// OPTEE_SMC_RETURN_ENOMEM.
    pub const ENOMEM: u32 = 6;
    /// OPTEE_SMC_RETURN_ENOTAVAIL.
    pub const ENOTAVAIL: u32 = 7;
    /// OPTEE_SMC_RETURN_UNKNOWN_FUNCTION, SMCCC's NOT_SUPPORTED (-1): in w0,
    /// 32 bits of ones. The mediator answers an unknown id with x0 = -1
    /// sign-extended ([`crate::SmcResult::unknown_function`]), as KVM, Xen
    /// and TF-A do, so that an SMC64 caller sees -1 too.
    pub const UNKNOWN_FUNCTION: u32 = 0xFFFF_FFFF;
    /// OPTEE_SMC_RETURN_RPC_PREFIX.
    pub const RPC_PREFIX: u32 = 0xFFFF_0000;
    /// OPTEE_SMC_RETURN_RPC_ALLOC: allocate an RPC argument buffer (a1 = size).
    pub const RPC_ALLOC: u32 = RPC_PREFIX | super::rpc_func::ALLOC;
    /// OPTEE_SMC_RETURN_RPC_FREE: free an RPC argument buffer (a1:a2 = cookie).
    pub const RPC_FREE: u32 = RPC_PREFIX | super::rpc_func::FREE;
    /// OPTEE_SMC_RETURN_RPC_FOREIGN_INTR: let the normal world take an interrupt.
    pub const RPC_FOREIGN_INTR: u32 = RPC_PREFIX | super::rpc_func::FOREIGN_INTR;
    /// OPTEE_SMC_RETURN_RPC_CMD: serve the optee_msg_arg in buffer a1:a2.
    pub const RPC_CMD: u32 = RPC_PREFIX | super::rpc_func::CMD;

    /// OPTEE_SMC_RETURN_IS_RPC().
    pub const fn is_rpc(ret: u32) -> bool {
        ret != UNKNOWN_FUNCTION && ret & 0xFFFF_0000 == RPC_PREFIX
    }
}

/// OPTEE_SMC_RPC_FUNC_*: the low half of an RPC return code.
pub mod rpc_func {
    /// OPTEE_SMC_RPC_FUNC_ALLOC.
    pub const ALLOC: u32 = 0;
    /// OPTEE_SMC_RPC_FUNC_FREE.
    pub const FREE: u32 = 2;
    /// OPTEE_SMC_RPC_FUNC_FOREIGN_INTR.
    pub const FOREIGN_INTR: u32 = 4;
    /// OPTEE_SMC_RPC_FUNC_CMD.
    pub const CMD: u32 = 5;
}

/// Capabilities (OPTEE_SMC_NSEC_CAP_* / OPTEE_SMC_SEC_CAP_*).
pub mod caps {
    /// OPTEE_SMC_NSEC_CAP_UNIPROCESSOR: the only normal world capability.
    pub const NSEC_UNIPROCESSOR: u32 = 1 << 0;
    /// OPTEE_SMC_SEC_CAP_HAVE_RESERVED_SHM.
    pub const HAVE_RESERVED_SHM: u32 = 1 << 0;
    /// OPTEE_SMC_SEC_CAP_UNREGISTERED_SHM.
    pub const UNREGISTERED_SHM: u32 = 1 << 1;
    /// OPTEE_SMC_SEC_CAP_DYNAMIC_SHM.
    pub const DYNAMIC_SHM: u32 = 1 << 2;
    /// OPTEE_SMC_SEC_CAP_VIRTUALIZATION.
    pub const VIRTUALIZATION: u32 = 1 << 3;
    /// OPTEE_SMC_SEC_CAP_MEMREF_NULL.
    pub const MEMREF_NULL: u32 = 1 << 4;
    /// OPTEE_SMC_SEC_CAP_ASYNC_NOTIF.
    pub const ASYNC_NOTIF: u32 = 1 << 5;
    /// OPTEE_SMC_SEC_CAP_RPC_ARG.
    pub const RPC_ARG: u32 = 1 << 6;
    /// OPTEE_SMC_SEC_CAP_RPMB_PROBE.
    pub const RPMB_PROBE: u32 = 1 << 7;
    /// OPTEE_SMC_SEC_CAP_PROTMEM.
    pub const PROTMEM: u32 = 1 << 8;
    /// OPTEE_SMC_SEC_CAP_DYNAMIC_PROTMEM.
    pub const DYNAMIC_PROTMEM: u32 = 1 << 9;

    /// What the mediator offers a guest, as Xen does: registered (dynamic)
    /// shared memory and NULL memory references; no reserved SHM, no
    /// asynchronous notifications, no pre-allocated RPC argument.
    pub const OFFERED: u32 = DYNAMIC_SHM | MEMREF_NULL;
}

/// The calls of the ABI, decoded from a function id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// CALLS_COUNT.
    CallsCount,
    /// CALLS_UID.
    CallsUid,
    /// CALLS_REVISION.
    CallsRevision,
    /// GET_OS_UUID.
    GetOsUuid,
    /// GET_OS_REVISION.
    GetOsRevision,
    /// RETURN_FROM_RPC.
    ReturnFromRpc,
    /// CALL_WITH_ARG.
    CallWithArg,
    /// GET_SHM_CONFIG.
    GetShmConfig,
    /// EXCHANGE_CAPABILITIES.
    ExchangeCapabilities,
    /// DISABLE_SHM_CACHE.
    DisableShmCache,
    /// ENABLE_SHM_CACHE.
    EnableShmCache,
    /// GET_THREAD_COUNT.
    GetThreadCount,
    /// ENABLE_ASYNC_NOTIF.
    EnableAsyncNotif,
    /// GET_ASYNC_NOTIF_VALUE.
    GetAsyncNotifValue,
    /// Anything else, including the hypervisor-only VM_CREATED/VM_DESTROYED,
    /// CALL_LOAD_IMAGE and the calls needing capabilities never offered.
    Unknown,
}

impl Function {
    /// Every answered function, with its id.
    pub const ANSWERED: [(FunctionId, Function); 14] = [
        (CALLS_COUNT, Function::CallsCount),
        (CALLS_UID, Function::CallsUid),
        (CALLS_REVISION, Function::CallsRevision),
        (GET_OS_UUID, Function::GetOsUuid),
        (GET_OS_REVISION, Function::GetOsRevision),
        (RETURN_FROM_RPC, Function::ReturnFromRpc),
        (CALL_WITH_ARG, Function::CallWithArg),
        (GET_SHM_CONFIG, Function::GetShmConfig),
        (EXCHANGE_CAPABILITIES, Function::ExchangeCapabilities),
        (DISABLE_SHM_CACHE, Function::DisableShmCache),
        (ENABLE_SHM_CACHE, Function::EnableShmCache),
        (GET_THREAD_COUNT, Function::GetThreadCount),
        (ENABLE_ASYNC_NOTIF, Function::EnableAsyncNotif),
        (GET_ASYNC_NOTIF_VALUE, Function::GetAsyncNotifValue),
    ];

    /// Decodes a function id (exact match: an SMC64 or fast/yielding twin
    /// of a known id is unknown).
    pub fn decode(id: FunctionId) -> Function {
        Self::ANSWERED
            .iter()
            .find(|(fid, _)| *fid == id)
            .map_or(Function::Unknown, |(_, f)| *f)
    }

    /// How many argument registers after x0 the function reads (x1..xN).
    /// The client id register a7 is never read: the mediator stamps it.
    pub const fn args_used(self) -> usize {
        match self {
            Function::CallWithArg => 3,
            Function::ReturnFromRpc => 5,
            Function::ExchangeCapabilities => 1,
            _ => 0,
        }
    }
}

/// The SMCCC function id ranges a VMM must forward to userspace (KVM's
/// SMCCC filter, action FWD_TO_USER) for this library to see every call of
/// the ABI: the Trusted OS owners 50..=63, fast and yielding, SMC32 and
/// SMC64. Calls of these ranges that the ABI does not define are answered
/// UNKNOWN_FUNCTION by the mediator, so none stays unanswered.
pub const FILTER_RANGES: [FunctionRange; 4] = TRUSTED_OS_RANGES;

/// [`FILTER_RANGES`] as the payloads of KVM_ARM_VM_SMCCC_FILTER.
pub fn kvm_filters() -> [KvmSmcccFilter; 4] {
    FILTER_RANGES.map(|r| KvmSmcccFilter::new(r, FilterAction::FwdToUser))
}

/// Joins a register pair, high half first (reg_pair_to_ptr).
pub const fn reg_pair(hi: u64, lo: u64) -> u64 {
    ((hi as u32 as u64) << 32) | lo as u32 as u64
}

/// Splits a 64-bit value into a register pair (high, low).
pub const fn split_pair(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_ids_match_optee_smc_h() {
        let want: [(FunctionId, u32); 21] = [
            (CALLS_COUNT, 0xBF00_FF00),
            (CALLS_UID, 0xBF00_FF01),
            (CALLS_REVISION, 0xBF00_FF03),
            (CALL_LOAD_IMAGE, 0xBF00_0002),
            (GET_OS_UUID, 0xB200_0000),
            (GET_OS_REVISION, 0xB200_0001),
            (RETURN_FROM_RPC, 0x3200_0003),
            (CALL_WITH_ARG, 0x3200_0004),
            (GET_SHM_CONFIG, 0xB200_0007),
            (EXCHANGE_CAPABILITIES, 0xB200_0009),
            (DISABLE_SHM_CACHE, 0xB200_000A),
            (ENABLE_SHM_CACHE, 0xB200_000B),
            (VM_CREATED, 0xB200_000D),
            (VM_DESTROYED, 0xB200_000E),
            (GET_THREAD_COUNT, 0xB200_000F),
            (ENABLE_ASYNC_NOTIF, 0xB200_0010),
            (GET_ASYNC_NOTIF_VALUE, 0xB200_0011),
            (CALL_WITH_RPC_ARG, 0x3200_0012),
            (CALL_WITH_REGD_ARG, 0x3200_0013),
            (GET_PROTMEM_CONFIG, 0xB200_0014),
            (FunctionId(ret::RPC_CMD), 0xFFFF_0005),
        ];
        for (id, raw) in want {
            assert_eq!(id.0, raw, "{id:?}");
        }
        assert_eq!(ret::RPC_ALLOC, 0xFFFF_0000);
        assert_eq!(ret::RPC_FREE, 0xFFFF_0002);
        assert_eq!(ret::RPC_FOREIGN_INTR, 0xFFFF_0004);
    }

    #[test]
    fn every_answered_id_lies_in_the_filter_ranges() {
        for (id, _) in Function::ANSWERED {
            assert!(FILTER_RANGES.iter().any(|r| r.contains(id)), "{id:?}");
        }
        for id in [VM_CREATED, VM_DESTROYED, CALL_LOAD_IMAGE] {
            assert!(FILTER_RANGES.iter().any(|r| r.contains(id)), "{id:?}");
        }
    }

    #[test]
    fn kvm_filters_forward_the_four_trusted_os_ranges_to_userspace() {
        let f = kvm_filters();
        assert_eq!(
            f.map(|f| f.base),
            [0x3200_0000, 0x7200_0000, 0xB200_0000, 0xF200_0000]
        );
        assert!(f.iter().all(|f| f.action == FilterAction::FwdToUser as u8));
        assert!(f.iter().all(|f| f.nr_functions == 0x0E00_0000));
    }

    #[test]
    fn hypervisor_only_and_never_offered_ids_decode_as_unknown() {
        for id in [
            VM_CREATED,
            VM_DESTROYED,
            CALL_LOAD_IMAGE,
            CALL_WITH_RPC_ARG,
            CALL_WITH_REGD_ARG,
            GET_PROTMEM_CONFIG,
            FunctionId(0xB200_0004),
            FunctionId(0x7200_0004),
            FunctionId(0xF200_0009),
        ] {
            assert_eq!(Function::decode(id), Function::Unknown, "{id:?}");
        }
    }

    #[test]
    fn rpc_returns_are_recognised_and_unknown_function_is_not_one() {
        assert!(ret::is_rpc(ret::RPC_CMD));
        assert!(ret::is_rpc(ret::RPC_ALLOC));
        assert!(!ret::is_rpc(ret::UNKNOWN_FUNCTION));
        assert!(!ret::is_rpc(ret::OK));
    }

    #[test]
    fn register_pairs_carry_the_high_half_first_and_ignore_upper_bits() {
        assert_eq!(
            reg_pair(0xdead_0000_0000_0001, 0xffff_ffff_2000_0000),
            0x1_2000_0000
        );
        assert_eq!(
            split_pair(0x1234_5678_9abc_def0),
            (0x1234_5678, 0x9abc_def0)
        );
    }

    #[test]
    fn offered_capabilities_are_dynamic_shm_and_memref_null_only() {
        assert_eq!(caps::OFFERED, 0x14);
    }
}
