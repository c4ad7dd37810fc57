// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A VM's secure storage directory, and every name under it resolved
//! without following a symbolic link anywhere.
//!
//! The directory: a given one must be this process's user's, not
//! writable by its group or others, and not a symbolic link
//! ([`StorageDir::open`]; refusals are one line, [`StorageError`]); a
//! default one is made fresh ([`fresh_dir`]: mkdir of a random name,
//! mode 0700, never an existing path). It is opened once, and everything
//! under it is reached from that descriptor, so renaming or replacing the
//! path later changes nothing.
//!
//! Names under it are resolved with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: the kernel refuses a symbolic
//! link in any component (ELOOP) and any escape from the directory, in
//! one call and without a window between a check and the use. Files are
//! opened with `O_NONBLOCK` (a FIFO planted where a file is expected does
//! not block the open) and their type checked on the descriptor.
//!
//! Why `openat2` rather than the `cap-std` crate: cap-std confines
//! resolution to the directory but follows symbolic links that stay
//! inside it, and says nothing of the ones it refuses; here no link is
//! ever followed, which is what the kernel flag states exactly, with
//! libc as the only dependency. `openat2` is Linux 5.6; a VM partition
//! needs the project's TEE series (Linux 7.3), so every kernel this runs
//! on has it (a missing one is a start-up error, never a fallback).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// How much a VM may keep in its secure storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageQuota {
    /// Bytes: the sum of its files' sizes (as `ls -l` shows them: a file
    /// extended by a write far past its end counts its full size).
    pub max_bytes: u64,
    /// Objects: its files and directories (OP-TEE's REE file system keeps
    /// one file per persistent object, and `dirf.db`).
    pub max_objects: u64,
}

/// [`StorageQuota::max_bytes`] by default: 64 MiB (xtest's largest
/// object is 640 KiB of data, its benchmark's 1 MiB, each about twice
/// that on disk with OP-TEE's hash tree).
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// [`StorageQuota::max_objects`] by default.
pub const DEFAULT_MAX_OBJECTS: u64 = 4096;

impl Default for StorageQuota {
    fn default() -> Self {
        StorageQuota {
            max_bytes: DEFAULT_MAX_BYTES,
            max_objects: DEFAULT_MAX_OBJECTS,
        }
    }
}

impl StorageQuota {
    /// The quota a command line asks for: each limit it gives, the
    /// default for each it does not.
    pub fn given_or_default(max_bytes: Option<u64>, max_objects: Option<u64>) -> Self {
        let d = StorageQuota::default();
        StorageQuota {
            max_bytes: max_bytes.unwrap_or(d.max_bytes),
            max_objects: max_objects.unwrap_or(d.max_objects),
        }
    }
}

/// What a storage directory holds, as a [`StorageQuota`] counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// The sum of its files' sizes.
    pub bytes: u64,
    /// Its files, directories and anything else in it.
    pub objects: u64,
}

