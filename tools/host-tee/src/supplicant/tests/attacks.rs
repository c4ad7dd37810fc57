// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The supplicant's storage attacked as a local user (or a confused
//! secure world) would: symbolic links planted in each component of a
//! name, FIFOs where files are expected, storage directories that others
//! can write or that point elsewhere, operations that block while the
//! supplicant is stopped.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt};

use super::threads::{pipe, release_one, stop_within_10s, wait_until};
use super::*;

/// Makes a FIFO at `path` (mode 0600).
fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Runs `f` on `env` on another thread: its result and the environment
/// back, or a failure after 10 s (the operation hung).
fn within_10s<T: Send + 'static>(
    env: Env,
    what: &str,
    f: impl FnOnce(&mut Env) -> T + Send + 'static,
) -> (T, Env) {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let mut env = env;
        let r = f(&mut env);
        let _ = done.send((r, env));
    });
    result
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what}: still blocked after 10 s"))
}

/// Every path under `p` with its contents (files) or its target (links),
/// to show that nothing outside the storage changed.
fn tree(p: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = walk(p)
        .into_iter()
        .map(|path| {
            let m = fs::symlink_metadata(&path).unwrap();
            let content = if m.file_type().is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            } else if m.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            (path, content)
        })
        .collect();
    v.sort();
    v
}

/// An environment whose storage holds planted links to `outside` (a
/// directory beside the storage with a secret file and a subdirectory):
/// `/ldir` (a link to the directory), `/real/ldir` (the same, one level
/// down), `/lfile` (a link to the secret), `/dangling` (a link to a name
/// that does not exist yet outside).
fn planted(tag: &str) -> (Env, PathBuf) {
    let env = Env::new(tag);
    let outside = env.dir.path().join("outside");
    fs::create_dir_all(outside.join("sub")).unwrap();
    fs::write(outside.join("secret"), b"the host's").unwrap();
    fs::write(outside.join("sub").join("deep"), b"deeper").unwrap();
    let st = env.storage();
    symlink(&outside, st.join("ldir")).unwrap();
    fs::create_dir(st.join("real")).unwrap();
    symlink(&outside, st.join("real").join("ldir")).unwrap();
    symlink(outside.join("secret"), st.join("lfile")).unwrap();
    symlink(outside.join("created"), st.join("dangling")).unwrap();
    (env, outside)
}

#[test]
fn a_symlink_in_any_component_is_never_followed() {
    let (mut env, outside) = planted("symlinks");
    let before = tree(&outside);
    let through_dirs = ["/ldir/secret", "/real/ldir/secret", "/ldir/sub/deep"];

    for name in through_dirs {
        // Reading through a linked directory: not found, as any name that
        // cannot be opened (tee-supplicant's answer to a failed open).
        let (r, _) = env.open(op::OPEN, name);
        assert_eq!(r, teec::ERROR_ITEM_NOT_FOUND, "open {name}");
        // Creating, removing, renaming through it: an error.
        let (r, _) = env.open(op::CREATE, name);
        assert_ne!(r, teec::SUCCESS, "create {name}");
        assert_ne!(env.remove(name), teec::SUCCESS, "remove {name}");
        assert_ne!(
            env.rename(name, "/stolen", true),
            teec::SUCCESS,
            "rename {name} in"
        );
    }
    // A new name under a linked directory is not made outside.
    for name in ["/ldir/planted", "/real/ldir/planted", "/ldir/new/obj"] {
        let (r, _) = env.open(op::CREATE, name);
        assert_ne!(r, teec::SUCCESS, "create {name}");
    }
    // The last component a link: not opened, not created through.
    for name in ["/lfile", "/dangling"] {
        let (r, _) = env.open(op::OPEN, name);
        assert_eq!(r, teec::ERROR_ITEM_NOT_FOUND, "open {name}");
        let (r, _) = env.open(op::CREATE, name);
        assert_ne!(r, teec::SUCCESS, "create {name}");
    }
    // Moving a file out through a linked directory.
    let (r, fd) = env.open(op::CREATE, "/mine");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.write(fd, 0, b"guest data"), teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);
    for to in ["/ldir/moved", "/real/ldir/moved", "/ldir/secret"] {
        assert_ne!(env.rename("/mine", to, true), teec::SUCCESS, "to {to}");
    }
    // Listing a linked directory.
    for name in ["/ldir", "/real/ldir", "/ldir/sub"] {
        let n = env.name(name.as_bytes());
        let mut p = [val(VAL_IN, op::OPENDIR, 0, 0), n, val(VAL_OUT, 0, 0, 0)];
        assert_ne!(env.fs(&mut p), teec::SUCCESS, "opendir {name}");
    }

    assert_eq!(tree(&outside), before, "nothing outside changed");
    assert!(!outside.join("created").exists());
    assert_eq!(fs::read(env.storage().join("mine")).unwrap(), b"guest data");
    assert_eq!(env.sup.fs.open_handles(), (0, 0));
}

