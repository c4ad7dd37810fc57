// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `struct optee_msg_arg` and `struct optee_msg_param` (optee_msg.h),
//! parsed from and encoded to little-endian bytes: never a pointer cast on
//! guest memory.

use crate::mem::{GuestRam, MemError};

/// Size of the `optee_msg_arg` header.
pub const HEADER_SIZE: usize = 32;
/// Size of one `optee_msg_param`.
pub const PARAM_SIZE: usize = 32;
/// OPTEE_MSG_NONCONTIG_PAGE_SIZE: the ABI's page, whatever the guest's.
pub const PAGE_SIZE: u64 = 4096;
/// The most parameters whose argument still fits its 4 KiB page.
pub const MAX_PARAMS: u32 = ((PAGE_SIZE as usize - HEADER_SIZE) / PARAM_SIZE) as u32;

/// Byte offsets in `optee_msg_arg`, for field-by-field write-back.
pub mod off {
    /// `session`.
    pub const SESSION: u64 = 0x08;
    /// `ret`.
    pub const RET: u64 = 0x14;
    /// `ret_origin`.
    pub const RET_ORIGIN: u64 = 0x18;
    /// `params[0]`.
    pub const PARAMS: u64 = 0x20;
    /// `value.a` within a parameter.
    pub const VALUE_A: u64 = 0x08;
    /// `tmem.size` / `rmem.size` within a parameter.
    pub const MEM_SIZE: u64 = 0x10;
}

/// OPTEE_MSG_CMD_*.
pub mod cmd {
    /// OPTEE_MSG_CMD_OPEN_SESSION.
    pub const OPEN_SESSION: u32 = 0;
    /// OPTEE_MSG_CMD_INVOKE_COMMAND.
    pub const INVOKE_COMMAND: u32 = 1;
    /// OPTEE_MSG_CMD_CLOSE_SESSION.
    pub const CLOSE_SESSION: u32 = 2;
    /// OPTEE_MSG_CMD_CANCEL.
    pub const CANCEL: u32 = 3;
    /// OPTEE_MSG_CMD_REGISTER_SHM.
    pub const REGISTER_SHM: u32 = 4;
    /// OPTEE_MSG_CMD_UNREGISTER_SHM.
    pub const UNREGISTER_SHM: u32 = 5;
    /// OPTEE_MSG_CMD_DO_BOTTOM_HALF (refused: no async notifications).
    pub const DO_BOTTOM_HALF: u32 = 6;
    /// OPTEE_MSG_CMD_STOP_ASYNC_NOTIF (refused: no async notifications).
    pub const STOP_ASYNC_NOTIF: u32 = 7;
}

/// OPTEE_MSG_ATTR_*.
pub mod attr {
    /// OPTEE_MSG_ATTR_TYPE_NONE.
    pub const NONE: u64 = 0x0;
    /// OPTEE_MSG_ATTR_TYPE_VALUE_INPUT.
    pub const VALUE_INPUT: u64 = 0x1;
    /// OPTEE_MSG_ATTR_TYPE_VALUE_OUTPUT.
    pub const VALUE_OUTPUT: u64 = 0x2;
    /// OPTEE_MSG_ATTR_TYPE_VALUE_INOUT.
    pub const VALUE_INOUT: u64 = 0x3;
    /// OPTEE_MSG_ATTR_TYPE_RMEM_INPUT.
    pub const RMEM_INPUT: u64 = 0x5;
    /// OPTEE_MSG_ATTR_TYPE_RMEM_OUTPUT.
    pub const RMEM_OUTPUT: u64 = 0x6;
    /// OPTEE_MSG_ATTR_TYPE_RMEM_INOUT.
    pub const RMEM_INOUT: u64 = 0x7;
    /// OPTEE_MSG_ATTR_TYPE_TMEM_INPUT.
    pub const TMEM_INPUT: u64 = 0x9;
    /// OPTEE_MSG_ATTR_TYPE_TMEM_OUTPUT.
    pub const TMEM_OUTPUT: u64 = 0xA;
    /// OPTEE_MSG_ATTR_TYPE_TMEM_INOUT.
    pub const TMEM_INOUT: u64 = 0xB;
    /// OPTEE_MSG_ATTR_TYPE_MASK.
    pub const TYPE_MASK: u64 = 0xFF;
    /// OPTEE_MSG_ATTR_META.
    pub const META: u64 = 1 << 8;
    /// OPTEE_MSG_ATTR_NONCONTIG.
    pub const NONCONTIG: u64 = 1 << 9;
    /// OPTEE_MSG_ATTR_CACHE_MASK << OPTEE_MSG_ATTR_CACHE_SHIFT.
    pub const CACHE_FIELD: u64 = 0x7 << 16;
    /// Every bit a parameter attribute may have.
    pub const KNOWN: u64 = TYPE_MASK | META | NONCONTIG | CACHE_FIELD;
}