/// Why a storage directory is refused or cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The path is a symbolic link.
    #[error(
        "{}: refused as the VM's secure storage: it is a symbolic link (name the directory itself)",
        path.display()
    )]
    Symlink {
        /// The path given.
        path: PathBuf,
    },
    /// The path is not a directory.
    #[error("{}: refused as the VM's secure storage: not a directory", path.display())]
    NotDir {
        /// The path given.
        path: PathBuf,
    },
    /// Another user owns it.
    #[error(
        "{}: refused as the VM's secure storage: owned by uid {owner}, not by this process's user (uid {uid})",
        path.display()
    )]
    Owner {
        /// The path given.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective user.
        uid: u32,
    },
    /// Its group or others may write it.
    #[error(
        "{}: refused as the VM's secure storage: writable by its group or others (mode {mode:04o}; chmod go-w it)",
        path.display()
    )]
    Writable {
        /// The path given.
        path: PathBuf,
        /// Its mode (permission bits).
        mode: u32,
    },
    /// The kernel has no `openat2` (before Linux 5.6).
    #[error(
        "{}: cannot serve the VM's secure storage: this kernel cannot resolve names without following links (openat2: {source})",
        path.display()
    )]
    NoOpenat2 {
        /// The storage directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// It could not be created, opened or examined.
    #[error("{}: cannot use it as the VM's secure storage: {source}", path.display())]
    Io {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A fresh directory could not be made.
    #[error("cannot make a fresh secure storage directory in {}: {source}", parent.display())]
    Fresh {
        /// Where it was to be made.
        parent: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Makes a fresh directory in `parent`, named `prefix` and random
/// characters, mode 0700: created by this call (mkdir fails on an
/// existing name, and another name is drawn), so nobody else's and
/// empty. Its path is returned; the caller removes it.
pub fn fresh_dir(parent: &Path, prefix: &str) -> Result<PathBuf, StorageError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map(tempfile::TempDir::keep)
        .map_err(|source| StorageError::Fresh {
            parent: parent.to_path_buf(),
            source,
        })
}

/// A storage directory, open: everything under it is reached from this
/// descriptor, never by its path again.
#[derive(Debug)]
pub struct StorageDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// `fstat(2)` of `fd`.
fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: all zeroes is a valid `stat`, filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is a live descriptor and `st` a writable `stat`.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `fstatat(2)` of `name` in `dir`, not following a link.
pub(super) fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: all zeroes is a valid `stat`, filled by fstatat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `dir` is a live descriptor, `name` NUL-terminated, `st` a
    // writable `stat`.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// The file type bits of a mode.
pub(super) fn file_type(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

/// How many times an `openat2` that the kernel asks to retry (EAGAIN: a
/// rename raced the resolution; EINTR) is retried before it fails: never
/// forever.
const OPEN_RETRIES: usize = 8;

/// `openat2(2)` of `rel` under `dir` with `flags` (O_CLOEXEC added) and
/// `mode`, never following a symbolic link and never leaving `dir`.
pub(super) fn open_beneath(
    dir: BorrowedFd<'_>,
    rel: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain integers, for which all zeroes is valid
    // (and what the kernel expects of any field not set).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = u64::from(mode);
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        // SAFETY: `dir` is a live descriptor, `rel` NUL-terminated, `how` a
        // valid open_how whose size is passed with it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                rel.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            let fd =
                libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
            // SAFETY: the kernel just returned this descriptor to us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        tries += 1;
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR) if tries < OPEN_RETRIES => {}
            _ => return Err(e),
        }
    }
}

