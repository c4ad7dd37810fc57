// SPDX-License-Identifier: Apache-2.0 OR MIT
//! OPTEE_RPC_CMD_FS: the REE file system behind OP-TEE's secure storage,
//! in the VM's storage directory.
//!
//! value[0].a is the operation (OPTEE_MRF_*), b a file or directory
//! handle, c an offset or length; names are NUL-terminated strings in
//! memory references (OP-TEE passes a buffer of TEE_FS_NAME_MAX with the
//! name at its start, such as "/dirf.db"). The semantics are
//! tee-supplicant's tee_supp_fs.c, with these differences:
//!
//! - names are resolved inside the storage directory only: a `..`
//!   component, or a name without its NUL, is BAD_PARAMETERS (`.` and
//!   empty components are ignored; a leading `/` is the storage
//!   directory); a symbolic link in any component is never followed
//!   (`super::storage`): OPEN and OPENDIR answer it ITEM_NOT_FOUND, as
//!   tee-supplicant answers any name it cannot open, the others GENERIC;
//!   a FIFO or anything else that is not a regular file where a file is
//!   expected is refused the same way, without blocking;
//! - the storage's quota ([`StorageQuota`], bytes and objects): a CREATE,
//!   WRITE, TRUNCATE (or a directory CREATE makes) that would exceed it is
//!   TEEC_ERROR_STORAGE_NO_SPACE, what tee-supplicant answers when the
//!   disk is full (ENOSPC), and nothing is changed;
//! - the secure world gets handles of this table, not the VMM's file
//!   descriptors, so it can only close, read or write what it opened; an
//!   unknown handle is BAD_PARAMETERS; at most [`MAX_HANDLES`] are open;
//! - REMOVE prunes the emptied directories up to, not including, the
//!   storage directory; a failed RENAME is GENERIC unless the name is
//!   missing (ITEM_NOT_FOUND); READDIR keeps an entry that did not fit
//!   (SHORT_BUFFER) for the next call.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

use optee_mediator::msg::teec;
use tee_uapi::sys::{
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT as MEM_IN,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT as MEM_OUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT as VAL_IN,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT as VAL_OUT,
};

use super::result::{ERROR_ACCESS_CONFLICT, ERROR_STORAGE_NO_SPACE};
use super::shm::{Region, ShmTable};
use super::storage::{
    file_type, lstat_at, open_beneath, DirStream, FsError, OpenFile, StorageDir, StorageQuota,
    Usage,
};
use super::{has_types, is_value};
use crate::device::{AllocatedShm, TeeParam};

/// OPTEE_MRF_* (tee-supplicant's optee_msg_supplicant.h).
pub(super) mod op {
    /// Open a file: name in memref[1], handle out in value[2].a.
    pub const OPEN: u64 = 0;
    /// Create (or truncate) a file: as OPEN.
    pub const CREATE: u64 = 1;
    /// Close handle value[0].b.
    pub const CLOSE: u64 = 2;
    /// Read from value[0].b at value[0].c into memref[1].
    pub const READ: u64 = 3;
    /// Write memref[1] to value[0].b at value[0].c.
    pub const WRITE: u64 = 4;
    /// Truncate value[0].b to value[0].c bytes.
    pub const TRUNCATE: u64 = 5;
    /// Remove the file named in memref[1].
    pub const REMOVE: u64 = 6;
    /// Rename memref[1] to memref[2]; value[0].b: overwrite.
    pub const RENAME: u64 = 7;
    /// Open the directory named in memref[1], handle out in value[2].a.
    pub const OPENDIR: u64 = 8;
    /// Close directory handle value[0].b.
    pub const CLOSEDIR: u64 = 9;
    /// The next name of directory value[0].b into memref[1].
    pub const READDIR: u64 = 10;
}

/// Files and directories the secure world may hold open at once, each.
pub(super) const MAX_HANDLES: usize = 512;

/// An open directory: its listing, and a name that did not fit the last
/// READDIR's buffer.
#[derive(Debug)]
struct Dir {
    entries: DirStream,
    pending: Option<Vec<u8>>,
}

