// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Tests of the supplicant against a fake channel that checks the
//! kernel's side of the protocol (supp.c's meta parameter), with
//! [`FakeTee`] for the shared memory, and real files in temporary
//! directories.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use optee_mediator::msg::teec;
use tee_uapi::sys::{
    TEE_IOCTL_PARAM_ATTR_MASK, TEE_IOCTL_PARAM_ATTR_META,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT as MEM_INOUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT as MEM_IN,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT as MEM_OUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INOUT as VAL_INOUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT as VAL_IN,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT as VAL_OUT,
};
use tee_uapi::MEMREF_NULL;

use super::fs::op;
use super::result::ERROR_ACCESS_CONFLICT;
use super::shm::Region;
use super::*;
use crate::fake::FakeShm;
use crate::{FakeTee, TeeDevice};

mod attacks;
mod forward;
mod threads;

/// A directory removed (with its contents) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        TempDir::in_dir(&std::env::temp_dir(), tag)
    }

    /// In memory (/dev/shm) if the system has it: for tests that make
    /// thousands of files, which the supplicant's fsync of the storage
    /// directory would otherwise flush to a disk.
    fn in_memory(tag: &str) -> TempDir {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            TempDir::in_dir(shm, tag)
        } else {
            TempDir::new(tag)
        }
    }

    fn in_dir(parent: &Path, tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = parent.join(format!(
            "host-tee-supplicant-{}-{n}-{tag}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The kernel's side of one supplicant context.
#[derive(Debug, Default)]
struct Kernel {
    /// Requests the "TEE" made: function and parameters.
    queue: VecDeque<(u32, Vec<TeeParam>)>,
    next_id: u64,
    /// The requests received and not answered, by id: their parameter
    /// count, whether they were given a meta parameter (only those can be
    /// answered out of order, by id, as supp.c allows).
    pending: BTreeMap<u64, (usize, bool)>,
    /// Answers: result and the request's parameters (without the meta one).
    answers: Vec<(u32, Vec<TeeParam>)>,
}

/// A channel checking what the kernel checks (supp.c's
/// supp_check_recv_params, supp_pop_req; tee_core.c's params_from_supp).
#[derive(Debug, Clone, Default)]
struct FakeChannel {
    tee: FakeTee,
    kernel: Arc<Mutex<Kernel>>,
}

fn ioctl_err(ioctl: &'static str, errno: i32) -> HostTeeError {
    HostTeeError::Ioctl { ioctl, errno }
}

const META: u64 = TEE_IOCTL_PARAM_ATTR_META as u64;
const META_VALUE: u64 = META | VAL_INOUT as u64;

impl FakeChannel {
    fn kernel(&self) -> MutexGuard<'_, Kernel> {
        self.kernel.lock().unwrap()
    }

    fn request(&self, func: u32, params: &[TeeParam]) {
        self.kernel().queue.push_back((func, params.to_vec()));
    }

    fn answers(&self) -> Vec<(u32, Vec<TeeParam>)> {
        self.kernel().answers.clone()
    }
}

impl SupplicantChannel for FakeChannel {
    type Allocated = FakeShm;

    fn supp_recv(
        &self,
        params: &mut [TeeParam; RECV_PARAMS],
    ) -> Result<(u32, usize), HostTeeError> {
        let einval = ioctl_err("SUPPL_RECV", libc::EINVAL);
        if params.iter().any(|p| p.attr != 0 && p.attr != META) {
            return Err(einval);
        }
        let meta = params[0].attr == META;
        let mut k = self.kernel();
        let (func, req) = k
            .queue
            .pop_front()
            .ok_or(ioctl_err("SUPPL_RECV", libc::EAGAIN))?;
        let m = usize::from(meta);
        if req.len() + m > RECV_PARAMS {
            return Err(einval);
        }
        k.next_id += 1;
        let id = k.next_id;
        if meta {
            params[0] = TeeParam {
                attr: META_VALUE,
                a: id,
                b: 0,
                c: 0,
            };
        }
        params[m..m + req.len()].copy_from_slice(&req);
        if !meta {
            // supp.c keeps one req_id for a supplicant without meta
            // parameters: the newest received is the one it answers.
            k.pending.retain(|_, &mut (_, m)| m);
        }
        k.pending.insert(id, (req.len(), meta));
        Ok((func, req.len() + m))
    }

    fn supp_send(&self, ret: u32, params: &[TeeParam]) -> Result<(), HostTeeError> {
        let mut k = self.kernel();
        let enoent = || ioctl_err("SUPPL_SEND", libc::ENOENT);
        // By the meta parameter's id if it has one, else the one received
        // without.
        let id = match params.first() {
            Some(first) if first.attr == META_VALUE => first.a,
            _ => {
                *k.pending
                    .iter()
                    .find(|(_, &(_, m))| !m)
                    .ok_or_else(enoent)?
                    .0
            }
        };
        let (n, meta) = k.pending.remove(&id).ok_or_else(enoent)?;
        let einval = ioctl_err("SUPPL_SEND", libc::EINVAL);
        if params
            .iter()
            .any(|p| p.attr & !u64::from(TEE_IOCTL_PARAM_ATTR_MASK) != 0)
        {
            return Err(einval);
        }
        let own = if meta {
            match params.split_first() {
                Some((first, rest)) if first.attr == META_VALUE && first.a == id => rest,
                _ => return Err(einval),
            }
        } else {
            params
        };
        if own.len() != n {
            return Err(einval);
        }
        k.answers.push((ret, own.to_vec()));
        Ok(())
    }

    fn supp_alloc(&self, size: usize) -> Result<FakeShm, HostTeeError> {
        self.tee.shm_alloc(size)
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

/// A value parameter.
fn val(attr: u32, a: u64, b: u64, c: u64) -> TeeParam {
    param(attr, a, b, c)
}

/// A memory reference: `size` bytes at `off` of allocation `id`.
fn mem(attr: u32, id: i32, off: u64, size: u64) -> TeeParam {
    param(attr, off, size, id as u64)
}

/// A NULL memory reference of `size`.
fn null_mem(attr: u32, size: u64) -> TeeParam {
    param(attr, 0, size, MEMREF_NULL)
}

/// OP-TEE's TEE_FS_NAME_MAX: the size of a name's buffer.
const NAME_MAX: usize = 350;

/// A supplicant on a fake channel, with a TA directory and a storage
/// directory in a temporary directory.
struct Env {
    dir: TempDir,
    chan: FakeChannel,
    sup: Supplicant<FakeChannel>,
}

impl Env {
    fn new(tag: &str) -> Env {
        Env::with_quota(tag, StorageQuota::default())
    }

    fn with_quota(tag: &str, quota: StorageQuota) -> Env {
        let dir = TempDir::new(tag);
        let chan = FakeChannel::default();
        fs::create_dir(dir.path().join("ta")).unwrap();
        let config = SupplicantConfig {
            ta_dir: dir.path().join("ta"),
            storage_dir: dir.path().join("vm1").join("tee"),
            quota,
        };
        let sup = Supplicant::new(chan.clone(), config).unwrap();
        Env { dir, chan, sup }
    }

    fn ta_dir(&self) -> PathBuf {
        self.dir.path().join("ta")
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("vm1").join("tee")
    }

    fn call(&mut self, func: u32, params: &mut [TeeParam]) -> u32 {
        self.sup.handle(func, params)
    }

    /// OPTEE_RPC_CMD_SHM_ALLOC of `size`: the id answered in c.
    fn alloc(&mut self, size: u64) -> i32 {
        let mut p = [val(VAL_INOUT, cmd::SHM_TYPE_APPL, size, 0)];
        assert_eq!(self.call(cmd::SHM_ALLOC, &mut p), teec::SUCCESS);
        i32::try_from(p[0].c).unwrap()
    }

    fn poke(&mut self, id: i32, offset: usize, data: &[u8]) {
        let r = Region {
            id,
            offset,
            len: data.len(),
        };
        self.sup.shm.write(&r, data).unwrap();
    }

    fn peek(&self, id: i32, offset: usize, len: usize) -> Vec<u8> {
        self.sup.shm.read(&Region { id, offset, len }).unwrap()
    }

    /// A name's buffer as OP-TEE passes it: NAME_MAX bytes, the name and
    /// its NUL first, garbage after.
    fn name(&mut self, name: &[u8]) -> TeeParam {
        let id = self.alloc(NAME_MAX as u64);
        self.poke(id, 0, &[0xAA; NAME_MAX]);
        let mut n = name.to_vec();
        n.push(0);
        self.poke(id, 0, &n);
        mem(MEM_IN, id, 0, NAME_MAX as u64)
    }

    fn fs(&mut self, params: &mut [TeeParam]) -> u32 {
        self.call(cmd::FS, params)
    }

    /// OPEN or CREATE: the result and the handle.
    fn open(&mut self, what: u64, name: &str) -> (u32, u64) {
        let n = self.name(name.as_bytes());
        let mut p = [val(VAL_IN, what, 0, 0), n, val(VAL_OUT, 0, 0, 0)];
        let r = self.fs(&mut p);
        (r, p[2].a)
    }

    fn write(&mut self, fd: u64, offset: u64, data: &[u8]) -> u32 {
        let id = self.alloc(data.len() as u64 + 16);
        self.poke(id, 16, data);
        let mut p = [
            val(VAL_IN, op::WRITE, fd, offset),
            mem(MEM_IN, id, 16, data.len() as u64),
        ];
        self.fs(&mut p)
    }

    /// READ of up to `len`: the result and the bytes read.
    fn read(&mut self, fd: u64, offset: u64, len: usize) -> (u32, Vec<u8>) {
        let id = self.alloc(len as u64 + 8);
        let mut p = [
            val(VAL_IN, op::READ, fd, offset),
            mem(MEM_OUT, id, 8, len as u64),
        ];
        let r = self.fs(&mut p);
        let got = usize::try_from(p[1].b).unwrap();
        assert!(got <= len);
        (r, self.peek(id, 8, got))
    }

    fn simple(&mut self, what: u64, handle: u64, c: u64) -> u32 {
        self.fs(&mut [val(VAL_IN, what, handle, c)])
    }

    fn remove(&mut self, name: &str) -> u32 {
        let n = self.name(name.as_bytes());
        self.fs(&mut [val(VAL_IN, op::REMOVE, 0, 0), n])
    }

    fn rename(&mut self, old: &str, new: &str, overwrite: bool) -> u32 {
        let o = self.name(old.as_bytes());
        let n = self.name(new.as_bytes());
        self.fs(&mut [val(VAL_IN, op::RENAME, overwrite.into(), 0), o, n])
    }

    /// READDIR into a buffer of `len`: the result, the size answered, the
    /// name (without its NUL) when it fit.
    fn readdir(&mut self, dir: u64, len: usize) -> (u32, u64, Option<String>) {
        let id = self.alloc(len as u64);
        let mut p = [
            val(VAL_IN, op::READDIR, dir, 0),
            mem(MEM_OUT, id, 0, len as u64),
        ];
        let r = self.fs(&mut p);
        let name = (r == teec::SUCCESS).then(|| {
            let b = self.peek(id, 0, usize::try_from(p[1].b).unwrap());
            assert_eq!(b.last(), Some(&0), "a name ends with its NUL");
            String::from_utf8(b[..b.len() - 1].to_vec()).unwrap()
        });
        (r, p[1].b, name)
    }
}

/// A TA's UUID as value a and b carry it (its octets in the value's memory).
fn uuid_value(uuid: &[u8; 16]) -> TeeParam {
    let a = u64::from_ne_bytes(uuid[..8].try_into().unwrap());
    let b = u64::from_ne_bytes(uuid[8..].try_into().unwrap());
    val(VAL_IN, a, b, 0)
}

const UUID: [u8; 16] = [
    0x5b, 0x9e, 0x0e, 0x40, 0x27, 0x36, 0x4a, 0xa3, 0xa9, 0x4d, 0x2c, 0x7e, 0x92, 0x35, 0x33, 0xf2,
];

fn ta_image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn ta_file_names_are_formatted_as_tee_supplicant_does() {
    assert_eq!(
        ta::file_names(&UUID),
        [
            "5b9e0e40-2736-4aa3-a94d-2c7e923533f2.ta".to_string(),
            "5b9e0e40-2736-4aa3-a94d2c7e923533f2.ta".to_string(),
        ]
    );
}

#[test]
fn a_ta_is_sized_with_a_null_buffer_then_loaded_into_allocated_memory() {
    let mut env = Env::new("ta-load");
    let image = ta_image(3000);
    fs::write(
        env.ta_dir().join("5b9e0e40-2736-4aa3-a94d-2c7e923533f2.ta"),
        &image,
    )
    .unwrap();

    // The size query: a NULL buffer, answered with the size and success.
    let mut p = [uuid_value(&UUID), null_mem(MEM_OUT, 0)];
    assert_eq!(env.call(cmd::LOAD_TA, &mut p), teec::SUCCESS);
    assert_eq!(p[1].b, 3000);

    // A buffer too small: the size and SHORT_BUFFER.
    let small = env.alloc(100);
    let mut p = [uuid_value(&UUID), mem(MEM_OUT, small, 0, 100)];
    assert_eq!(env.call(cmd::LOAD_TA, &mut p), teec::ERROR_SHORT_BUFFER);
    assert_eq!(p[1].b, 3000);

    // The load, into the allocation OP-TEE made of the size.
    let id = env.alloc(3000);
    let mut p = [uuid_value(&UUID), mem(MEM_OUT, id, 0, 3000)];
    assert_eq!(env.call(cmd::LOAD_TA, &mut p), teec::SUCCESS);
    assert_eq!(p[1].b, 3000);
    assert_eq!(env.peek(id, 0, 3000), image);

    // At an offset of a larger allocation.
    let big = env.alloc(4096);
    let mut p = [uuid_value(&UUID), mem(MEM_INOUT, big, 96, 4000)];
    assert_eq!(env.call(cmd::LOAD_TA, &mut p), teec::SUCCESS);
    assert_eq!(p[1].b, 3000);
    assert_eq!(env.peek(big, 96, 3000), image);
    assert_eq!(env.peek(big, 0, 96), vec![0; 96]);

    // The size of an input buffer is not asked for.
    let mut p = [uuid_value(&UUID), null_mem(MEM_IN, 0)];
    assert_eq!(env.call(cmd::LOAD_TA, &mut p), teec::ERROR_BAD_PARAMETERS);
}

#[test]
fn a_ta_under_the_older_file_name_is_found() {
    let mut env = Env::new("ta-old-name");
    fs::write(
        env.ta_dir().join("5b9e0e40-2736-4aa3-a94d2c7e923533f2.ta"),
        b"old",
    )
    .unwrap();
    let mut p = [uuid_value(&UUID), null_mem(MEM_OUT, 0)];
    assert_eq!(env.call(cmd::LOAD_TA, &mut p), teec::SUCCESS);
    assert_eq!(p[1].b, 3);
}

#[test]
fn a_missing_ta_is_item_not_found() {
    let mut env = Env::new("ta-missing");
    let mut p = [uuid_value(&UUID), null_mem(MEM_OUT, 0)];
    assert_eq!(env.call(cmd::LOAD_TA, &mut p), teec::ERROR_ITEM_NOT_FOUND);
    let id = env.alloc(64);
    let mut p = [uuid_value(&UUID), mem(MEM_OUT, id, 0, 64)];
    assert_eq!(env.call(cmd::LOAD_TA, &mut p), teec::ERROR_ITEM_NOT_FOUND);
    // Malformed requests are refused before the file is looked for.
    let mut p = [uuid_value(&UUID)];
    assert_eq!(env.call(cmd::LOAD_TA, &mut p), teec::ERROR_BAD_PARAMETERS);
    let mut p = [null_mem(MEM_OUT, 0), uuid_value(&UUID)];
    assert_eq!(env.call(cmd::LOAD_TA, &mut p), teec::ERROR_BAD_PARAMETERS);
}

#[test]
fn secure_storage_works_as_optee_ree_fs_uses_it() {
    let mut env = Env::new("fs");
    let st = env.storage();

    // The directory file, created, written, read back.
    let (r, fd) = env.open(op::CREATE, "/dirf.db");
    assert_eq!(r, teec::SUCCESS);
    assert!(fd > 0);
    assert_eq!(env.write(fd, 0, b"hello, "), teec::SUCCESS);
    assert_eq!(env.write(fd, 7, b"storage"), teec::SUCCESS);
    assert_eq!(
        env.read(fd, 0, 64),
        (teec::SUCCESS, b"hello, storage".to_vec())
    );
    assert_eq!(env.read(fd, 7, 3), (teec::SUCCESS, b"sto".to_vec()));
    assert_eq!(
        env.read(fd, 100, 8),
        (teec::SUCCESS, vec![]),
        "past the end"
    );
    assert_eq!(fs::read(st.join("dirf.db")).unwrap(), b"hello, storage");
    assert_eq!(
        fs::metadata(st.join("dirf.db"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Truncated, closed, reopened.
    assert_eq!(env.simple(op::TRUNCATE, fd, 5), teec::SUCCESS);
    assert_eq!(env.read(fd, 0, 64), (teec::SUCCESS, b"hello".to_vec()));
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);
    assert_eq!(
        env.simple(op::CLOSE, fd, 0),
        teec::ERROR_BAD_PARAMETERS,
        "closed"
    );
    assert_eq!(env.read(fd, 0, 8).0, teec::ERROR_BAD_PARAMETERS, "closed");
    let (r, fd) = env.open(op::OPEN, "/dirf.db");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.read(fd, 0, 64), (teec::SUCCESS, b"hello".to_vec()));
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);
    assert_eq!(env.open(op::OPEN, "/1").0, teec::ERROR_ITEM_NOT_FOUND);

    // An object file: written, renamed without overwrite onto a free name.
    let (r, fd) = env.open(op::CREATE, "/1");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.write(fd, 0, b"object one"), teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);
    assert_eq!(env.rename("/1", "/2", false), teec::SUCCESS);
    assert!(!st.join("1").exists());
    assert_eq!(fs::read(st.join("2")).unwrap(), b"object one");
    assert_eq!(env.rename("/1", "/3", true), teec::ERROR_ITEM_NOT_FOUND);

    // Onto an existing name: refused without overwrite, done with it.
    let (r, fd) = env.open(op::CREATE, "/3");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.write(fd, 0, b"object three"), teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);
    assert_eq!(env.rename("/3", "/2", false), ERROR_ACCESS_CONFLICT);
    assert_eq!(fs::read(st.join("2")).unwrap(), b"object one");
    assert_eq!(env.rename("/3", "/2", true), teec::SUCCESS);
    assert_eq!(fs::read(st.join("2")).unwrap(), b"object three");
    assert!(!st.join("3").exists());

    // The listing: every name once, then ITEM_NOT_FOUND; a name that does
    // not fit is SHORT_BUFFER with its size, and comes again.
    let root = env.name(b"/");
    let mut p = [val(VAL_IN, op::OPENDIR, 0, 0), root, val(VAL_OUT, 0, 0, 0)];
    assert_eq!(env.fs(&mut p), teec::SUCCESS);
    let dir = p[2].a;
    let (r, size, _) = env.readdir(dir, 1);
    assert_eq!(r, teec::ERROR_SHORT_BUFFER);
    assert!(size == 2 || size == 8, "\"2\\0\" or \"dirf.db\\0\": {size}");
    let mut names = Vec::new();
    loop {
        match env.readdir(dir, NAME_MAX + 1) {
            (teec::SUCCESS, size, Some(n)) => {
                assert_eq!(size as usize, n.len() + 1);
                names.push(n);
            }
            (r, ..) => {
                assert_eq!(r, teec::ERROR_ITEM_NOT_FOUND);
                break;
            }
        }
    }
    names.sort();
    assert_eq!(names, ["2", "dirf.db"]);
    assert_eq!(
        env.readdir(dir, 64).0,
        teec::ERROR_ITEM_NOT_FOUND,
        "still the end"
    );
    assert_eq!(env.simple(op::CLOSEDIR, dir, 0), teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSEDIR, dir, 0), teec::ERROR_BAD_PARAMETERS);
    assert_eq!(env.readdir(dir, 64).0, teec::ERROR_BAD_PARAMETERS);

    // Removal; a file in a subdirectory makes it, and its removal prunes
    // it (but never the storage directory).
    assert_eq!(env.remove("/2"), teec::SUCCESS);
    assert_eq!(env.remove("/2"), teec::ERROR_ITEM_NOT_FOUND);
    assert_eq!(env.open(op::OPEN, "/2").0, teec::ERROR_ITEM_NOT_FOUND);
    let (r, fd) = env.open(op::CREATE, "/ta/obj");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);
    assert!(st.join("ta").join("obj").is_file());
    assert_eq!(env.remove("/ta/obj"), teec::SUCCESS);
    assert!(!st.join("ta").exists());
    assert_eq!(env.remove("/dirf.db"), teec::SUCCESS);
    assert!(st.is_dir());
    assert_eq!(fs::read_dir(&st).unwrap().count(), 0);

    // An empty directory has no listing.
    let root = env.name(b"/");
    let mut p = [val(VAL_IN, op::OPENDIR, 0, 0), root, val(VAL_OUT, 0, 0, 0)];
    assert_eq!(env.fs(&mut p), teec::ERROR_ITEM_NOT_FOUND);
    assert_eq!(env.sup.fs.open_handles(), (0, 0));
}