impl StorageDir {
    /// Opens the storage directory `path`, made (mode 0700, with its
    /// missing parents) if it does not exist; refuses a symbolic link,
    /// anything but a directory, a directory another user owns or that
    /// its group or others may write.
    pub fn open(path: &Path) -> Result<StorageDir, StorageError> {
        // Without a trailing slash or `.` components: "link/" would make
        // the kernel follow the link that O_NOFOLLOW refuses.
        let path: &Path = &path.components().collect::<PathBuf>();
        let io_err = |source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(StorageError::Symlink {
                    path: path.to_path_buf(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io_err)?,
            Err(e) => return Err(io_err(e)),
        }
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|e| io_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                // Made a link since it was looked at.
                Some(libc::ELOOP) => StorageError::Symlink {
                    path: path.to_path_buf(),
                },
                Some(libc::ENOTDIR) => StorageError::NotDir {
                    path: path.to_path_buf(),
                },
                _ => io_err(e),
            });
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // What the descriptor is, not what the path was.
        let st = fstat(fd.as_fd()).map_err(io_err)?;
        if file_type(&st) != libc::S_IFDIR {
            return Err(StorageError::NotDir {
                path: path.to_path_buf(),
            });
        }
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if st.st_uid != uid {
            return Err(StorageError::Owner {
                path: path.to_path_buf(),
                owner: st.st_uid,
                uid,
            });
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            return Err(StorageError::Writable {
                path: path.to_path_buf(),
                mode,
            });
        }
        // The kernel must resolve beneath it without links.
        open_beneath(fd.as_fd(), c".", libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|source| {
            StorageError::NoOpenat2 {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(StorageDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The directory's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its descriptor.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Flushes its entries to disk (after a file is created or renamed in
    /// it, as tee-supplicant does); a failure is only logged.
    pub(super) fn sync(&self) {
        // SAFETY: `fd` is a live directory descriptor of ours.
        if unsafe { libc::fsync(self.fd.as_raw_fd()) } != 0 {
            log::warn!(
                "supplicant: fsync of {}: {}",
                self.path.display(),
                io::Error::last_os_error()
            );
        }
    }

    /// What it holds, every file and directory under it counted, links
    /// not followed (for the quota of a storage that outlives its VMs).
    pub fn usage(&self) -> io::Result<Usage> {
        let mut usage = Usage::default();
        // Directories still to list, by their path under the storage.
        let mut todo: Vec<CString> = vec![c".".to_owned()];
        while let Some(rel) = todo.pop() {
            let fd = open_beneath(self.fd(), &rel, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            let mut dir = DirStream::new(fd)?;
            while let Some(name) = dir.next_name()? {
                if name == b"." || name == b".." {
                    continue;
                }
                let c = CString::new(name.clone()).map_err(io::Error::other)?;
                let st = lstat_at(dir.fd(), &c)?;
                usage.objects += 1;
                match file_type(&st) {
                    libc::S_IFREG => usage.bytes += u64::try_from(st.st_size).unwrap_or(0),
                    libc::S_IFDIR => {
                        let mut sub = rel.as_bytes().to_vec();
                        sub.push(b'/');
                        sub.extend_from_slice(&name);
                        todo.push(CString::new(sub).map_err(io::Error::other)?);
                    }
                    _ => {}
                }
            }
        }
        Ok(usage)
    }
}

/// A directory's listing: `fdopendir(3)` on a descriptor opened beneath
/// the storage (std's `ReadDir` can only start from a path).
#[derive(Debug)]
pub(super) struct DirStream(NonNull<libc::DIR>);

// SAFETY: the DIR stream is owned by this value alone and used through
// `&mut self` only, so it is never used by two threads at once; moving it
// to another thread is what fdopendir's users do.
unsafe impl Send for DirStream {}

impl DirStream {
    /// The listing of the directory open on `fd` (O_RDONLY | O_DIRECTORY).
    pub fn new(fd: OwnedFd) -> io::Result<DirStream> {
        let raw = fd.into_raw_fd();
        // SAFETY: `raw` is an open directory descriptor whose ownership
        // passes to the stream (closedir closes it).
        let dir = unsafe { libc::fdopendir(raw) };
        match NonNull::new(dir) {
            Some(d) => Ok(DirStream(d)),
            None => {
                let e = io::Error::last_os_error();
                // SAFETY: fdopendir failed, so `raw` is still ours to close.
                unsafe { libc::close(raw) };
                Err(e)
            }
        }
    }

    /// The stream's descriptor (for `*at` calls on the directory).
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the stream is open, so dirfd returns its live
        // descriptor, which lives as long as the stream (borrowed from it).
        unsafe { BorrowedFd::borrow_raw(libc::dirfd(self.0.as_ptr())) }
    }

    /// The next name, `.` and `..` included; `None` at the end.
    pub fn next_name(&mut self) -> io::Result<Option<Vec<u8>>> {
        // SAFETY: readdir reports errors only through errno, which is
        // cleared first to tell them from the end of the listing.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: the stream is open and used by this thread alone.
        let ent = unsafe { libc::readdir(self.0.as_ptr()) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(0) | None => Ok(None),
                Some(_) => Err(e),
            };
        }
        // SAFETY: readdir returned a valid dirent whose d_name is
        // NUL-terminated, valid until the next readdir on this stream;
        // the name is copied before then.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        Ok(Some(name.to_bytes().to_vec()))
    }
}

impl Drop for DirStream {
    fn drop(&mut self) {
        // SAFETY: the stream is open and closed once, here.
        unsafe { libc::closedir(self.0.as_ptr()) };
    }
}

/// Why an operation under the storage failed.
#[derive(Debug)]
pub(super) enum FsError {
    /// A system call failed.
    Io(io::Error),
    /// A symbolic link in the name (`openat2`'s ELOOP), refused.
    Link,
    /// Not a regular file where one is expected (a FIFO, a device...).
    NotFile,
    /// The storage's quota would be exceeded: which one.
    Quota(&'static str),
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ELOOP) {
            FsError::Link
        } else {
            FsError::Io(e)
        }
    }
}

impl FsError {
    /// Whether the name does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, FsError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// The errno of a failed call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            FsError::Io(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsError::Io(e) => e.fmt(f),
            FsError::Link => f.write_str("a symbolic link in the name (never followed)"),
            FsError::NotFile => {
                f.write_str("not a regular file (a FIFO, a device, a directory...)")
            }
            FsError::Quota(what) => write!(f, "the storage quota of {what} would be exceeded"),
        }
    }
}

/// A file under the storage as the secure world sees it: its file, and
/// which inode it is (to know whether a removed file is still open).
#[derive(Debug)]
pub(super) struct OpenFile {
    pub file: File,
    pub dev: u64,
    pub ino: u64,
}

impl OpenFile {
    /// `fd` as a file, if it is a regular file.
    pub fn regular(fd: OwnedFd) -> Result<OpenFile, FsError> {
        let st = fstat(fd.as_fd())?;
        if file_type(&st) != libc::S_IFREG {
            return Err(FsError::NotFile);
        }
        Ok(OpenFile {
            file: File::from(fd),
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    /// Its size now, and whether it still has a name (is not removed).
    pub fn size_and_linked(&self) -> io::Result<(u64, bool)> {
        let st = fstat(self.file.as_fd())?;
        Ok((u64::try_from(st.st_size).unwrap_or(0), st.st_nlink > 0))
    }
}