impl Dir {
    /// The next name, skipping those starting with a dot (as
    /// tee-supplicant does); `None` at the end.
    fn next_name(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(n) = self.pending.take() {
            return Ok(Some(n));
        }
        while let Some(name) = self.entries.next_name()? {
            if !name.starts_with(b".") {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }
}

/// Handles given to the secure world: small numbers from 1, the lowest
/// free first.
#[derive(Debug)]
struct Handles<T> {
    open: BTreeMap<u32, T>,
}

impl<T> Default for Handles<T> {
    fn default() -> Self {
        Handles {
            open: BTreeMap::new(),
        }
    }
}

impl<T> Handles<T> {
    /// Keeps `v`; its handle, or `None` if [`MAX_HANDLES`] are open.
    fn insert(&mut self, v: T) -> Option<u32> {
        if self.open.len() >= MAX_HANDLES {
            return None;
        }
        let mut h = 1;
        for &k in self.open.keys() {
            if k != h {
                break;
            }
            h += 1;
        }
        self.open.insert(h, v);
        Some(h)
    }

    fn key(h: u64) -> Option<u32> {
        u32::try_from(h).ok()
    }

    fn get_mut(&mut self, h: u64) -> Option<&mut T> {
        self.open.get_mut(&Self::key(h)?)
    }

    fn remove(&mut self, h: u64) -> Option<T> {
        self.open.remove(&Self::key(h)?)
    }

    /// Keeps `v` and puts its handle in `out.a` (OPEN, CREATE, OPENDIR);
    /// OUT_OF_MEMORY, logged, if [`MAX_HANDLES`] `what` are open.
    fn give(&mut self, v: T, out: &mut TeeParam, what: &str) -> Result<(), u32> {
        let h = self.insert(v).ok_or_else(|| {
            log::warn!("supplicant: the secure world holds {MAX_HANDLES} {what} open");
            teec::ERROR_OUT_OF_MEMORY
        })?;
        out.a = h.into();
        Ok(())
    }

    /// For READ and READDIR (a value input naming the handle in `b`, an
    /// output buffer): the buffer's region and what the handle holds.
    fn with_output<A: AllocatedShm>(
        &mut self,
        shm: &ShmTable<A>,
        params: &[TeeParam],
    ) -> Result<(Region, &mut T), u32> {
        if !has_types(params, &[VAL_IN, MEM_OUT]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        let region = shm.region(&params[1])?.ok_or(teec::ERROR_BAD_PARAMETERS)?;
        let held = self
            .get_mut(params[0].b)
            .ok_or(teec::ERROR_BAD_PARAMETERS)?;
        Ok((region, held))
    }

    /// Closes the handle in `b` of a lone value input (CLOSE, CLOSEDIR).
    fn close(&mut self, params: &[TeeParam]) -> Result<(), u32> {
        if !has_types(params, &[VAL_IN]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        self.remove(params[0].b)
            .map(drop)
            .ok_or(teec::ERROR_BAD_PARAMETERS)
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.open.values()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }
}

/// A name from the secure world, checked: its components, none of them
/// `..`, none empty or `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Name {
    parts: Vec<CString>,
}

/// The name in `name` (the bytes before its NUL); `None` if it has no NUL,
/// has a `..` component, or names the storage directory itself when
/// `root_ok` is false.
pub(super) fn resolve(name: &[u8], root_ok: bool) -> Option<Name> {
    let end = name.iter().position(|&b| b == 0)?;
    let mut parts = Vec::new();
    for part in name[..end].split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return None,
            // No NUL inside: the name was cut at the first one.
            p => parts.push(CString::new(p).ok()?),
        }
    }
    (!parts.is_empty() || root_ok).then_some(Name { parts })
}

impl Name {
    /// The directories and the last component; `None` for the storage
    /// directory itself.
    fn split(&self) -> Option<(&[CString], &CStr)> {
        let (last, dirs) = self.parts.split_last()?;
        Some((dirs, last))
    }