#[test]
fn a_fifo_where_a_file_is_expected_is_an_error_not_a_hang() {
    let env = Env::new("fifo");
    let st = env.storage();
    mkfifo(&st.join("dirf.db"));
    fs::create_dir(st.join("d")).unwrap();
    mkfifo(&st.join("d").join("1"));
    let (rets, mut env) = within_10s(env, "storage ops on a FIFO", |env| {
        let mut rets = Vec::new();
        for name in ["/dirf.db", "/d/1"] {
            rets.push((name, "open", env.open(op::OPEN, name).0));
            rets.push((name, "create", env.open(op::CREATE, name).0));
            rets.push((name, "remove", env.remove(name)));
            rets.push((name, "rename", env.rename(name, "/moved", true)));
        }
        // A FIFO as a directory of the name.
        for name in ["/dirf.db/x", "/d/1/y"] {
            rets.push((name, "open", env.open(op::OPEN, name).0));
            rets.push((name, "create", env.open(op::CREATE, name).0));
            let n = env.name(name.as_bytes());
            let mut p = [val(VAL_IN, op::OPENDIR, 0, 0), n, val(VAL_OUT, 0, 0, 0)];
            rets.push((name, "opendir", env.fs(&mut p)));
        }
        rets
    });
    for (name, what, r) in rets {
        assert_ne!(r, teec::SUCCESS, "{what} {name} (a FIFO)");
    }
    assert_eq!(env.sup.fs.open_handles(), (0, 0), "no handle on a FIFO");
    assert!(fs::symlink_metadata(st.join("dirf.db"))
        .unwrap()
        .file_type()
        .is_fifo());
    // The FIFO's neighbours still work.
    let (r, fd) = env.open(op::CREATE, "/d/2");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);

    // A TA "binary" that is a FIFO does not hang the load either.
    mkfifo(&env.ta_dir().join("5b9e0e40-2736-4aa3-a94d-2c7e923533f2.ta"));
    let (r, _) = within_10s(env, "loading a TA that is a FIFO", |env| {
        let mut p = [uuid_value(&UUID), null_mem(MEM_OUT, 0)];
        env.call(cmd::LOAD_TA, &mut p)
    });
    assert_eq!(r, teec::ERROR_ITEM_NOT_FOUND);
}

/// A supplicant thread on `chan` whose TA directory holds a FIFO named as
/// the TA [`UUID`], and a request to load it queued.
fn thread_loading_a_fifo(tag: &str) -> (TempDir, FakeChannel, SupplicantThread) {
    let dir = TempDir::new(tag);
    fs::create_dir(dir.path().join("ta")).unwrap();
    mkfifo(
        &dir.path()
            .join("ta/5b9e0e40-2736-4aa3-a94d-2c7e923533f2.ta"),
    );
    let chan = FakeChannel::default();
    chan.request(cmd::LOAD_TA, &[uuid_value(&UUID), null_mem(MEM_OUT, 0)]);
    let config = SupplicantConfig {
        ta_dir: dir.path().join("ta"),
        storage_dir: dir.path().join("st"),
        quota: StorageQuota::default(),
    };
    let t = SupplicantThread::spawn(chan.clone(), config).unwrap();
    (dir, chan, t)
}