#[test]
fn hostile_names_are_refused_and_nothing_lands_outside_the_storage() {
    let mut env = Env::new("fs-hostile");
    let outside = env.dir.path().to_path_buf();
    fs::write(outside.join("victim"), b"keep").unwrap();
    let before = |p: &Path| {
        let mut v: Vec<_> = walk(p);
        v.sort();
        v
    };
    let snapshot = before(&outside);

    let hostile: [&[u8]; 7] = [
        b"../x",
        b"/a/../../b",
        b"/../victim",
        b"..",
        b"a/../b",
        b"/ta/../../../victim",
        b"/..",
    ];
    for name in hostile {
        let shown = String::from_utf8_lossy(name).to_string();
        for what in [op::CREATE, op::OPEN] {
            let n = env.name(name);
            let mut p = [val(VAL_IN, what, 0, 0), n, val(VAL_OUT, 0, 0, 0)];
            assert_eq!(env.fs(&mut p), teec::ERROR_BAD_PARAMETERS, "{what} {shown}");
        }
        let n = env.name(name);
        assert_eq!(
            env.fs(&mut [val(VAL_IN, op::REMOVE, 0, 0), n]),
            teec::ERROR_BAD_PARAMETERS,
            "remove {shown}"
        );
        let n = env.name(name);
        let mut p = [val(VAL_IN, op::OPENDIR, 0, 0), n, val(VAL_OUT, 0, 0, 0)];
        assert_eq!(
            env.fs(&mut p),
            teec::ERROR_BAD_PARAMETERS,
            "opendir {shown}"
        );
        let (ok, bad) = (env.name(b"/good"), env.name(name));
        let mut p = [val(VAL_IN, op::RENAME, 1, 0), ok, bad];
        assert_eq!(
            env.fs(&mut p),
            teec::ERROR_BAD_PARAMETERS,
            "rename to {shown}"
        );
        let (bad, ok) = (env.name(name), env.name(b"/good"));
        let mut p = [val(VAL_IN, op::RENAME, 1, 0), bad, ok];
        assert_eq!(
            env.fs(&mut p),
            teec::ERROR_BAD_PARAMETERS,
            "rename from {shown}"
        );
    }

    // A name without its NUL in the buffer, and a NULL name.
    let id = env.alloc(8);
    env.poke(id, 0, b"/abcdefg");
    let mut p = [
        val(VAL_IN, op::CREATE, 0, 0),
        mem(MEM_IN, id, 0, 8),
        val(VAL_OUT, 0, 0, 0),
    ];
    assert_eq!(env.fs(&mut p), teec::ERROR_BAD_PARAMETERS);
    let mut p = [
        val(VAL_IN, op::CREATE, 0, 0),
        null_mem(MEM_IN, 8),
        val(VAL_OUT, 0, 0, 0),
    ];
    assert_eq!(env.fs(&mut p), teec::ERROR_BAD_PARAMETERS);
    // The storage directory itself is not a file.
    let n = env.name(b"/");
    assert_eq!(
        env.fs(&mut [val(VAL_IN, op::REMOVE, 0, 0), n]),
        teec::ERROR_BAD_PARAMETERS
    );

    assert_eq!(
        before(&outside),
        snapshot,
        "nothing created, moved or removed"
    );
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");
    assert_eq!(env.sup.fs.open_handles(), (0, 0));
}