/// OPTEE_MSG_LOGIN_* / TEE_IOCTL_LOGIN_*.
pub mod login {
    /// Public.
    pub const PUBLIC: u32 = 0;
    /// User.
    pub const USER: u32 = 1;
    /// Group.
    pub const GROUP: u32 = 2;
    /// Application.
    pub const APPLICATION: u32 = 4;
    /// Application and user.
    pub const APPLICATION_USER: u32 = 5;
    /// Application and group.
    pub const APPLICATION_GROUP: u32 = 6;
    /// First REE kernel login (TEE_IOCTL_LOGIN_REE_KERNEL_MIN).
    pub const REE_KERNEL_MIN: u32 = 0x8000_0000;
    /// Last REE kernel login (TEE_IOCTL_LOGIN_REE_KERNEL_MAX).
    pub const REE_KERNEL_MAX: u32 = 0xBFFF_FFFF;
    /// TEE_IOCTL_LOGIN_REE_KERNEL.
    pub const REE_KERNEL: u32 = 0x8000_0000;

    /// Whether `l` is one of the REE kernel logins.
    pub const fn is_kernel(l: u32) -> bool {
        l >= REE_KERNEL_MIN && l <= REE_KERNEL_MAX
    }
}

/// TEEC_* / TEE_* results and origins used in `optee_msg_arg.ret`.
pub mod teec {
    /// TEEC_SUCCESS.
    pub const SUCCESS: u32 = 0;
    /// TEEC_ERROR_GENERIC.
    pub const ERROR_GENERIC: u32 = 0xFFFF_0000;
    /// TEEC_ERROR_ACCESS_DENIED.
    pub const ERROR_ACCESS_DENIED: u32 = 0xFFFF_0001;
    /// TEEC_ERROR_CANCEL.
    pub const ERROR_CANCEL: u32 = 0xFFFF_0002;
    /// TEEC_ERROR_BAD_FORMAT.
    pub const ERROR_BAD_FORMAT: u32 = 0xFFFF_0005;
    /// TEEC_ERROR_BAD_PARAMETERS.
    pub const ERROR_BAD_PARAMETERS: u32 = 0xFFFF_0006;
    /// TEEC_ERROR_BAD_STATE.
    pub const ERROR_BAD_STATE: u32 = 0xFFFF_0007;
    /// TEEC_ERROR_ITEM_NOT_FOUND.
    pub const ERROR_ITEM_NOT_FOUND: u32 = 0xFFFF_0008;
    /// TEEC_ERROR_NOT_SUPPORTED.
    pub const ERROR_NOT_SUPPORTED: u32 = 0xFFFF_000A;
    /// TEEC_ERROR_OUT_OF_MEMORY.
    pub const ERROR_OUT_OF_MEMORY: u32 = 0xFFFF_000C;
    /// TEEC_ERROR_BUSY.
    pub const ERROR_BUSY: u32 = 0xFFFF_000D;
    /// TEEC_ERROR_COMMUNICATION.
    pub const ERROR_COMMUNICATION: u32 = 0xFFFF_000E;
    /// TEEC_ERROR_SHORT_BUFFER.
    pub const ERROR_SHORT_BUFFER: u32 = 0xFFFF_0010;
    /// TEEC_ORIGIN_API.
    pub const ORIGIN_API: u32 = 1;
    /// TEEC_ORIGIN_COMMS: the error comes from the communication stack (us).
    pub const ORIGIN_COMMS: u32 = 2;
    /// TEEC_ORIGIN_TEE.
    pub const ORIGIN_TEE: u32 = 3;
    /// TEEC_ORIGIN_TRUSTED_APP.
    pub const ORIGIN_TRUSTED_APP: u32 = 4;
}

