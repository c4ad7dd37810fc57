// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `--partition-mark NAME`, `--partition-expect NAME|none`,
//! `--partition-expect-stored NAME` and `--partition-clear`: marks left in one OP-TEE NS-virtualization
//! partition (its secure storage and its TA instances), then looked for
//! from another, to show that partitions do not see each other's. They use
//! two TAs that Debian's optee-test package installs in /lib/optee_armtz:
//!
//! - **storage2** ([`STORAGE2_UUID`], TA_STORAGE2_UUID in optee_test's
//!   ta/include/ta_storage.h): xtest's storage TA built under a second UUID
//!   (the same code; xtest uses it to show that a TA cannot open another
//!   TA's objects). The mark is a persistent object in TEE_STORAGE_PRIVATE
//!   with the id [`OBJECT_ID`] whose data is NAME. Not the storage TA
//!   itself (TA_STORAGE_UUID): objects are per TA, and xtest's 6009 and
//!   6010 enumerate the storage TA's objects and expect none but their own,
//!   so a mark left there would fail them.
//! - **sims_keepalive** ([`SIMS_KEEPALIVE_UUID`]): the sims TA's code
//!   (single instance, multi session; its WRITE and READ keep blobs in four
//!   slots of the instance's memory) with TA_FLAG_INSTANCE_KEEP_ALIVE, so
//!   that the instance, and the blob, outlive the client's session. The
//!   sims TA itself (e6a33ed4-...) is not keep-alive: its instance, and
//!   what was written to it, ends with the last session. The mark is NAME
//!   written to slot [`SIMS_SLOT`] (xtest uses slot 0 of sims only).
//!
//! The modes:
//!
//! - `--partition-mark NAME`: creates the object with TEE_DATA_FLAG_OVERWRITE
//!   and NAME as its data, writes NAME to the sims_keepalive slot, and reads
//!   both back;
//! - `--partition-expect NAME`: the object's data and the slot must be NAME;
//!   `--partition-expect none`: the object must not exist (OPEN answers
//!   TEE_ERROR_ITEM_NOT_FOUND) and the slot must be empty, as it is in a
//!   fresh instance (the slots are a zero-initialized static array);
//! - `--partition-expect-stored NAME`: the object's data must be NAME and
//!   the slot empty: the partition was destroyed and made again (a reboot,
//!   or a kexec: the TEE series destroys every partition at shutdown), so
//!   its TA instances are new while its secure storage, in the normal
//!   world's file system, is kept;
//! - `--partition-clear`: removes the object (OPEN, then UNLINK) and ends the
//!   sims_keepalive instance with its PANIC command (TEE_ERROR_TARGET_DEAD),
//!   as xtest leaves them: xtest 1021 expects a fresh sims_keepalive
//!   instance (its first session's counter 0), which any session opened
//!   since the last panic spoils, `--partition-expect`'s included. It opens
//!   no session with sims_keepalive afterwards, for the same reason.
//!
//! Each check prints one line, `ok partition: object is 'host'` or
//! `FAIL partition: object is 'guest-a', expected 'host'`; a TA or storage
//! that answers unexpectedly is a `FAIL` line naming the result and its
//! origin. Lines starting with `# partition:` say what is used. The exit
//! status is 0 when every check passed, 1 otherwise.
//!
//! The sims TA's READ copies as many bytes as the output buffer holds from
//! the slot, after refusing with TEE_ERROR_OVERFLOW a buffer smaller than
//! the slot's blob; it does not say the blob's size, and an empty slot has
//! no memory behind it (reading a byte of it would make the TA fault). So
//! the slot is read with buffers of 0, 1, 2... bytes until one is accepted:
//! that size is the blob's, and nothing beyond it is read.

use std::path::Path;
use std::process::ExitCode;

use optee_mediator::msg::teec;
use optee_mediator::Uuid;
use tosfwd_tee_client::sys::{
    TEE_IOCTL_LOGIN_PUBLIC, TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT as MEMREF_IN,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT as MEMREF_OUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INOUT as VALUE_INOUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT as VALUE_IN,
};
use tosfwd_tee_client::{param, Param, Shm, Tee, TeeResult};

use crate::{close, CaseResult};