    /// The name relative to the storage directory (`.` for itself);
    /// `None` cannot happen (no component holds a NUL).
    fn relative(&self) -> Option<CString> {
        if self.parts.is_empty() {
            return Some(c".".to_owned());
        }
        let bytes: Vec<&[u8]> = self.parts.iter().map(|p| p.as_bytes()).collect();
        CString::new(bytes.join(&b'/')).ok()
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.parts.is_empty() {
            return f.write_str("/");
        }
        for p in &self.parts {
            write!(f, "/{}", String::from_utf8_lossy(p.as_bytes()))?;
        }
        Ok(())
    }
}

/// The TEEC result of a failed file operation, as tee-supplicant maps
/// errno (ENOSPC is STORAGE_NO_SPACE, ENOENT ITEM_NOT_FOUND, anything
/// else GENERIC); the quota is ENOSPC's.
fn teec_of(e: &FsError) -> u32 {
    match e {
        FsError::Quota(_) => ERROR_STORAGE_NO_SPACE,
        FsError::Io(e) => match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => ERROR_STORAGE_NO_SPACE,
            _ if e.kind() == ErrorKind::NotFound => teec::ERROR_ITEM_NOT_FOUND,
            _ => teec::ERROR_GENERIC,
        },
        FsError::Link | FsError::NotFile => teec::ERROR_GENERIC,
    }
}

/// `unlinkat(2)` of `name` in `dir` (`flags` 0 or AT_REMOVEDIR).
fn unlink_at(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `dir` is a live descriptor and `name` NUL-terminated.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A directory under the storage for `*at` calls (O_PATH).
const DIR_PATH: libc::c_int = libc::O_PATH | libc::O_DIRECTORY;

/// The directories of a name, opened one from the other from the storage
/// directory down ([`ReeFs::walk`]).
#[derive(Debug)]
struct Walk {
    /// The storage directory.
    root: OwnedFd,
    /// The name's directories reached, in order.
    dirs: Vec<OwnedFd>,
    /// How many of the last of them the walk made.
    made: usize,
}

impl Walk {
    /// The directory `level` components down (0: the storage directory).
    fn dir(&self, level: usize) -> BorrowedFd<'_> {
        match level.checked_sub(1).and_then(|i| self.dirs.get(i)) {
            Some(d) => d.as_fd(),
            None => self.root.as_fd(),
        }
    }

    /// The directory of the name's last component.
    fn parent(&self) -> BorrowedFd<'_> {
        self.dir(self.dirs.len())
    }
}

/// The REE file system of one VM.
#[derive(Debug)]
pub(super) struct ReeFs {
    root: StorageDir,
    quota: StorageQuota,
    /// What the storage holds (counted at the start, then kept up to date
    /// by every operation).
    used: Usage,
    files: Handles<OpenFile>,
    dirs: Handles<Dir>,
}

impl ReeFs {
    /// The file system in `root`, with its usage counted against `quota`.
    pub fn new(root: StorageDir, quota: StorageQuota) -> io::Result<Self> {
        let used = root.usage()?;
        if used.bytes > quota.max_bytes || used.objects > quota.max_objects {
            log::warn!(
                "supplicant: the storage {} holds {} bytes in {} objects, more than its quota \
                 ({} bytes, {} objects): nothing more can be stored until some is removed",
                root.path().display(),
                used.bytes,
                used.objects,
                quota.max_bytes,
                quota.max_objects
            );
        }
        Ok(ReeFs {
            root,
            quota,
            used,
            files: Handles::default(),
            dirs: Handles::default(),
        })
    }

    /// Open files and directories.
    #[cfg(test)]
    pub fn open_handles(&self) -> (usize, usize) {
        (self.files.len(), self.dirs.len())
    }

    /// What the storage holds, as counted.
    #[cfg(test)]
    pub fn usage(&self) -> Usage {
        self.used
    }

    /// Serves one FS request.
    pub fn process<A: AllocatedShm>(
        &mut self,
        shm: &mut ShmTable<A>,
        params: &mut [TeeParam],
    ) -> u32 {
        let Some(first) = params.first() else {
            return teec::ERROR_BAD_PARAMETERS;
        };
        if !is_value(first) {
            return teec::ERROR_BAD_PARAMETERS;
        }
        let r = match first.a {
            op::OPEN => self.open(shm, params, false),
            op::CREATE => self.open(shm, params, true),
            op::CLOSE => self.close(params),
            op::READ => self.read(shm, params),
            op::WRITE => self.write(shm, params),
            op::TRUNCATE => self.truncate(params),
            op::REMOVE => self.remove(shm, params),
            op::RENAME => self.rename(shm, params),
            op::OPENDIR => self.opendir(shm, params),
            op::CLOSEDIR => self.closedir(params),
            op::READDIR => self.readdir(shm, params),
            _ => Err(teec::ERROR_BAD_PARAMETERS),
        };
        r.err().unwrap_or(teec::SUCCESS)
    }