/// OPTEE_RPC_CMD_* (optee_rpc_cmd.h): requests the TEE makes of the normal world.
pub mod rpc_cmd {
    /// OPTEE_RPC_CMD_LOAD_TA (served by tee-supplicant).
    pub const LOAD_TA: u32 = 0;
    /// OPTEE_RPC_CMD_GET_TIME.
    pub const GET_TIME: u32 = 3;
    /// OPTEE_RPC_CMD_NOTIFICATION.
    pub const NOTIFICATION: u32 = 4;
    /// OPTEE_RPC_CMD_SUSPEND.
    pub const SUSPEND: u32 = 5;
    /// OPTEE_RPC_CMD_SHM_ALLOC.
    pub const SHM_ALLOC: u32 = 6;
    /// OPTEE_RPC_CMD_SHM_FREE.
    pub const SHM_FREE: u32 = 7;
    /// OPTEE_RPC_SHM_TYPE_APPL (served by tee-supplicant).
    pub const SHM_TYPE_APPL: u64 = 0;
    /// OPTEE_RPC_SHM_TYPE_KERNEL (served by the guest kernel itself).
    pub const SHM_TYPE_KERNEL: u64 = 1;
}

/// Why an argument could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    /// The argument is not 4 KiB aligned.
    #[error("optee_msg_arg at {0:#x} is not 4 KiB aligned")]
    Unaligned(u64),
    /// The argument could not be read from guest memory.
    #[error("optee_msg_arg unreadable: {0}")]
    Memory(#[from] MemError),
    /// num_params makes the argument overflow its page.
    #[error("optee_msg_arg has {0} parameters, more than the {MAX_PARAMS} that fit a 4 KiB page")]
    TooManyParams(u32),
}

/// The `optee_msg_arg` header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgHeader {
    /// Command, OPTEE_MSG_CMD_* (or OPTEE_RPC_CMD_* in an RPC).
    pub cmd: u32,
    /// Trusted application function (INVOKE).
    pub func: u32,
    /// Session id.
    pub session: u32,
    /// Cancellation id.
    pub cancel_id: u32,
    /// Padding.
    pub pad: u32,
    /// Result.
    pub ret: u32,
    /// Origin of the result.
    pub ret_origin: u32,
    /// Number of parameters that follow.
    pub num_params: u32,
}

fn le32(b: &[u8; HEADER_SIZE], at: usize) -> u32 {
    let mut w = [0u8; 4];
    for (i, byte) in w.iter_mut().enumerate() {
        *byte = b.get(at + i).copied().unwrap_or(0);
    }
    u32::from_le_bytes(w)
}