/// Every path under `p`.
fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn memory_the_supplicant_did_not_allocate_or_out_of_range_is_refused() {
    let mut env = Env::new("shm-refused");
    let (r, fd) = env.open(op::CREATE, "/f");
    assert_eq!(r, teec::SUCCESS);
    let id = env.alloc(64);
    let refused = [
        mem(MEM_IN, 999, 0, 8),       // an unknown id
        mem(MEM_IN, -5, 0, 8),        // not an id at all
        param(MEM_IN, 0, 8, 1 << 40), // an id beyond i32
        mem(MEM_IN, id, 60, 8),       // past the end
        mem(MEM_IN, id, 0, 65),       // larger than the allocation
        mem(MEM_IN, id, u64::MAX, 2), // an offset that wraps
        mem(MEM_IN, id, 1, u64::MAX), // a size that wraps
    ];
    for m in refused {
        let mut p = [val(VAL_IN, op::WRITE, fd, 0), m];
        assert_eq!(env.fs(&mut p), teec::ERROR_BAD_PARAMETERS, "write {m:?}");
        let mut m = m;
        m.attr = MEM_OUT.into();
        let mut p = [val(VAL_IN, op::READ, fd, 0), m];
        assert_eq!(env.fs(&mut p), teec::ERROR_BAD_PARAMETERS, "read {m:?}");
        let mut p = [uuid_value(&UUID), m];
        assert_eq!(
            env.call(cmd::LOAD_TA, &mut p),
            teec::ERROR_BAD_PARAMETERS,
            "load {m:?}"
        );
    }
    // Reads and writes need memory; handles must be the secure world's.
    let mut p = [val(VAL_IN, op::READ, fd, 0), null_mem(MEM_OUT, 8)];
    assert_eq!(env.fs(&mut p), teec::ERROR_BAD_PARAMETERS);
    assert_eq!(env.write(fd + 100, 0, b"x"), teec::ERROR_BAD_PARAMETERS);
    assert_eq!(env.write(0, 0, b"x"), teec::ERROR_BAD_PARAMETERS);
    assert_eq!(
        env.simple(op::TRUNCATE, u64::MAX, 0),
        teec::ERROR_BAD_PARAMETERS
    );
    // Wrong parameter types, counts, operations.
    let mut p = [val(VAL_IN, op::WRITE, fd, 0), val(VAL_IN, 0, 0, 0)];
    assert_eq!(env.fs(&mut p), teec::ERROR_BAD_PARAMETERS);
    assert_eq!(env.fs(&mut []), teec::ERROR_BAD_PARAMETERS);
    assert_eq!(
        env.fs(&mut [null_mem(MEM_IN, 0)]),
        teec::ERROR_BAD_PARAMETERS
    );
    assert_eq!(
        env.simple(op::READDIR + 1, 0, 0),
        teec::ERROR_BAD_PARAMETERS
    );
    assert_eq!(env.simple(u64::MAX, 0, 0), teec::ERROR_BAD_PARAMETERS);
    // The file is untouched.
    assert_eq!(fs::metadata(env.storage().join("f")).unwrap().len(), 0);
}