/// xtest's storage2 TA (TA_STORAGE2_UUID).
pub const STORAGE2_UUID: Uuid = Uuid::from_fields(
    0x731e_279e,
    0xaafb,
    0x4575,
    [0xa7, 0x71, 0x38, 0xca, 0xa6, 0xf0, 0xcc, 0xa6],
);

/// xtest's sims_keepalive TA (TA_SIMS_KEEP_ALIVE_TEST_UUID).
pub const SIMS_KEEPALIVE_UUID: Uuid = Uuid::from_fields(
    0xa4c0_4d50,
    0xf180,
    0x11e8,
    [0x8e, 0xb2, 0xf2, 0x80, 0x1f, 0x1b, 0x9f, 0xd1],
);

/// TA_STORAGE_CMD_* (ta_storage.h) with the parameters storage.c checks.
mod storage_cmd {
    /// Memref in: object id; value in/out: a = flags, b = handle (out);
    /// value in: a = storage id.
    pub const OPEN: u32 = 0;
    /// Value in: a = handle.
    pub const CLOSE: u32 = 1;
    /// Memref out: data; value in/out: a = handle, b = bytes read (out).
    pub const READ: u32 = 2;
    /// Memref in: object id; value in/out: a = flags, b = handle (out);
    /// value in: a = attributes handle, b = storage id; memref in: data.
    pub const CREATE: u32 = 4;
    /// Value in: a = handle (TEE_CloseAndDeletePersistentObject1).
    pub const UNLINK: u32 = 6;
}

/// TA_SIMS_CMD_* (ta_sims_test.h) with the parameters ta_sims.c checks.
mod sims_cmd {
    /// Value in: a = slot; memref out: the blob.
    pub const READ: u32 = 1;
    /// Value in: a = slot; memref in: the blob.
    pub const WRITE: u32 = 2;
    /// Value out: a = sessions the instance opened before this one.
    pub const GET_COUNTER: u32 = 3;
    /// Memref in, empty: the TA panics (TEE_Panic).
    pub const PANIC: u32 = 4;
}

/// TEE_STORAGE_PRIVATE: the TEE's default storage (REE FS or RPMB).
const STORAGE_PRIVATE: u64 = 0x1;
/// TEE_DATA_FLAG_ACCESS_READ.
const ACCESS_READ: u64 = 0x1;
/// TEE_DATA_FLAG_ACCESS_WRITE.
const ACCESS_WRITE: u64 = 0x2;
/// TEE_DATA_FLAG_ACCESS_WRITE_META (needed to delete).
const ACCESS_WRITE_META: u64 = 0x4;
/// TEE_DATA_FLAG_OVERWRITE: create replaces an existing object.
const OVERWRITE: u64 = 0x400;

/// TEE_ERROR_OVERFLOW.
const ERROR_OVERFLOW: u32 = 0xFFFF_300F;
/// TEE_ERROR_TARGET_DEAD.
const ERROR_TARGET_DEAD: u32 = 0xFFFF_3024;

/// The persistent object's id.
pub const OBJECT_ID: &[u8] = b"tosfwd-partition";
/// The sims_keepalive slot (of TA_SIMS_MAX_STORAGE, 4).
pub const SIMS_SLOT: u64 = 3;
/// The longest NAME.
pub const MAX_NAME: usize = 64;

// A slot of TA_SIMS_MAX_STORAGE (4) that xtest does not use (it uses 0);
// an object id of at most TEE_OBJECT_ID_MAX_LEN (64) bytes.
const _: () = assert!(SIMS_SLOT < 4 && SIMS_SLOT != 0 && OBJECT_ID.len() <= 64);

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `--partition-mark NAME`.
    Mark(String),
    /// `--partition-expect NAME`, or `none` (`None`).
    Expect(Option<String>),
    /// `--partition-expect-stored NAME`.
    ExpectStored(String),
    /// `--partition-clear`.
    Clear,
}

impl Mode {
    /// The option that asks for it.
    pub fn flag(&self) -> &'static str {
        match self {
            Mode::Mark(_) => "--partition-mark",
            Mode::Expect(_) => "--partition-expect",
            Mode::ExpectStored(_) => "--partition-expect-stored",
            Mode::Clear => "--partition-clear",
        }
    }
}