fn le64(b: &[u8; PARAM_SIZE], at: usize) -> u64 {
    let mut w = [0u8; 8];
    for (i, byte) in w.iter_mut().enumerate() {
        *byte = b.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(w)
}

impl MsgHeader {
    /// Parses the 32 header bytes.
    pub fn parse(b: &[u8; HEADER_SIZE]) -> Self {
        MsgHeader {
            cmd: le32(b, 0),
            func: le32(b, 4),
            session: le32(b, 8),
            cancel_id: le32(b, 12),
            pad: le32(b, 16),
            ret: le32(b, 20),
            ret_origin: le32(b, 24),
            num_params: le32(b, 28),
        }
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        let words = [
            self.cmd,
            self.func,
            self.session,
            self.cancel_id,
            self.pad,
            self.ret,
            self.ret_origin,
            self.num_params,
        ];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// The direction of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Normal world to TEE.
    In,
    /// TEE to normal world.
    Out,
    /// Both.
    InOut,
}

impl Dir {
    /// Whether the TEE reads it.
    pub const fn is_input(self) -> bool {
        matches!(self, Dir::In | Dir::InOut)
    }
    /// Whether the TEE writes it.
    pub const fn is_output(self) -> bool {
        matches!(self, Dir::Out | Dir::InOut)
    }
    const fn from_low_bits(t: u64) -> Dir {
        match t & 3 {
            1 => Dir::In,
            2 => Dir::Out,
            _ => Dir::InOut,
        }
    }
}

/// The type of a parameter (attribute bits 7:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// Unused.
    None,
    /// Three 64-bit values.
    Value(Dir),
    /// Registered memory: offset in a buffer registered with REGISTER_SHM.
    Rmem(Dir),
    /// Temporary memory: a buffer for this call only (a page list with NONCONTIG).
    Tmem(Dir),
}

impl ParamType {
    /// Decodes the type bits; `None` for the reserved type values.
    pub const fn decode(attr: u64) -> Option<ParamType> {
        let t = attr & attr::TYPE_MASK;
        match t {
            0 => Some(ParamType::None),
            1..=3 => Some(ParamType::Value(Dir::from_low_bits(t))),
            5..=7 => Some(ParamType::Rmem(Dir::from_low_bits(t))),
            9..=11 => Some(ParamType::Tmem(Dir::from_low_bits(t))),
            _ => None,
        }
    }
}

/// One `optee_msg_param`: the attribute and its three 64-bit words
/// (value a/b/c, tmem buf_ptr/size/shm_ref, rmem offs/size/shm_ref).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgParam {
    /// Attribute.
    pub attr: u64,
    /// First word.
    pub a: u64,
    /// Second word.
    pub b: u64,
    /// Third word.
    pub c: u64,
}

impl MsgParam {
    /// A parameter from its attribute and words.
    pub const fn new(attr: u64, a: u64, b: u64, c: u64) -> Self {
        MsgParam { attr, a, b, c }
    }

    /// Parses 32 bytes.
    pub fn parse(b: &[u8; PARAM_SIZE]) -> Self {
        MsgParam {
            attr: le64(b, 0),
            a: le64(b, 8),
            b: le64(b, 16),
            c: le64(b, 24),
        }
    }

    /// Encodes the parameter.
    pub fn encode(&self) -> [u8; PARAM_SIZE] {
        let mut out = [0u8; PARAM_SIZE];
        for (chunk, w) in out
            .chunks_exact_mut(8)
            .zip([self.attr, self.a, self.b, self.c])
        {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// The decoded type, `None` for a reserved type value.
    pub const fn param_type(&self) -> Option<ParamType> {
        ParamType::decode(self.attr)
    }

    /// The 16 octets of a value parameter's a and b (a UUID in OPEN_SESSION).
    pub fn octets(&self) -> [u8; 16] {
        let mut o = [0u8; 16];
        o[..8].copy_from_slice(&self.a.to_le_bytes());
        o[8..].copy_from_slice(&self.b.to_le_bytes());
        o
    }
}

/// A shadow copy of a whole `optee_msg_arg`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgArg {
    /// The header; `num_params` equals `params.len()`.
    pub header: MsgHeader,
    /// The parameters.
    pub params: Vec<MsgParam>,
}

/// The size of an argument with `n` parameters (OPTEE_MSG_GET_ARG_SIZE).
pub const fn arg_size(n: u32) -> u64 {
    HEADER_SIZE as u64 + PARAM_SIZE as u64 * n as u64
}

impl MsgArg {
    /// An argument with this command and parameters.
    pub fn new(cmd: u32, params: Vec<MsgParam>) -> Self {
        let num_params = u32::try_from(params.len()).unwrap_or(u32::MAX);
        MsgArg {
            header: MsgHeader {
                cmd,
                num_params,
                ..MsgHeader::default()
            },
            params,
        }
    }

