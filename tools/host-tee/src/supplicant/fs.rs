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
//!   directory); the last component is never followed if it is a symlink;
//! - the secure world gets handles of this table, not the VMM's file
//!   descriptors, so it can only close, read or write what it opened; an
//!   unknown handle is BAD_PARAMETERS; at most [`MAX_HANDLES`] are open;
//! - REMOVE prunes the emptied directories up to, not including, the
//!   storage directory; a failed RENAME is GENERIC unless the name is
//!   missing (ITEM_NOT_FOUND); READDIR keeps an entry that did not fit
//!   (SHORT_BUFFER) for the next call.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, OpenOptions, ReadDir};
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use optee_mediator::msg::teec;
use tee_uapi::sys::{
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT as MEM_IN,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT as MEM_OUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT as VAL_IN,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT as VAL_OUT,
};

use super::result::ERROR_ACCESS_CONFLICT;
use super::shm::{Region, ShmTable};
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
    entries: ReadDir,
    pending: Option<Vec<u8>>,
}

impl Dir {
    /// The next name, skipping those starting with a dot (as
    /// tee-supplicant does); `None` at the end.
    fn next_name(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(n) = self.pending.take() {
            return Ok(Some(n));
        }
        for e in self.entries.by_ref() {
            let name = e?.file_name().as_bytes().to_vec();
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

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }
}

/// The REE file system of one VM.
#[derive(Debug)]
pub(super) struct ReeFs {
    root: PathBuf,
    files: Handles<File>,
    dirs: Handles<Dir>,
}

/// The path of `name` (the bytes before its NUL) inside `root`; `None` if
/// it has no NUL, has a `..` component, or names `root` itself when
/// `root_ok` is false.
pub(super) fn resolve(root: &Path, name: &[u8], root_ok: bool) -> Option<PathBuf> {
    let end = name.iter().position(|&b| b == 0)?;
    let name = Path::new(OsStr::from_bytes(&name[..end]));
    let mut path = root.to_path_buf();
    let mut depth = 0;
    for c in name.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => {
                path.push(part);
                depth += 1;
            }
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (depth > 0 || root_ok).then_some(path)
}

/// The TEEC result of a failed file operation: ITEM_NOT_FOUND for a
/// missing name, GENERIC otherwise.
fn missing_or_generic(e: &io::Error) -> u32 {
    if e.kind() == ErrorKind::NotFound {
        teec::ERROR_ITEM_NOT_FOUND
    } else {
        teec::ERROR_GENERIC
    }
}

impl ReeFs {
    /// The file system in `root` (which exists).
    pub fn new(root: PathBuf) -> Self {
        ReeFs {
            root,
            files: Handles::default(),
            dirs: Handles::default(),
        }
    }

    /// Open files and directories.
    #[cfg(test)]
    pub fn open_handles(&self) -> (usize, usize) {
        (self.files.len(), self.dirs.len())
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

    /// The path named by memory reference `p`.
    fn name<A: AllocatedShm>(
        &self,
        shm: &ShmTable<A>,
        p: &TeeParam,
        root_ok: bool,
    ) -> Result<PathBuf, u32> {
        let region = shm.region(p)?.ok_or(teec::ERROR_BAD_PARAMETERS)?;
        let bytes = shm.read(&region)?;
        resolve(&self.root, &bytes, root_ok).ok_or_else(|| {
            log::warn!(
                "supplicant: refused the file name {:?} from the secure world",
                String::from_utf8_lossy(
                    &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())]
                )
            );
            teec::ERROR_BAD_PARAMETERS
        })
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
        let path = self.name(shm, &params[1], false)?;
        let opts = |write: bool| {
            let mut o = OpenOptions::new();
            o.read(true)
                .write(write)
                .custom_flags(libc::O_SYNC | libc::O_NOFOLLOW);
            if create {
                o.create(true).truncate(true).mode(0o600);
            }
            o
        };
        let file = if create {
            match opts(true).open(&path) {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    // The directory of the file is missing: make it.
                    let dir = path.parent().unwrap_or(&self.root);
                    DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .and_then(|()| opts(true).open(&path))
                }
                r => r,
            }
            .map_err(|_| teec::ERROR_GENERIC)?
        } else {
            let f = opts(true)
                .open(&path)
                .or_else(|_| opts(false).open(&path))
                .map_err(|_| teec::ERROR_ITEM_NOT_FOUND)?;
            match f.metadata() {
                Ok(m) if m.is_file() => f,
                _ => return Err(teec::ERROR_ITEM_NOT_FOUND),
            }
        };
        self.files.give(file, &mut params[2], "files")
    }

    /// CLOSE.
    fn close(&mut self, params: &[TeeParam]) -> Result<(), u32> {
        self.files.close(params)
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
            match at.map(|at| file.read_at(&mut buf[done..], at)) {
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
        let file = self
            .files
            .get_mut(params[0].b)
            .ok_or(teec::ERROR_BAD_PARAMETERS)?;
        file.write_all_at(&data, params[0].c)
            .map_err(|_| teec::ERROR_GENERIC)
    }

    /// TRUNCATE (or extend) to value c.
    fn truncate(&mut self, params: &[TeeParam]) -> Result<(), u32> {
        if !has_types(params, &[VAL_IN]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        let file = self
            .files
            .get_mut(params[0].b)
            .ok_or(teec::ERROR_BAD_PARAMETERS)?;
        file.set_len(params[0].c).map_err(|_| teec::ERROR_GENERIC)
    }

    /// REMOVE, then the directories it emptied, up to the root.
    fn remove<A: AllocatedShm>(
        &mut self,
        shm: &ShmTable<A>,
        params: &[TeeParam],
    ) -> Result<(), u32> {
        if !has_types(params, &[VAL_IN, MEM_IN]) {
            return Err(teec::ERROR_BAD_PARAMETERS);
        }
        let path = self.name(shm, &params[1], false)?;
        fs::remove_file(&path).map_err(|e| missing_or_generic(&e))?;
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(&self.root) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// RENAME; without overwrite, an existing new name is ACCESS_CONFLICT.
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
        if !overwrite && fs::symlink_metadata(&new).is_ok() {
            return Err(ERROR_ACCESS_CONFLICT);
        }
        fs::rename(&old, &new).map_err(|e| missing_or_generic(&e))
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
        let path = self.name(shm, &params[1], true)?;
        let entries = fs::read_dir(&path).map_err(|_| teec::ERROR_ITEM_NOT_FOUND)?;
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
        let root = Path::new("/st");
        let r = |n: &[u8]| resolve(root, n, false);
        assert_eq!(r(b"/dirf.db\0"), Some("/st/dirf.db".into()));
        assert_eq!(r(b"dirf.db\0garbage after"), Some("/st/dirf.db".into()));
        assert_eq!(r(b"/a//./b\0"), Some("/st/a/b".into()));
        assert_eq!(r(b"../x\0"), None);
        assert_eq!(r(b"/a/../../b\0"), None);
        assert_eq!(r(b"/a/../b\0"), None);
        assert_eq!(r(b"..\0"), None);
        assert_eq!(r(b"/dirf.db"), None, "no NUL");
        assert_eq!(r(b"\0"), None);
        assert_eq!(r(b"/\0"), None);
        assert_eq!(resolve(root, b"/\0", true), Some("/st".into()));
        assert_eq!(resolve(root, b"/..\0", true), None);
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