    /// The name in memory reference `p`.
    fn name<A: AllocatedShm>(
        &self,
        shm: &ShmTable<A>,
        p: &TeeParam,
        root_ok: bool,
    ) -> Result<Name, u32> {
        let region = shm.region(p)?.ok_or(teec::ERROR_BAD_PARAMETERS)?;
        let bytes = shm.read(&region)?;
        resolve(&bytes, root_ok).ok_or_else(|| {
            log::warn!(
                "supplicant: refused the file name {:?} from the secure world",
                String::from_utf8_lossy(
                    &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())]
                )
            );
            teec::ERROR_BAD_PARAMETERS
        })
    }

    /// Logs why `what` of `name` failed when the storage refused it (a
    /// link, a special file, the quota): the secure world only sees a
    /// result code. Returns the error for chaining.
    fn refused(&self, what: &str, name: &Name, e: FsError) -> FsError {
        match e {
            FsError::Link | FsError::NotFile | FsError::Quota(_) => log::warn!(
                "supplicant: {what} {name} in {}: {e}",
                self.root.path().display()
            ),
            FsError::Io(_) => {}
        }
        e
    }

    /// The directories of `dirs` from the storage directory down, each
    /// opened from the one before it: a link in any of them is refused.
    /// With `make`, missing ones are made (0700, counted against the
    /// quota).
    fn walk(&mut self, dirs: &[CString], make: bool) -> Result<Walk, FsError> {
        let mut walk = Walk {
            root: open_beneath(self.root.fd(), c".", DIR_PATH, 0)?,
            dirs: Vec::new(),
            made: 0,
        };
        for d in dirs {
            let r = self.step(&mut walk, d, make);
            if let Err(e) = r {
                self.unmake(&walk, dirs);
                return Err(e);
            }
        }
        Ok(walk)
    }

    /// One directory `d` further down `walk`, made if missing and `make`.
    fn step(&mut self, walk: &mut Walk, d: &CStr, make: bool) -> Result<(), FsError> {
        let parent = walk.parent();
        let mut made = false;
        let fd = match open_beneath(parent, d, DIR_PATH, 0) {
            Err(e) if make && e.kind() == ErrorKind::NotFound => {
                self.charge(0, 1)?;
                // SAFETY: `parent` is a live descriptor and `d`
                // NUL-terminated.
                if unsafe { libc::mkdirat(parent.as_raw_fd(), d.as_ptr(), 0o700) } == 0 {
                    made = true;
                } else {
                    self.used.objects -= 1;
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e.into());
                    }
                }
                open_beneath(parent, d, DIR_PATH, 0)?
            }
            r => r?,
        };
        walk.dirs.push(fd);
        walk.made += usize::from(made);
        Ok(())
    }

    /// Removes the directories `walk` made (the last ones of `dirs` it
    /// reached) when what they were made for failed, as tee-supplicant
    /// does.
    fn unmake(&mut self, walk: &Walk, dirs: &[CString]) {
        let reached = walk.dirs.len();
        for level in (reached - walk.made.min(reached)..reached).rev() {
            // dirs[level] is open as walk.dirs[level], in walk.dir(level).
            if unlink_at(walk.dir(level), &dirs[level], libc::AT_REMOVEDIR).is_ok() {
                self.used.objects = self.used.objects.saturating_sub(1);
            }
        }
    }

    /// What the storage would hold with `bytes` and `objects` more, if
    /// the quota has room for them.
    fn room(&self, bytes: u64, objects: u64) -> Result<Usage, FsError> {
        let b = self.used.bytes.checked_add(bytes);
        let o = self.used.objects.checked_add(objects);
        match (b, o) {
            (Some(b), _) if b > self.quota.max_bytes && bytes > 0 => Err(FsError::Quota("bytes")),
            (None, _) => Err(FsError::Quota("bytes")),
            (_, Some(o)) if o > self.quota.max_objects && objects > 0 => {
                Err(FsError::Quota("objects"))
            }
            (_, None) => Err(FsError::Quota("objects")),
            (Some(bytes), Some(objects)) => Ok(Usage { bytes, objects }),
        }
    }

    /// Counts `bytes` and `objects` more against the quota, or refuses
    /// them (nothing counted).
    fn charge(&mut self, bytes: u64, objects: u64) -> Result<(), FsError> {
        self.used = self.room(bytes, objects)?;
        Ok(())
    }

    /// A file's size changed from `old` to `new`.
    fn resized(&mut self, old: u64, new: u64) {
        self.used.bytes = self.used.bytes.saturating_sub(old).saturating_add(new);
    }

    /// Whether a handle is open on inode `ino` of `dev`.
    fn is_open(&self, dev: u64, ino: u64) -> bool {
        self.files.values().any(|f| f.dev == dev && f.ino == ino)
    }

    /// A file under the storage went: `st` as it was.
    fn gone(&mut self, st: &libc::stat) {
        self.used.objects = self.used.objects.saturating_sub(1);
        // A file still open keeps its blocks until its last close (which
        // uncounts them, see `close`).
        if file_type(st) == libc::S_IFREG && !self.is_open(st.st_dev, st.st_ino) {
            self.resized(u64::try_from(st.st_size).unwrap_or(0), 0);
        }
    }

    /// OPEN (read-write, or read-only if that fails) and CREATE
    /// (read-write, truncated, 0600, missing directories made 0700).
    fn open<A: AllocatedShm>(
        &mut self,
        shm: &ShmTable<A>,
        params: &mut [TeeParam],
        create: bool,
    ) -> Result<(), u32> {
        if !has_types(params, &[VAL_IN, MEM_IN, VAL_OUT]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        let name = self.name(shm, &params[1], false)?;
        let file = if create {
            self.create(&name)
                .map_err(|e| teec_of(&self.refused("create", &name, e)))?
        } else {
            // Any failure is ITEM_NOT_FOUND, as tee-supplicant answers.
            self.open_existing(&name)
                .map_err(|e| self.refused("open", &name, e))
                .map_err(|_| teec::ERROR_ITEM_NOT_FOUND)?
        };
        self.files.give(file, &mut params[2], "files")
    }

    /// OPEN: the file, read-write or else read-only.
    fn open_existing(&mut self, name: &Name) -> Result<OpenFile, FsError> {
        let (dirs, last) = name.split().ok_or(FsError::NotFile)?;
        let walk = self.walk(dirs, false)?;
        let parent = walk.parent();
        let flags = libc::O_NONBLOCK | libc::O_SYNC;
        let fd = open_beneath(parent, last, libc::O_RDWR | flags, 0)
            .or_else(|_| open_beneath(parent, last, libc::O_RDONLY | flags, 0))?;
        OpenFile::regular(fd)
    }

    /// CREATE: a new file (an object more) or an existing one truncated.
    fn create(&mut self, name: &Name) -> Result<OpenFile, FsError> {
        let (dirs, last) = name.split().ok_or(FsError::NotFile)?;
        let walk = self.walk(dirs, true)?;
        let r = self.create_in(walk.parent(), last);
        match r {
            Ok(_) => self.root.sync(),
            Err(_) => self.unmake(&walk, dirs),
        }
        r
    }

    fn create_in(&mut self, parent: BorrowedFd<'_>, last: &CStr) -> Result<OpenFile, FsError> {
        let flags = libc::O_RDWR | libc::O_NONBLOCK | libc::O_SYNC;
        // A new file, if the quota has room for one more object.
        if self.charge(0, 1).is_ok() {
            match open_beneath(parent, last, flags | libc::O_CREAT | libc::O_EXCL, 0o600) {
                Ok(fd) => return OpenFile::regular(fd),
                Err(e) => {
                    self.used.objects -= 1;
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e.into());
                    }
                }
            }
        }
        // An existing one (a missing one here is the quota's).
        let fd = open_beneath(parent, last, flags, 0).map_err(|e| match e.kind() {
            ErrorKind::NotFound => FsError::Quota("objects"),
            _ => e.into(),
        })?;
        let file = OpenFile::regular(fd)?;
        let (old, _) = file.size_and_linked()?;
        file.file.set_len(0)?;
        self.resized(old, 0);
        Ok(file)
    }

    /// CLOSE; a file removed while open gives its blocks back now.
    fn close(&mut self, params: &[TeeParam]) -> Result<(), u32> {
        if !has_types(params, &[VAL_IN]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        let file = self
            .files
            .remove(params[0].b)
            .ok_or(teec::ERROR_BAD_PARAMETERS)?;
        if let Ok((size, false)) = file.size_and_linked() {
            if !self.is_open(file.dev, file.ino) {
                self.resized(size, 0);
            }
        }
        Ok(())
    }

    /// READ: as much as the file has from the offset, up to the buffer's
    /// size; the size read goes back.
    fn read<A: AllocatedShm>(
        &mut self,
        shm: &mut ShmTable<A>,
        params: &mut [TeeParam],
    ) -> Result<(), u32> {
        let (region, file) = self.files.with_output(shm, params)?;
        let mut buf = vec![0; region.len];
        let mut done = 0;
        while done < buf.len() {
            let at = params[0].c.checked_add(done as u64);
            match at.map(|at| file.file.read_at(&mut buf[done..], at)) {
                Some(Ok(0)) => break,
                Some(Ok(n)) => done += n,
                Some(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                _ => return Err(teec::ERROR_GENERIC),
            }
        }
        shm.write(&region, &buf[..done])?;
        params[1].b = done as u64;
        Ok(())
    }

    /// A file of the secure world's, with its size now: for a change
    /// that may make it `to` bytes long, refused (STORAGE_NO_SPACE) if
    /// that would exceed the quota.
    fn sized(&mut self, handle: u64, to: Option<u64>) -> Result<u64, u32> {
        let file = self
            .files
            .get_mut(handle)
            .ok_or(teec::ERROR_BAD_PARAMETERS)?;
        let (old, _) = file.size_and_linked().map_err(|_| teec::ERROR_GENERIC)?;
        // An offset and length past what a file can be: GENERIC, as the
        // write would fail.
        let to = to.ok_or(teec::ERROR_GENERIC)?;
        // Counted once it is done ([`ReeFs::recount`]).
        if let Err(e) = self.room(to.saturating_sub(old), 0) {
            log::warn!(
                "supplicant: a file of {} grows by {} bytes: {e}",
                self.root.path().display(),
                to - old
            );
            return Err(ERROR_STORAGE_NO_SPACE);
        }
        Ok(old)
    }

    /// The file `handle` is now however long it is (after a write or a
    /// truncation, done or not).
    fn recount(&mut self, handle: u64, old: u64) {
        let now = self
            .files
            .get_mut(handle)
            .and_then(|f| f.size_and_linked().ok())
            .map(|(size, _)| size);
        if let Some(now) = now {
            self.resized(old, now);
        }
    }

    /// WRITE: all of the buffer at the offset.
    fn write<A: AllocatedShm>(
        &mut self,
        shm: &ShmTable<A>,
        params: &[TeeParam],
    ) -> Result<(), u32> {
        if !has_types(params, &[VAL_IN, MEM_IN]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        let region = shm.region(&params[1])?.ok_or(teec::ERROR_BAD_PARAMETERS)?;
        let data = shm.read(&region)?;
        let (handle, offset) = (params[0].b, params[0].c);
        // What the file may become (nothing for an empty write, which
        // does not extend it).
        let end = match data.len() {
            0 => Some(0),
            n => offset
                .checked_add(n as u64)
                .filter(|&e| i64::try_from(e).is_ok()),
        };
        let old = self.sized(handle, end)?;
        let file = self
            .files
            .get_mut(handle)
            .ok_or(teec::ERROR_BAD_PARAMETERS)?;
        let r = file.file.write_all_at(&data, offset);
        self.recount(handle, old);
        r.map_err(|e| teec_of(&e.into()))
    }

    /// TRUNCATE (or extend) to value c.
    fn truncate(&mut self, params: &[TeeParam]) -> Result<(), u32> {
        if !has_types(params, &[VAL_IN]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        let (handle, len) = (params[0].b, params[0].c);
        let old = self.sized(handle, Some(len).filter(|&l| i64::try_from(l).is_ok()))?;
        let file = self
            .files
            .get_mut(handle)
            .ok_or(teec::ERROR_BAD_PARAMETERS)?;
        let r = file.file.set_len(len);
        self.recount(handle, old);
        r.map_err(|e| teec_of(&e.into()))
    }

    /// REMOVE of a file, then the directories it emptied, up to the
    /// storage directory.
    fn remove<A: AllocatedShm>(
        &mut self,
        shm: &ShmTable<A>,
        params: &[TeeParam],
    ) -> Result<(), u32> {
        if !has_types(params, &[VAL_IN, MEM_IN]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        let name = self.name(shm, &params[1], false)?;
        self.remove_name(&name)
            .map_err(|e| teec_of(&self.refused("remove", &name, e)))
    }

    fn remove_name(&mut self, name: &Name) -> Result<(), FsError> {
        let (dirs, last) = name.split().ok_or(FsError::NotFile)?;
        let walk = self.walk(dirs, false)?;
        let parent = walk.parent();
        let st = lstat_at(parent, last)?;
        match file_type(&st) {
            libc::S_IFREG => {}
            libc::S_IFLNK => return Err(FsError::Link),
            _ => return Err(FsError::NotFile),
        }
        unlink_at(parent, last, 0)?;
        self.gone(&st);
        // Prune the directories it emptied, the deepest first.
        for level in (0..walk.dirs.len()).rev() {
            if unlink_at(walk.dir(level), &dirs[level], libc::AT_REMOVEDIR).is_err() {
                break;
            }
            self.used.objects = self.used.objects.saturating_sub(1);
        }
        Ok(())
    }

    /// RENAME; without overwrite, an existing new name is ACCESS_CONFLICT
    /// (renameat2's RENAME_NOREPLACE, as tee-supplicant).
    fn rename<A: AllocatedShm>(
        &mut self,
        shm: &ShmTable<A>,
        params: &[TeeParam],
    ) -> Result<(), u32> {
        if !has_types(params, &[VAL_IN, MEM_IN, MEM_IN]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        let overwrite = params[0].b != 0;
        let old = self.name(shm, &params[1], false)?;
        let new = self.name(shm, &params[2], false)?;
        self.rename_names(&old, &new, overwrite).map_err(|e| {
            let e = self.refused("rename", &old, e);
            match e.errno() {
                Some(libc::EEXIST) => ERROR_ACCESS_CONFLICT,
                _ if e.is_missing() => teec::ERROR_ITEM_NOT_FOUND,
                _ => teec::ERROR_GENERIC,
            }
        })
    }

    fn rename_names(&mut self, old: &Name, new: &Name, overwrite: bool) -> Result<(), FsError> {
        let (old_dirs, old_last) = old.split().ok_or(FsError::NotFile)?;
        let (new_dirs, new_last) = new.split().ok_or(FsError::NotFile)?;
        let old_walk = self.walk(old_dirs, false)?;
        let new_walk = self.walk(new_dirs, false)?;
        let (from, to) = (old_walk.parent(), new_walk.parent());
        // A file or a directory (tee-supplicant renames either); a planted
        // link or special file is refused, although moving it would not
        // follow it.
        let st = lstat_at(from, old_last)?;
        match file_type(&st) {
            libc::S_IFREG | libc::S_IFDIR => {}
            libc::S_IFLNK => return Err(FsError::Link),
            _ => return Err(FsError::NotFile),
        }
        let replaced = if overwrite {
            lstat_at(to, new_last).ok()
        } else {
            None
        };
        let flags = if overwrite { 0 } else { libc::RENAME_NOREPLACE };
        // SAFETY: both descriptors are live and both names NUL-terminated.
        let r = unsafe {
            libc::renameat2(
                from.as_raw_fd(),
                old_last.as_ptr(),
                to.as_raw_fd(),
                new_last.as_ptr(),
                flags,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error().into());
        }
        if let Some(gone) = replaced {
            // Renaming a file onto itself replaces nothing.
            if (gone.st_dev, gone.st_ino) != (st.st_dev, st.st_ino) {
                self.gone(&gone);
            }
        }
        self.root.sync();
        Ok(())
    }

    /// OPENDIR; a missing or empty directory is ITEM_NOT_FOUND.
    fn opendir<A: AllocatedShm>(
        &mut self,
        shm: &ShmTable<A>,
        params: &mut [TeeParam],
    ) -> Result<(), u32> {
        if !has_types(params, &[VAL_IN, MEM_IN, VAL_OUT]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        let name = self.name(shm, &params[1], true)?;
        let relative = name.relative().ok_or(teec::ERROR_BAD_PARAMETERS)?;
        let entries = open_beneath(
            self.root.fd(),
            &relative,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .and_then(DirStream::new)
        .map_err(|e| {
            self.refused("opendir", &name, e.into());
            teec::ERROR_ITEM_NOT_FOUND
        })?;
        let mut dir = Dir {
            entries,
            pending: None,
        };
        // An empty directory is not found (tee-supplicant's workaround of
        // directories left over on NFS, kept for the same answers).
        let first = dir.next_name().map_err(|_| teec::ERROR_GENERIC)?;
        dir.pending = Some(first.ok_or(teec::ERROR_ITEM_NOT_FOUND)?);
        self.dirs.give(dir, &mut params[2], "directories")
    }

    /// CLOSEDIR.
    fn closedir(&mut self, params: &[TeeParam]) -> Result<(), u32> {
        self.dirs.close(params)
    }

    /// READDIR: the next name with its NUL; its size goes back, and
    /// SHORT_BUFFER if it does not fit; ITEM_NOT_FOUND at the end.
    fn readdir<A: AllocatedShm>(
        &mut self,
        shm: &mut ShmTable<A>,
        params: &mut [TeeParam],
    ) -> Result<(), u32> {
        let (region, dir) = self.dirs.with_output(shm, params)?;
        let mut name = dir
            .next_name()
            .map_err(|_| teec::ERROR_GENERIC)?
            .ok_or(teec::ERROR_ITEM_NOT_FOUND)?;
        name.push(0);
        params[1].b = name.len() as u64;
        if name.len() > region.len {
            name.pop();
            dir.pending = Some(name);
            return Err(teec::ERROR_SHORT_BUFFER);
        }
        shm.write(&region, &name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_inside_the_root_only() {
        let r = |n: &[u8]| resolve(n, false).map(|n| n.to_string());
        let some = |s: &str| Some(s.to_string());
        assert_eq!(r(b"/dirf.db\0"), some("/dirf.db"));
        assert_eq!(r(b"dirf.db\0garbage after"), some("/dirf.db"));
        assert_eq!(r(b"/a//./b\0"), some("/a/b"));
        assert_eq!(
            resolve(b"/a//./b/\0", false).unwrap().relative(),
            Some(c"a/b".to_owned())
        );
        assert_eq!(r(b"../x\0"), None);
        assert_eq!(r(b"/a/../../b\0"), None);
        assert_eq!(r(b"/a/../b\0"), None);
        assert_eq!(r(b"..\0"), None);
        assert_eq!(r(b"/dirf.db"), None, "no NUL");
        assert_eq!(r(b"\0"), None);
        assert_eq!(r(b"/\0"), None);
        let root = resolve(b"/\0", true).unwrap();
        assert_eq!(
            (root.to_string(), root.relative()),
            ("/".into(), Some(c".".to_owned()))
        );
        assert_eq!(resolve(b"/..\0", true), None);
    }

    #[test]
    fn handles_are_the_lowest_free_and_capped() {
        let mut h = Handles::default();
        assert_eq!(h.insert('a'), Some(1));
        assert_eq!(h.insert('b'), Some(2));
        assert_eq!(h.insert('c'), Some(3));
        assert_eq!(h.remove(2), Some('b'));
        assert_eq!(h.insert('d'), Some(2));
        assert_eq!(h.remove(0), None);
        assert_eq!(h.remove(u64::MAX), None);
        assert_eq!(h.remove(1 << 32 | 1), None, "no truncation to 1");
        for _ in h.len()..MAX_HANDLES {
            assert!(h.insert('x').is_some());
        }
        assert_eq!(h.insert('y'), None);
    }
}