#[test]
fn stopping_returns_promptly_after_a_request_on_a_fifo() {
    let (_dir, chan, t) = thread_loading_a_fifo("stop-fifo");
    wait_until("the FIFO request is answered", || {
        !chan.answers().is_empty()
    });
    assert_eq!(chan.answers()[0].0, teec::ERROR_ITEM_NOT_FOUND);
    // The thread went on to the next receive (the fake's: EAGAIN, which
    // ends it); stopping it returns at once either way.
    let started = Instant::now();
    let _ = stop_within_10s(t);
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A channel whose answer blocks in read(2) on a pipe and retries when
/// interrupted, as a storage operation stuck in the kernel (or a library
/// that retries on EINTR) would: only the pipe's write end releases it.
#[derive(Debug)]
struct StuckChannel {
    inner: FakeChannel,
    rx: OwnedFd,
}

impl SupplicantChannel for StuckChannel {
    type Allocated = FakeShm;

    fn supp_recv(
        &self,
        params: &mut [TeeParam; RECV_PARAMS],
    ) -> Result<(u32, usize), HostTeeError> {
        self.inner.supp_recv(params)
    }

    fn supp_send(&self, ret: u32, params: &[TeeParam]) -> Result<(), HostTeeError> {
        let mut byte = 0u8;
        loop {
            // SAFETY: reads at most one byte into `byte`, from the pipe
            // `rx` owns.
            let n = unsafe { libc::read(self.rx.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
            if n >= 0 {
                break;
            }
        }
        self.inner.supp_send(ret, params)
    }

    fn supp_alloc(&self, size: usize) -> Result<FakeShm, HostTeeError> {
        self.inner.supp_alloc(size)
    }
}

#[test]
fn stopping_returns_promptly_while_an_operation_blocks() {
    let dir = TempDir::new("stop-stuck");
    let inner = FakeChannel::default();
    let (rx, tx) = pipe();
    inner.request(cmd::SOCKET, &[val(VAL_IN, 0, 0, 0)]);
    let chan = StuckChannel {
        inner: inner.clone(),
        rx,
    };
    let t = SupplicantThread::spawn(chan, SupplicantConfig::new(dir.path().join("st"))).unwrap();
    // Give the thread time to take the request and block in its answer.
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let r = stop_within_10s(t);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let e = r.unwrap_err();
    assert!(e.to_string().contains("still busy"), "{e}");
    // Released, the thread finishes on its own (it was told to stop).
    release_one(&tx);
    wait_until("the blocked answer is sent", || inner.answers().len() == 1);
}

/// Whether a supplicant can be made on storage `path`: the error's
/// message if not.
fn storage_refusal(path: &Path) -> Option<String> {
    Supplicant::new(FakeChannel::default(), SupplicantConfig::new(path))
        .err()
        .map(|e| e.to_string())
}

#[test]
fn a_given_storage_others_can_write_or_that_is_a_link_is_refused() {
    let dir = TempDir::new("given");
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    let refused = |p: &Path, why: &str| {
        let e = storage_refusal(p).unwrap_or_else(|| panic!("{} accepted", p.display()));
        assert!(e.contains(why), "{e}");
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        assert!(!e.contains('\n'), "{e}");
    };

    for (name, m) in [
        ("world", 0o777),
        ("group", 0o770),
        ("sticky", 0o1777),
        ("ow", 0o702),
    ] {
        let p = dir.path().join(name);
        fs::create_dir(&p).unwrap();
        mode(&p, m);
        refused(&p, "writable by its group or others");
    }

    let good = dir.path().join("good");
    fs::create_dir(&good).unwrap();
    mode(&good, 0o700);
    let link = dir.path().join("link");
    symlink(&good, &link).unwrap();
    refused(&link, "symbolic link");
    // A trailing slash or dot would make the kernel follow it.
    for suffix in ["/", "/.", "//"] {
        let mut p = link.clone().into_os_string();
        p.push(suffix);
        let e = storage_refusal(Path::new(&p)).unwrap_or_else(|| panic!("{p:?} accepted"));
        assert!(e.contains("symbolic link"), "{e}");
    }
    // A link to a directory that does not exist is not created through.
    let dangling = dir.path().join("dangling");
    symlink(dir.path().join("made-through"), &dangling).unwrap();
    refused(&dangling, "symbolic link");
    assert!(!dir.path().join("made-through").exists());

    // Owned by another user.
    // SAFETY: geteuid has no preconditions.
    let foreign = if unsafe { libc::geteuid() } == 0 {
        let p = dir.path().join("foreign");
        fs::create_dir(&p).unwrap();
        mode(&p, 0o700);
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        p
    } else {
        // Not root: a directory root owns.
        PathBuf::from("/")
    };
    refused(&foreign, "owned by uid");

    // Its own, not writable by others: accepted (0700 and 0755).
    assert_eq!(storage_refusal(&good), None);
    let readable = dir.path().join("readable");
    fs::create_dir(&readable).unwrap();
    mode(&readable, 0o755);
    assert_eq!(storage_refusal(&readable), None);
}

/// What the storage holds, counted afresh from the disk.
fn counted(env: &Env) -> storage::Usage {
    StorageDir::open(&env.storage()).unwrap().usage().unwrap()
}

const NO_SPACE: u32 = super::result::ERROR_STORAGE_NO_SPACE;

#[test]
fn the_quota_answers_storage_no_space_and_leaves_the_storage_consistent() {
    let quota = StorageQuota {
        max_bytes: 10_000,
        max_objects: 4,
    };
    let mut env = Env::with_quota("quota", quota);
    let st = env.storage();
    let (r, dirf) = env.open(op::CREATE, "/dirf.db");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.write(dirf, 0, &[1; 4000]), teec::SUCCESS);
    let (r, one) = env.open(op::CREATE, "/1");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.write(one, 0, &[2; 5000]), teec::SUCCESS);

    // Bytes: growing past 10,000 is refused, and nothing is written.
    assert_eq!(env.write(one, 5000, &[3; 2000]), NO_SPACE);
    assert_eq!(env.write(one, 1 << 40, b"x"), NO_SPACE, "far past the end");
    assert_eq!(env.write(one, u64::MAX, b"x"), teec::ERROR_GENERIC);
    assert_eq!(
        env.write(one, 1 << 40, b""),
        teec::SUCCESS,
        "empty: no growth"
    );
    assert_eq!(env.simple(op::TRUNCATE, one, 20_000), NO_SPACE);
    assert_eq!(env.simple(op::TRUNCATE, one, u64::MAX), teec::ERROR_GENERIC);
    assert_eq!(fs::read(st.join("1")).unwrap(), vec![2; 5000], "unchanged");
    // Rewriting in place needs no room; up to the quota exactly is room.
    assert_eq!(env.write(one, 0, &[4; 5000]), teec::SUCCESS);
    assert_eq!(env.write(one, 5000, &[5; 1000]), teec::SUCCESS);
    assert_eq!(env.write(one, 6000, b"x"), NO_SPACE);
    assert_eq!(env.sup.fs.usage().bytes, 10_000);
    assert_eq!(env.sup.fs.usage(), counted(&env));

    // Objects: dirf.db and 1; a directory and a file in it make four.
    let (r, two) = env.open(op::CREATE, "/sub/2");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, two, 0), teec::SUCCESS);
    assert_eq!(env.open(op::CREATE, "/3").0, NO_SPACE);
    assert!(!st.join("3").exists());
    assert_eq!(env.open(op::CREATE, "/new/4").0, NO_SPACE);
    assert!(!st.join("new").exists(), "no directory left behind");
    // Re-creating an existing file is no new object, and frees its bytes.
    let (r, again) = env.open(op::CREATE, "/1");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(fs::metadata(st.join("1")).unwrap().len(), 0);
    assert_eq!(env.sup.fs.usage(), counted(&env));
    assert_eq!(env.write(again, 0, &[6; 5000]), teec::SUCCESS);
    for h in [one, again, dirf] {
        assert_eq!(env.simple(op::CLOSE, h, 0), teec::SUCCESS);
    }

    // Removing gives room back (the emptied directory too).
    assert_eq!(env.remove("/sub/2"), teec::SUCCESS);
    assert!(!st.join("sub").exists());
    assert_eq!(env.sup.fs.usage().objects, 2);
    let (r, three) = env.open(op::CREATE, "/3");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.write(three, 0, b"three"), teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, three, 0), teec::SUCCESS);
    // A rename over an existing name replaces it: one object less.
    assert_eq!(env.rename("/3", "/1", true), teec::SUCCESS);
    assert_eq!(fs::read(st.join("1")).unwrap(), b"three");
    assert_eq!(env.sup.fs.usage(), counted(&env));
    assert_eq!(env.sup.fs.usage().objects, 2);

    // A file removed while open still holds its bytes until it is closed.
    let (r, doomed) = env.open(op::CREATE, "/doomed");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.write(doomed, 0, &[7; 3000]), teec::SUCCESS);
    assert_eq!(env.remove("/doomed"), teec::SUCCESS);
    let held = env.sup.fs.usage().bytes;
    assert_eq!(held, 4000 + 5 + 3000);
    assert_eq!(env.write(doomed, 3000, &[7; 2000]), teec::SUCCESS);
    assert_eq!(
        env.write(doomed, 5000, &[7; 1000]),
        NO_SPACE,
        "still bounded"
    );
    assert_eq!(env.simple(op::CLOSE, doomed, 0), teec::SUCCESS);
    assert_eq!(env.sup.fs.usage(), counted(&env));
    assert_eq!(env.sup.fs.usage().bytes, 4005);
    assert_eq!(env.sup.fs.open_handles(), (0, 0));
}