/// Whether `s` is a NAME: 1 to [`MAX_NAME`] letters, digits, `.`, `_` or
/// `-`, not starting with `-` (so that an option is not taken for one).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && !s.starts_with('-')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// What a NAME must be, for error messages.
pub const NAME_RULE: &str =
    "a NAME is 1 to 64 letters, digits, '.', '_' or '-', not starting with '-'";

/// The name of a TEE result, when it has one.
fn result_name(ret: u32) -> Option<&'static str> {
    Some(match ret {
        teec::SUCCESS => "SUCCESS",
        0xF010_0001 => "CORRUPT_OBJECT",
        0xF010_0003 => "STORAGE_NOT_AVAILABLE",
        teec::ERROR_GENERIC => "GENERIC",
        teec::ERROR_ACCESS_DENIED => "ACCESS_DENIED",
        teec::ERROR_CANCEL => "CANCEL",
        0xFFFF_0003 => "ACCESS_CONFLICT",
        teec::ERROR_BAD_FORMAT => "BAD_FORMAT",
        teec::ERROR_BAD_PARAMETERS => "BAD_PARAMETERS",
        teec::ERROR_BAD_STATE => "BAD_STATE",
        teec::ERROR_ITEM_NOT_FOUND => "ITEM_NOT_FOUND",
        0xFFFF_0009 => "NOT_IMPLEMENTED",
        teec::ERROR_NOT_SUPPORTED => "NOT_SUPPORTED",
        teec::ERROR_OUT_OF_MEMORY => "OUT_OF_MEMORY",
        teec::ERROR_BUSY => "BUSY",
        teec::ERROR_COMMUNICATION => "COMMUNICATION",
        0xFFFF_000F => "SECURITY",
        teec::ERROR_SHORT_BUFFER => "SHORT_BUFFER",
        ERROR_OVERFLOW => "OVERFLOW",
        ERROR_TARGET_DEAD => "TARGET_DEAD",
        0xFFFF_3041 => "STORAGE_NO_SPACE",
        _ => return None,
    })
}

/// `ret 0xffff0008 (ITEM_NOT_FOUND), origin 4 (TRUSTED_APP)`.
pub fn describe(r: TeeResult) -> String {
    let origin = match r.origin {
        teec::ORIGIN_API => "API",
        teec::ORIGIN_COMMS => "COMMS",
        teec::ORIGIN_TEE => "TEE",
        teec::ORIGIN_TRUSTED_APP => "TRUSTED_APP",
        _ => "unknown",
    };
    let ret = result_name(r.ret).unwrap_or("unknown");
    format!("ret {:#x} ({ret}), origin {} ({origin})", r.ret, r.origin)
}

/// Success, or what the TEE said instead.
fn success(r: TeeResult, what: &str) -> CaseResult {
    if r.ret == teec::SUCCESS {
        Ok(())
    } else {
        Err(format!("{what}: {}", describe(r)))
    }
}

/// A whole buffer of shared memory, as a memory reference names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buf {
    /// The shared memory id.
    pub shm: i32,
    /// Its size in bytes.
    pub size: usize,
}

fn memref(attr: u32, b: Buf) -> Param {
    param::memref(attr, b.shm, 0, b.size as u64)
}

fn value_in(a: u64, b: u64) -> Param {
    param::value(VALUE_IN, a, b, 0)
}

/// storage CREATE of object `id` with data `data`, replacing any, in
/// TEE_STORAGE_PRIVATE, without attributes.
pub fn create_params(id: Buf, data: Buf) -> [Param; 4] {
    [
        memref(MEMREF_IN, id),
        param::value(VALUE_INOUT, ACCESS_READ | ACCESS_WRITE | OVERWRITE, 0, 0),
        value_in(0, STORAGE_PRIVATE),
        memref(MEMREF_IN, data),
    ]
}

/// storage OPEN of object `id` in TEE_STORAGE_PRIVATE with `flags`.
pub fn open_params(id: Buf, flags: u64) -> [Param; 3] {
    [
        memref(MEMREF_IN, id),
        param::value(VALUE_INOUT, flags, 0, 0),
        value_in(STORAGE_PRIVATE, 0),
    ]
}

/// storage READ of the open object `handle` into `out`.
pub fn read_params(out: Buf, handle: u32) -> [Param; 2] {
    [
        memref(MEMREF_OUT, out),
        param::value(VALUE_INOUT, handle.into(), 0, 0),
    ]
}