#[test]
fn supplicant_memory_is_allocated_on_the_context_and_freed_by_id() {
    let mut env = Env::new("shm");
    let tee = env.chan.tee.clone();
    let a = env.alloc(4096);
    let b = env.alloc(100);
    assert_ne!(a, b);
    assert_eq!(tee.shm_count(), 2);
    assert_eq!(env.sup.shm.len(), 2);

    let mut p = [val(VAL_INOUT, cmd::SHM_TYPE_APPL, a as u64, 0)];
    assert_eq!(env.call(cmd::SHM_FREE, &mut p), teec::SUCCESS);
    assert_eq!(tee.shm_count(), 1, "released on the context");
    assert_eq!(
        env.call(cmd::SHM_FREE, &mut p),
        teec::ERROR_BAD_PARAMETERS,
        "twice"
    );
    let mut p = [val(VAL_INOUT, cmd::SHM_TYPE_APPL, u64::MAX, 0)];
    assert_eq!(env.call(cmd::SHM_FREE, &mut p), teec::ERROR_BAD_PARAMETERS);
    // Kernel memory is not the supplicant's; nor are malformed requests.
    let mut p = [val(VAL_INOUT, 1, b as u64, 0)];
    assert_eq!(env.call(cmd::SHM_FREE, &mut p), teec::ERROR_BAD_PARAMETERS);
    let mut p = [val(VAL_INOUT, 1, 64, 0)];
    assert_eq!(env.call(cmd::SHM_ALLOC, &mut p), teec::ERROR_BAD_PARAMETERS);
    let mut p = [null_mem(MEM_INOUT, 64)];
    assert_eq!(env.call(cmd::SHM_ALLOC, &mut p), teec::ERROR_BAD_PARAMETERS);
    assert_eq!(
        env.call(cmd::SHM_ALLOC, &mut []),
        teec::ERROR_BAD_PARAMETERS
    );
    // An allocation the context refuses.
    tee.fail_next("SHM_ALLOC", libc::ENOMEM);
    let mut p = [val(VAL_INOUT, cmd::SHM_TYPE_APPL, 64, 0)];
    assert_eq!(env.call(cmd::SHM_ALLOC, &mut p), teec::ERROR_OUT_OF_MEMORY);
    assert_eq!(tee.shm_count(), 1);

    drop(env);
    assert_eq!(tee.shm_count(), 0, "released with the supplicant");
}