#[test]
fn what_a_kept_storage_already_holds_counts_against_its_quota() {
    let dir = TempDir::new("quota-kept");
    let st = dir.path().join("st");
    fs::create_dir(&st).unwrap();
    fs::set_permissions(&st, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(st.join("dirf.db"), [0; 3000]).unwrap();
    fs::create_dir(st.join("d")).unwrap();
    fs::write(st.join("d").join("1"), [0; 1000]).unwrap();
    let chan = FakeChannel::default();
    let config = SupplicantConfig {
        quota: StorageQuota {
            max_bytes: 4500,
            max_objects: 100,
        },
        ..SupplicantConfig::new(&st)
    };
    let mut env = Env {
        sup: Supplicant::new(chan.clone(), config).unwrap(),
        dir,
        chan,
    };
    assert_eq!(
        env.sup.fs.usage(),
        storage::Usage {
            bytes: 4000,
            objects: 3
        }
    );
    let n = env.name(b"/dirf.db");
    let mut p = [val(VAL_IN, op::OPEN, 0, 0), n, val(VAL_OUT, 0, 0, 0)];
    assert_eq!(env.fs(&mut p), teec::SUCCESS);
    let fd = p[2].a;
    assert_eq!(env.write(fd, 3000, &[1; 600]), NO_SPACE);
    assert_eq!(env.write(fd, 3000, &[1; 500]), teec::SUCCESS);
}

#[test]
fn a_directory_renames_as_tee_supplicant_renames_it_and_the_count_follows() {
    let mut env = Env::new("rename-dir");
    let st = env.storage();
    let (r, fd) = env.open(op::CREATE, "/a/1");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.write(fd, 0, b"in a"), teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);
    assert_eq!(env.rename("/a", "/b", false), teec::SUCCESS);
    assert_eq!(fs::read(st.join("b/1")).unwrap(), b"in a");
    assert!(!st.join("a").exists());
    assert_eq!(env.sup.fs.usage(), counted(&env));
    // Onto an existing name without overwrite: ACCESS_CONFLICT.
    let (r, fd) = env.open(op::CREATE, "/c/2");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);
    assert_eq!(env.rename("/b", "/c", false), ERROR_ACCESS_CONFLICT);
    assert_eq!(env.sup.fs.usage(), counted(&env));
    assert_eq!(env.sup.fs.usage().objects, 4);
}