/// storage CLOSE or UNLINK of `handle`.
pub fn handle_params(handle: u32) -> [Param; 1] {
    [value_in(handle.into(), 0)]
}

/// sims WRITE of `data` to the slot.
pub fn sims_write_params(data: Buf) -> [Param; 2] {
    [value_in(SIMS_SLOT, 0), memref(MEMREF_IN, data)]
}

/// sims READ of the slot into `out`.
pub fn sims_read_params(out: Buf) -> [Param; 2] {
    [value_in(SIMS_SLOT, 0), memref(MEMREF_OUT, out)]
}

/// sims PANIC: an empty memref in (no TA to pass the panic on to).
pub fn sims_panic_params(shm: i32) -> [Param; 1] {
    [memref(MEMREF_IN, Buf { shm, size: 0 })]
}

/// What was found where a mark may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No object; or an empty sims slot.
    Nothing,
    /// These bytes.
    Bytes(Vec<u8>),
    /// More than [`MAX_NAME`] bytes.
    Longer,
}

/// Where a mark is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The persistent object.
    Object,
    /// The sims_keepalive slot.
    Sims,
}

fn quoted(b: &[u8]) -> String {
    format!("'{}'", String::from_utf8_lossy(b).escape_debug())
}

impl Subject {
    fn says(self, f: &Found) -> String {
        match (self, f) {
            (Subject::Object, Found::Nothing) => "no object".to_owned(),
            (Subject::Object, Found::Bytes(b)) => format!("object is {}", quoted(b)),
            (Subject::Sims, Found::Nothing) => "sims value is empty (a fresh instance)".to_owned(),
            (Subject::Sims, Found::Bytes(b)) => format!("sims value is {}", quoted(b)),
            (Subject::Object, Found::Longer) => {
                format!("object holds more than {MAX_NAME} bytes")
            }
            (Subject::Sims, Found::Longer) => {
                format!("sims value holds more than {MAX_NAME} bytes")
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Subject::Object => "object",
            Subject::Sims => "sims value",
        }
    }
}

/// Whether `found` is what `expected` asks for (a NAME, or `None`: no
/// mark), and the line that says so.
pub fn judge(subject: Subject, expected: Option<&str>, found: &Found) -> (bool, String) {
    let pass = match expected {
        Some(n) => matches!(found, Found::Bytes(b) if b == n.as_bytes()),
        None => *found == Found::Nothing,
    };
    let says = subject.says(found);
    if pass {
        (true, says)
    } else {
        let want = expected.map_or_else(|| "none".to_owned(), |n| quoted(n.as_bytes()));
        (false, format!("{says}, expected {want}"))
    }
}

/// Prints one check's line; returns `pass`.
fn line(pass: bool, text: &str) -> bool {
    println!("{} partition: {text}", if pass { "ok" } else { "FAIL" });
    pass
}

/// Prints the line of a check that may not have got as far as a finding.
fn report(
    subject: Subject,
    expected: Option<&str>,
    found: Result<Found, String>,
    note: &str,
) -> bool {
    match found {
        Ok(f) => {
            let (pass, text) = judge(subject, expected, &f);
            line(pass, &format!("{text}{note}"))
        }
        Err(e) => line(false, &format!("{}: {e}", subject.name())),
    }
}

/// A session with `uuid`; `f` runs in it, then the session is closed.
fn with_session<T>(
    tee: &Tee,
    uuid: Uuid,
    what: &str,
    f: impl FnOnce(u32) -> Result<T, String>,
) -> Result<T, String> {
    let (s, r) = tee
        .open_session(uuid.0, TEE_IOCTL_LOGIN_PUBLIC, &mut [])
        .map_err(|e| format!("TEE_IOC_OPEN_SESSION {what}: {e}"))?;
    success(r, &format!("opening {what} ({uuid})"))?;
    let out = f(s);
    let closed = close(tee, s, what);
    let v = out?;
    closed?;
    Ok(v)
}

/// INVOKE; the TEE's verdict, whatever it is.
fn call(tee: &Tee, s: u32, func: u32, p: &mut [Param], what: &str) -> Result<TeeResult, String> {
    tee.invoke(s, func, p)
        .map_err(|e| format!("TEE_IOC_INVOKE {what}: {e}"))
}

/// INVOKE that must succeed.
fn call_ok(tee: &Tee, s: u32, func: u32, p: &mut [Param], what: &str) -> CaseResult {
    success(call(tee, s, func, p, what)?, what)
}

/// Shared memory of `size` bytes (at least one) starting with `bytes`.
fn shm_with(tee: &Tee, bytes: &[u8], size: usize) -> Result<Shm, String> {
    let size = size.max(bytes.len()).max(1);
    let mut shm = tee
        .shm_alloc(size)
        .map_err(|e| format!("TEE_IOC_SHM_ALLOC of {size} bytes: {e}"))?;
    shm.as_mut_slice()[..bytes.len()].copy_from_slice(bytes);
    Ok(shm)
}

fn whole(shm: &Shm, size: usize) -> Buf {
    Buf {
        shm: shm.id(),
        size,
    }
}

/// Creates (or replaces) the object with `data`.
fn write_object(tee: &Tee, s: u32, data: &[u8]) -> CaseResult {
    let id = shm_with(tee, OBJECT_ID, 0)?;
    let d = shm_with(tee, data, 0)?;
    let mut p = create_params(whole(&id, OBJECT_ID.len()), whole(&d, data.len()));
    call_ok(tee, s, storage_cmd::CREATE, &mut p, "storage CREATE")?;
    close_object(tee, s, p[1].b as u32)
}

fn close_object(tee: &Tee, s: u32, handle: u32) -> CaseResult {
    let mut p = handle_params(handle);
    call_ok(tee, s, storage_cmd::CLOSE, &mut p, "storage CLOSE")
}

/// Opens the object with `flags`: its handle, or `None` when there is no
/// object (ITEM_NOT_FOUND from the TA).
fn open_object(tee: &Tee, s: u32, flags: u64) -> Result<Option<u32>, String> {
    let id = shm_with(tee, OBJECT_ID, 0)?;
    let mut p = open_params(whole(&id, OBJECT_ID.len()), flags);
    let r = call(tee, s, storage_cmd::OPEN, &mut p, "storage OPEN")?;
    if r.ret == teec::ERROR_ITEM_NOT_FOUND && r.origin == teec::ORIGIN_TRUSTED_APP {
        return Ok(None);
    }
    success(r, "storage OPEN")?;
    Ok(Some(p[1].b as u32))
}

/// The object's data.
fn read_object(tee: &Tee, s: u32) -> Result<Found, String> {
    let Some(handle) = open_object(tee, s, ACCESS_READ)? else {
        return Ok(Found::Nothing);
    };
    // One byte more than a NAME: a longer object shows.
    let room = MAX_NAME + 1;
    let buf = shm_with(tee, &[], room)?;
    let mut p = read_params(whole(&buf, room), handle);
    let read = call_ok(tee, s, storage_cmd::READ, &mut p, "storage READ");
    let closed = close_object(tee, s, handle);
    read?;
    closed?;
    let n = p[1].b as usize;
    Ok(if n > MAX_NAME {
        Found::Longer
    } else {
        Found::Bytes(buf.as_slice()[..n].to_vec())
    })
}

/// Removes the object; whether there was one.
fn remove_object(tee: &Tee, s: u32) -> Result<bool, String> {
    let Some(handle) = open_object(tee, s, ACCESS_WRITE_META)? else {
        return Ok(false);
    };
    let mut p = handle_params(handle);
    call_ok(tee, s, storage_cmd::UNLINK, &mut p, "storage UNLINK")?;
    Ok(true)
}

fn write_sims(tee: &Tee, s: u32, data: &[u8]) -> CaseResult {
    let d = shm_with(tee, data, 0)?;
    let mut p = sims_write_params(whole(&d, data.len()));
    call_ok(tee, s, sims_cmd::WRITE, &mut p, "sims WRITE")
}

/// The slot's blob: READ with 0, 1, 2... bytes until the TA stops saying
/// OVERFLOW (the first size it accepts is the blob's).
fn read_sims(tee: &Tee, s: u32) -> Result<Found, String> {
    let buf = shm_with(tee, &[], MAX_NAME)?;
    for n in 0..=MAX_NAME {
        let mut p = sims_read_params(whole(&buf, n));
        let what = format!("sims READ of {n} bytes");
        let r = call(tee, s, sims_cmd::READ, &mut p, &what)?;
        if r.ret == teec::SUCCESS {
            return Ok(match n {
                0 => Found::Nothing,
                _ => Found::Bytes(buf.as_slice()[..n].to_vec()),
            });
        }
        if r.ret != ERROR_OVERFLOW || r.origin != teec::ORIGIN_TRUSTED_APP {
            return Err(format!("{what}: {}", describe(r)));
        }
    }
    Ok(Found::Longer)
}

/// How many sessions the sims_keepalive instance opened before `s`.
fn sims_counter(tee: &Tee, s: u32) -> Result<u64, String> {
    let mut p = [param::value_out()];
    call_ok(tee, s, sims_cmd::GET_COUNTER, &mut p, "sims GET_COUNTER")?;
    Ok(p[0].a)
}

/// Ends the sims_keepalive instance: its PANIC command must answer
/// TARGET_DEAD.
fn end_sims(tee: &Tee, s: u32) -> CaseResult {
    let shm = shm_with(tee, &[], 1)?;
    let mut p = sims_panic_params(shm.id());
    let r = call(tee, s, sims_cmd::PANIC, &mut p, "sims PANIC")?;
    if r.ret == ERROR_TARGET_DEAD {
        Ok(())
    } else {
        Err(format!("sims PANIC: {}, want TARGET_DEAD", describe(r)))
    }
}

const STORAGE2: &str = "the storage2 TA";
const SIMS: &str = "the sims_keepalive TA";

/// Runs `mode` on `tee`, one line per check; whether all passed.
pub fn run(tee: &Tee, mode: &Mode) -> bool {
    let what = match mode {
        Mode::Mark(n) => format!("mark {}", quoted(n.as_bytes())),
        Mode::Expect(Some(n)) => format!("expect {}", quoted(n.as_bytes())),
        Mode::Expect(None) => "expect none".to_owned(),
        Mode::ExpectStored(n) => format!("expect stored {}", quoted(n.as_bytes())),
        Mode::Clear => "clear".to_owned(),
    };
    println!(
        "# partition: {what}: object {} of {STORAGE2} ({STORAGE2_UUID}) in TEE_STORAGE_PRIVATE, \
         slot {SIMS_SLOT} of {SIMS} ({SIMS_KEEPALIVE_UUID})",
        quoted(OBJECT_ID)
    );
    match mode {
        Mode::Mark(n) => {
            let data = n.as_bytes();
            let object = with_session(tee, STORAGE2_UUID, STORAGE2, |s| {
                write_object(tee, s, data)?;
                read_object(tee, s)
            });
            let a = report(
                Subject::Object,
                Some(n),
                object,
                " (read back after writing)",
            );
            let sims = with_session(tee, SIMS_KEEPALIVE_UUID, SIMS, |s| {
                write_sims(tee, s, data)?;
                read_sims(tee, s)
            });
            let b = report(Subject::Sims, Some(n), sims, " (read back after writing)");
            a && b
        }
        Mode::Expect(n) => expect(tee, n.as_deref(), n.as_deref()),
        Mode::ExpectStored(n) => expect(tee, Some(n), None),
        Mode::Clear => {
            let object = with_session(tee, STORAGE2_UUID, STORAGE2, |s| {
                let removed = remove_object(tee, s)?;
                let left = read_object(tee, s)?;
                Ok((removed, left))
            });
            let a = match object {
                Ok((removed, Found::Nothing)) => line(
                    true,
                    if removed {
                        "object removed"
                    } else {
                        "no object to remove"
                    },
                ),
                Ok((_, left)) => line(
                    false,
                    &format!("{} after UNLINK", Subject::Object.says(&left)),
                ),
                Err(e) => line(false, &format!("object: {e}")),
            };
            let sims = with_session(tee, SIMS_KEEPALIVE_UUID, SIMS, |s| end_sims(tee, s));
            let b = match sims {
                Ok(()) => line(true, "sims_keepalive instance ended (TARGET_DEAD)"),
                Err(e) => line(false, &format!("sims value: {e}")),
            };
            a && b
        }
    }
}

/// The checks of `--partition-expect` (`object` and `slot` alike) and
/// `--partition-expect-stored` (an empty slot): one line each.
fn expect(tee: &Tee, object: Option<&str>, slot: Option<&str>) -> bool {
    let found = with_session(tee, STORAGE2_UUID, STORAGE2, |s| read_object(tee, s));
    let a = report(Subject::Object, object, found, "");
    let sims = with_session(tee, SIMS_KEEPALIVE_UUID, SIMS, |s| {
        let c = sims_counter(tee, s)?;
        println!("# partition: the sims_keepalive instance opened {c} sessions before this one");
        read_sims(tee, s)
    });
    let b = report(Subject::Sims, slot, sims, "");
    a && b
}

/// The partition modes' `main`: opens `dev`, runs `mode`.
pub fn main(dev: &Path, mode: &Mode) -> ExitCode {
    let tee = match Tee::open(dev) {
        Ok(t) => t,
        Err(e) => {
            line(false, &format!("cannot open {}: {e}", dev.display()));
            return ExitCode::FAILURE;
        }
    };
    if run(&tee, mode) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tosfwd_tee_client::sys::{
        TEE_IOCTL_PARAM_ATTR_TYPE_MASK, TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT,
        TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT,
    };

    /// The word a TA's TEE_PARAM_TYPES() check compares: the uapi's
    /// parameter types are GlobalPlatform's (checked below), four bits each.
    fn param_types(p: &[Param]) -> u32 {
        p.iter()
            .enumerate()
            .map(|(i, p)| ((p.attr & u64::from(TEE_IOCTL_PARAM_ATTR_TYPE_MASK)) as u32) << (4 * i))
            .sum()
    }

    fn fields(p: &Param) -> (u64, u64, u64, u64) {
        (p.attr, p.a, p.b, p.c)
    }

    #[test]
    fn the_uapi_parameter_types_are_globalplatforms() {
        // TEE_PARAM_TYPE_* in optee_os's tee_api_defines.h.
        assert_eq!(
            [
                VALUE_IN,
                TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT,
                VALUE_INOUT,
                MEMREF_IN,
                MEMREF_OUT,
                TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT
            ],
            [1, 2, 3, 5, 6, 7]
        );
    }

    #[test]
    fn the_tas_uuids() {
        assert_eq!(
            STORAGE2_UUID.to_string(),
            "731e279e-aafb-4575-a771-38caa6f0cca6"
        );
        assert_eq!(
            SIMS_KEEPALIVE_UUID.to_string(),
            "a4c04d50-f180-11e8-8eb2-f2801f1b9fd1"
        );
    }

    /// The words storage.c and ta_sims.c compare (also seen in the
    /// comparisons of Debian's optee-test 4.5.0 TA binaries).
    #[test]
    fn each_command_has_the_parameter_types_its_ta_checks() {
        let b = Buf { shm: 9, size: 16 };
        assert_eq!(param_types(&create_params(b, b)), 0x5135);
        assert_eq!(param_types(&open_params(b, ACCESS_READ)), 0x0135);
        assert_eq!(param_types(&read_params(b, 7)), 0x36);
        assert_eq!(param_types(&handle_params(7)), 0x1);
        assert_eq!(param_types(&sims_write_params(b)), 0x51);
        assert_eq!(param_types(&sims_read_params(b)), 0x61);
        assert_eq!(param_types(&sims_panic_params(9)), 0x5);
        assert_eq!(param_types(&[param::value_out()]), 0x2);
    }

    #[test]
    fn storage_parameters_carry_id_flags_storage_data_and_handle() {
        let id = Buf { shm: 11, size: 16 };
        let data = Buf { shm: 12, size: 7 };
        let p = create_params(id, data);
        assert_eq!(fields(&p[0]), (5, 0, 16, 11));
        // ACCESS_READ | ACCESS_WRITE | OVERWRITE; b receives the handle.
        assert_eq!(fields(&p[1]), (3, 0x403, 0, 0));
        // No attributes object; TEE_STORAGE_PRIVATE in b.
        assert_eq!(fields(&p[2]), (1, 0, 1, 0));
        assert_eq!(fields(&p[3]), (5, 0, 7, 12));

        let p = open_params(id, ACCESS_WRITE_META);
        assert_eq!(fields(&p[0]), (5, 0, 16, 11));
        assert_eq!(fields(&p[1]), (3, 0x4, 0, 0));
        // TEE_STORAGE_PRIVATE in a, for OPEN.
        assert_eq!(fields(&p[2]), (1, 1, 0, 0));

        let p = read_params(Buf { shm: 13, size: 65 }, 0xbad0);
        assert_eq!(fields(&p[0]), (6, 0, 65, 13));
        assert_eq!(fields(&p[1]), (3, 0xbad0, 0, 0));
        assert_eq!(fields(&handle_params(0xbad0)[0]), (1, 0xbad0, 0, 0));
    }

    #[test]
    fn sims_parameters_name_the_slot_and_the_blob() {
        let b = Buf { shm: 21, size: 5 };
        let p = sims_write_params(b);
        assert_eq!(fields(&p[0]), (1, SIMS_SLOT, 0, 0));
        assert_eq!(fields(&p[1]), (5, 0, 5, 21));
        let p = sims_read_params(Buf { shm: 22, size: 0 });
        assert_eq!(fields(&p[0]), (1, SIMS_SLOT, 0, 0));
        assert_eq!(fields(&p[1]), (6, 0, 0, 22));
        assert_eq!(fields(&sims_panic_params(23)[0]), (5, 0, 0, 23));
    }

    #[test]
    fn checks_say_what_they_found_and_what_was_expected() {
        let b = |s: &str| Found::Bytes(s.as_bytes().to_vec());
        let o = Subject::Object;
        let s = Subject::Sims;
        assert_eq!(
            judge(o, Some("host"), &b("host")),
            (true, "object is 'host'".into())
        );
        assert_eq!(
            judge(o, Some("host"), &b("guest-a")),
            (false, "object is 'guest-a', expected 'host'".into())
        );
        assert_eq!(
            judge(o, Some("host"), &Found::Nothing),
            (false, "no object, expected 'host'".into())
        );
        assert_eq!(judge(o, None, &Found::Nothing), (true, "no object".into()));
        assert_eq!(
            judge(o, None, &b("host")),
            (false, "object is 'host', expected none".into())
        );
        assert_eq!(
            judge(o, Some("host"), &Found::Longer),
            (
                false,
                "object holds more than 64 bytes, expected 'host'".into()
            )
        );
        assert_eq!(
            judge(s, None, &Found::Nothing),
            (true, "sims value is empty (a fresh instance)".into())
        );
        assert_eq!(
            judge(s, None, &b("guest-a")),
            (false, "sims value is 'guest-a', expected none".into())
        );
        assert_eq!(
            judge(s, Some("guest-a"), &Found::Nothing),
            (
                false,
                "sims value is empty (a fresh instance), expected 'guest-a'".into()
            )
        );
        assert_eq!(
            judge(s, Some("host"), &b("host")),
            (true, "sims value is 'host'".into())
        );
        // A prefix is not the name; odd bytes are shown escaped.
        assert!(!judge(s, Some("host"), &b("hos")).0);
        assert_eq!(
            judge(o, Some("a"), &Found::Bytes(vec![b'\'', 0xff])).1,
            "object is '\\'\u{fffd}', expected 'a'"
        );
    }

    #[test]
    fn results_and_origins_are_named() {
        let r = |ret, origin| describe(TeeResult { ret, origin });
        assert_eq!(
            r(teec::ERROR_ITEM_NOT_FOUND, teec::ORIGIN_TRUSTED_APP),
            "ret 0xffff0008 (ITEM_NOT_FOUND), origin 4 (TRUSTED_APP)"
        );
        assert_eq!(
            r(ERROR_TARGET_DEAD, teec::ORIGIN_TEE),
            "ret 0xffff3024 (TARGET_DEAD), origin 3 (TEE)"
        );
        assert_eq!(
            r(0xF010_0003, teec::ORIGIN_COMMS),
            "ret 0xf0100003 (STORAGE_NOT_AVAILABLE), origin 2 (COMMS)"
        );
        assert_eq!(r(0x1234, 9), "ret 0x1234 (unknown), origin 9 (unknown)");
        assert!(success(TeeResult { ret: 0, origin: 4 }, "x").is_ok());
        assert_eq!(
            success(
                TeeResult {
                    ret: ERROR_OVERFLOW,
                    origin: 4
                },
                "sims READ"
            )
            .unwrap_err(),
            "sims READ: ret 0xffff300f (OVERFLOW), origin 4 (TRUSTED_APP)"
        );
    }

    #[test]
    fn names_are_short_plain_words() {
        for ok in ["host", "guest-a", "vm_2.b", &"x".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", "--xtest-tas", "a b", "ä", "a'b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