#[test]
fn other_commands_are_not_supported() {
    let mut env = Env::new("unsupported");
    for func in [
        cmd::RPMB,
        cmd::GPROF,
        cmd::SOCKET,
        cmd::FTRACE,
        cmd::PLUGIN,
        3,
        8,
        77,
        u32::MAX,
    ] {
        let mut p = [val(VAL_INOUT, 1, 2, 3), null_mem(MEM_INOUT, 16)];
        assert_eq!(env.call(func, &mut p), teec::ERROR_NOT_SUPPORTED, "{func}");
        assert_eq!((p[0].a, p[0].b, p[0].c), (1, 2, 3), "untouched");
    }
}

#[test]
fn requests_and_answers_go_through_the_channel_with_the_meta_parameter() {
    let mut env = Env::new("channel");
    let chan = env.chan.clone();
    fs::write(
        env.ta_dir().join("5b9e0e40-2736-4aa3-a94d-2c7e923533f2.ta"),
        b"TA!",
    )
    .unwrap();

    chan.request(cmd::LOAD_TA, &[uuid_value(&UUID), null_mem(MEM_OUT, 0)]);
    env.sup.serve_one().unwrap();
    chan.request(cmd::SHM_ALLOC, &[val(VAL_INOUT, cmd::SHM_TYPE_APPL, 3, 0)]);
    env.sup.serve_one().unwrap();
    let id = i32::try_from(chan.answers()[1].1[0].c).unwrap();
    chan.request(cmd::LOAD_TA, &[uuid_value(&UUID), mem(MEM_OUT, id, 0, 3)]);
    env.sup.serve_one().unwrap();
    chan.request(cmd::SOCKET, &[val(VAL_IN, 0, 0, 0)]);
    env.sup.serve_one().unwrap();

    let answers = chan.answers();
    let rets: Vec<u32> = answers.iter().map(|a| a.0).collect();
    assert_eq!(
        rets,
        [
            teec::SUCCESS,
            teec::SUCCESS,
            teec::SUCCESS,
            teec::ERROR_NOT_SUPPORTED
        ]
    );
    assert_eq!(answers[0].1[1].b, 3, "the size");
    assert_eq!(env.peek(id, 0, 3), b"TA!");
    // Nothing queued: the receive's error is the channel's.
    let e = env.sup.serve_one().unwrap_err();
    assert!(matches!(
        e,
        HostTeeError::Ioctl {
            ioctl: "SUPPL_RECV",
            errno: libc::EAGAIN
        }
    ));
}