    /// Reads an argument once from guest memory: the header, then exactly
    /// the `num_params` of that header's copy. The address must be 4 KiB
    /// aligned and the whole argument must fit its page.
    pub fn read(mem: &dyn GuestRam, gpa: u64) -> Result<MsgArg, MsgError> {
        if !gpa.is_multiple_of(PAGE_SIZE) {
            return Err(MsgError::Unaligned(gpa));
        }
        let mut hb = [0u8; HEADER_SIZE];
        mem.read(gpa, &mut hb)?;
        let header = MsgHeader::parse(&hb);
        if header.num_params > MAX_PARAMS {
            return Err(MsgError::TooManyParams(header.num_params));
        }
        let params = Self::read_params(mem, gpa, header.num_params)?;
        Ok(MsgArg { header, params })
    }

    /// Reads `n` parameters of the argument at `gpa`.
    pub fn read_params(mem: &dyn GuestRam, gpa: u64, n: u32) -> Result<Vec<MsgParam>, MsgError> {
        if n > MAX_PARAMS {
            return Err(MsgError::TooManyParams(n));
        }
        let len = PARAM_SIZE * n as usize;
        let mut raw = vec![0u8; len];
        mem.read(gpa.wrapping_add(HEADER_SIZE as u64), &mut raw)?;
        Ok(raw
            .chunks_exact(PARAM_SIZE)
            .map(|c| {
                let mut b = [0u8; PARAM_SIZE];
                b.copy_from_slice(c);
                MsgParam::parse(&b)
            })
            .collect())
    }

    /// Parses an argument from bytes (the whole argument, header first).
    pub fn parse(bytes: &[u8]) -> Result<MsgArg, MsgError> {
        let mut hb = [0u8; HEADER_SIZE];
        let head = bytes
            .get(..HEADER_SIZE)
            .ok_or(MsgError::Memory(MemError::NotRam {
                gpa: 0,
                len: HEADER_SIZE as u64,
            }))?;
        hb.copy_from_slice(head);
        let header = MsgHeader::parse(&hb);
        if header.num_params > MAX_PARAMS {
            return Err(MsgError::TooManyParams(header.num_params));
        }
        let need = arg_size(header.num_params) as usize;
        let body = bytes
            .get(HEADER_SIZE..need)
            .ok_or(MsgError::Memory(MemError::NotRam {
                gpa: 0,
                len: need as u64,
            }))?;
        let params = body
            .chunks_exact(PARAM_SIZE)
            .map(|c| {
                let mut b = [0u8; PARAM_SIZE];
                b.copy_from_slice(c);
                MsgParam::parse(&b)
            })
            .collect();
        Ok(MsgArg { header, params })
    }