#[test]
fn the_default_quota_bounds_a_vm_that_sets_none() {
    const NO_SPACE: u32 = 0xFFFF_3041;
    // A kept storage holding 4094 objects already (made by hand: quicker
    // than 4094 synchronous creates), counted at the start.
    let dir = TempDir::in_memory("quota-default");
    let st = dir.path().join("st");
    fs::create_dir(&st).unwrap();
    fs::set_permissions(&st, fs::Permissions::from_mode(0o700)).unwrap();
    for i in 0..4094 {
        fs::write(st.join(format!("old{i}")), b"").unwrap();
    }
    let chan = FakeChannel::default();
    let sup = Supplicant::new(chan.clone(), SupplicantConfig::new(&st)).unwrap();
    let mut env = Env { dir, chan, sup };
    assert_eq!(env.sup.fs.usage().objects, 4094);

    // 64 MiB of bytes: a write that would make a file longer is refused
    // (even a sparse one: one byte far out).
    let (r, fd) = env.open(op::CREATE, "/big");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.write(fd, 64 << 20, b"x"), NO_SPACE);
    assert_eq!(env.simple(op::TRUNCATE, fd, (64 << 20) + 1), NO_SPACE);
    assert_eq!(env.simple(op::TRUNCATE, fd, 64 << 20), teec::SUCCESS);
    assert_eq!(env.simple(op::TRUNCATE, fd, 0), teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);
    // 4096 objects: /big is the 4095th, /last the 4096th, then no more.
    let (r, fd) = env.open(op::CREATE, "/last");
    assert_eq!(r, teec::SUCCESS);
    assert_eq!(env.simple(op::CLOSE, fd, 0), teec::SUCCESS);
    assert_eq!(env.open(op::CREATE, "/4097").0, NO_SPACE);
    assert!(!st.join("4097").exists());
}