/// How many of this process's fds are open on `path`.
fn fds_on(path: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t == path)
        .count()
}

#[test]
fn files_and_directories_left_open_are_closed_with_the_supplicant() {
    let mut env = Env::new("fs-drop");
    let st = env.storage();
    assert_eq!(fds_on(&st), 1, "the storage directory, held open");
    let (r, _fd) = env.open(op::CREATE, "/left-open");
    assert_eq!(r, teec::SUCCESS);
    let root = env.name(b"/");
    let mut p = [val(VAL_IN, op::OPENDIR, 0, 0), root, val(VAL_OUT, 0, 0, 0)];
    assert_eq!(env.fs(&mut p), teec::SUCCESS);
    assert_eq!(env.sup.fs.open_handles(), (1, 1));
    assert_eq!(fds_on(&st.join("left-open")), 1);
    assert_eq!(fds_on(&st), 2, "and its listing");

    let Env { dir, chan, sup } = env;
    drop(sup);
    assert_eq!(fds_on(&st.join("left-open")), 0);
    assert_eq!(fds_on(&st), 0);
    assert_eq!(chan.tee.shm_count(), 0);
    drop(dir);
}

#[test]
fn the_storage_directory_is_created_private_and_must_be_a_directory() {
    let dir = TempDir::new("storage");
    let st = dir.path().join("vms").join("vm7");
    let sup = Supplicant::new(FakeChannel::default(), SupplicantConfig::new(&st)).unwrap();
    assert_eq!(sup.ta_dir, Path::new(DEFAULT_TA_DIR));
    assert_eq!(
        fs::metadata(&st).unwrap().permissions().mode() & 0o777,
        0o700
    );
    drop(sup);

    let file = dir.path().join("plain-file");
    fs::write(&file, b"").unwrap();
    let e = Supplicant::new(FakeChannel::default(), SupplicantConfig::new(&file)).unwrap_err();
    assert!(matches!(e, SupplicantError::Storage(_)), "{e}");
    assert!(
        e.to_string()
            .ends_with("plain-file: refused as the VM's secure storage: not a directory"),
        "{e}"
    );
    assert!(!e.to_string().contains('\n'));
}