    /// Encodes the argument (header with `num_params` = `params.len()`).
    pub fn encode(&self) -> Vec<u8> {
        let mut h = self.header;
        h.num_params = u32::try_from(self.params.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(HEADER_SIZE + PARAM_SIZE * self.params.len());
        out.extend_from_slice(&h.encode());
        for p in &self.params {
            out.extend_from_slice(&p.encode());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FakeGuestMemory;

    #[test]
    fn header_fields_sit_at_the_offsets_of_optee_msg_h() {
        let h = MsgHeader {
            cmd: 1,
            func: 2,
            session: 3,
            cancel_id: 4,
            pad: 5,
            ret: 6,
            ret_origin: 7,
            num_params: 8,
        };
        let b = h.encode();
        assert_eq!(b[off::SESSION as usize], 3);
        assert_eq!(b[off::RET as usize], 6);
        assert_eq!(b[off::RET_ORIGIN as usize], 7);
        assert_eq!(b[0x1C], 8);
        assert_eq!(MsgHeader::parse(&b), h);
    }

    #[test]
    fn params_round_trip_through_bytes() {
        let p = MsgParam::new(attr::TMEM_OUTPUT | attr::NONCONTIG, 0x1234_5000, 77, 0xdead);
        let b = p.encode();
        assert_eq!(b[off::MEM_SIZE as usize], 77);
        assert_eq!(MsgParam::parse(&b), p);
    }

    #[test]
    fn param_types_decode_as_optee_msg_h_defines_them() {
        assert_eq!(ParamType::decode(0), Some(ParamType::None));
        assert_eq!(ParamType::decode(1), Some(ParamType::Value(Dir::In)));
        assert_eq!(ParamType::decode(2), Some(ParamType::Value(Dir::Out)));
        assert_eq!(ParamType::decode(3), Some(ParamType::Value(Dir::InOut)));
        assert_eq!(ParamType::decode(6), Some(ParamType::Rmem(Dir::Out)));
        assert_eq!(ParamType::decode(0xB), Some(ParamType::Tmem(Dir::InOut)));
        for reserved in [4u64, 8, 0xC, 0xFF] {
            assert_eq!(ParamType::decode(reserved), None);
        }
        assert_eq!(
            ParamType::decode(attr::META | attr::VALUE_INPUT),
            Some(ParamType::Value(Dir::In))
        );
    }

    #[test]
    fn max_params_is_the_most_that_fit_a_page() {
        assert_eq!(MAX_PARAMS, 127);
        assert!(arg_size(MAX_PARAMS) <= PAGE_SIZE);
        assert!(arg_size(MAX_PARAMS + 1) > PAGE_SIZE);
    }

    #[test]
    fn read_refuses_an_unaligned_argument() {
        let mem = FakeGuestMemory::new(&[(0x4000_0000, 0x10000)]);
        assert_eq!(
            MsgArg::read(&mem, 0x4000_0010),
            Err(MsgError::Unaligned(0x4000_0010))
        );
    }

    #[test]
    fn read_refuses_more_params_than_fit_a_page() {
        let mem = FakeGuestMemory::new(&[(0x4000_0000, 0x10000)]);
        let arg = MsgArg::new(cmd::INVOKE_COMMAND, vec![]);
        let mut b = arg.encode();
        b[0x1C] = 128;
        mem.write(0x4000_0000, &b).unwrap();
        assert_eq!(
            MsgArg::read(&mem, 0x4000_0000),
            Err(MsgError::TooManyParams(128))
        );
    }

    #[test]
    fn read_refuses_an_argument_in_a_hole() {
        let mem = FakeGuestMemory::new(&[(0x4000_0000, 0x1000)]);
        assert!(matches!(
            MsgArg::read(&mem, 0x5000_0000),
            Err(MsgError::Memory(_))
        ));
    }

    #[test]
    fn read_returns_what_was_written() {
        let mem = FakeGuestMemory::new(&[(0x4000_0000, 0x2000)]);
        let mut arg = MsgArg::new(
            cmd::INVOKE_COMMAND,
            vec![MsgParam::new(attr::VALUE_INOUT, 1, 2, 3)],
        );
        arg.header.func = 9;
        mem.write(0x4000_1000, &arg.encode()).unwrap();
        assert_eq!(MsgArg::read(&mem, 0x4000_1000), Ok(arg.clone()));
        assert_eq!(MsgArg::parse(&arg.encode()), Ok(arg));
    }

    #[test]
    fn parse_refuses_truncated_bytes() {
        let arg = MsgArg::new(cmd::INVOKE_COMMAND, vec![MsgParam::default(); 2]);
        let b = arg.encode();
        assert!(MsgArg::parse(&b[..b.len() - 1]).is_err());
        assert!(MsgArg::parse(&b[..10]).is_err());
    }

    #[test]
    fn octets_are_the_bytes_of_a_then_b_in_memory_order() {
        let p = MsgParam::new(
            0,
            u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]),
            0x100f0e0d0c0b0a09,
            0,
        );
        assert_eq!(
            p.octets(),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
        );
    }

    #[test]
    fn kernel_logins_are_the_ree_kernel_range() {
        assert!(login::is_kernel(login::REE_KERNEL));
        assert!(login::is_kernel(0xBFFF_FFFF));
        assert!(!login::is_kernel(0xC000_0000));
        assert!(!login::is_kernel(login::PUBLIC));
    }
}
