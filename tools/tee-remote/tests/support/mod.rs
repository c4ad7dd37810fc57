// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A service in this process, on a Unix socket, that a test can kill (its
//! connections cut as a dying process's are), and raw protocol helpers.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use host_tee::{FakeTee, HostTee, HostTeeConfig};
use optee_mediator::{Backend, Policy};
use tee_remote::frame;
use tee_remote::policy::{Grant, Peer};
use tee_remote::server::{self, Service, VmOptions};
use tee_remote::wire::{Hello, Request, Response};

/// A fresh directory for a test's sockets.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tee-remote-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A service listening on `path`.
pub struct TestService {
    pub path: PathBuf,
    pub service: Arc<Service>,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl TestService {
    /// Serves `service` on `path` under `policy`.
    pub fn start(path: PathBuf, service: Arc<Service>, policy: Policy) -> TestService {
        let grant = Grant {
            policy,
            ..Grant::default()
        };
        TestService::granting(path, service, grant)
    }

    /// Serves `service` on `path`, granting its peers `grant`.
    pub fn granting(path: PathBuf, service: Arc<Service>, grant: Grant) -> TestService {
        let listener = UnixListener::bind(&path).unwrap();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st, sv) = (conns.clone(), stop.clone(), service.clone());
        let accept = std::thread::spawn(move || {
            for s in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let mut s = s.unwrap();
                c.lock().unwrap().push(s.try_clone().unwrap());
                let sv = sv.clone();
                let grant = grant.clone();
                std::thread::spawn(move || {
                    let peer = Peer::Unix {
                        uid: 0,
                        gid: 0,
                        pid: 1,
                    };
                    server::serve(&sv, &mut s, &peer, Some(&grant), "", |_| ());
                    // The clone kept for kill() must not keep it open.
                    let _ = s.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        TestService {
            path,
            service,
            conns,
            stop,
            accept: Some(accept),
        }
    }

    /// Ends the service as a killed process's end: every connection cut,
    /// the socket gone.
    pub fn kill(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        let _ = UnixStream::connect(&self.path);
        if let Some(a) = self.accept.take() {
            a.join().unwrap();
        }
        std::fs::remove_file(&self.path).unwrap();
    }
}

/// Waits until `f` holds (5 s at most).
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A raw connection, greeted.
pub fn raw(path: &PathBuf) -> UnixStream {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = exchange(&mut s, &Request::Hello(Hello::new("raw test client")));
    assert!(matches!(r, Response::Welcome(_)), "{r:?}");
    s
}

/// One request and its answer.
pub fn exchange(s: &mut UnixStream, req: &Request) -> Response {
    frame::send(s, req).unwrap();
    frame::receive(s).unwrap()
}

/// Whether the service closed `s` (EOF before any answer).
pub fn closed(s: &mut UnixStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0))
}

/// Sends raw bytes.
pub fn send_bytes(s: &mut UnixStream, b: &[u8]) {
    s.write_all(b).unwrap();
}

/// A service whose VMs all use `fake`'s context (its relay set), the
/// relay left to the connection when the VMM asks for it.
pub fn fake_service(fake: &FakeTee) -> Arc<Service> {
    let f = fake.clone();
    Service::per_vm(
        8,
        HostTeeConfig::default().revision,
        Box::new(move |options: VmOptions| {
            let f = f.clone();
            // SAFETY: the service's memory has no host mapping: nothing
            // is registered from it.
            let tee = unsafe { HostTee::new(HostTeeConfig::default(), move || Ok(f.clone())) };
            let tee = if options.relay_supplicant {
                tee.relay_carried_by_caller()
            } else {
                tee
            };
            Ok(Box::new(tee) as Box<dyn Backend + Send>)
        }),
    )
}

/// A standard call as the mediator hands it to a backend.
pub fn std_call(
    command: optee_mediator::backend::Command,
    session: u32,
    params: Vec<optee_mediator::backend::Param>,
) -> optee_mediator::backend::StdCall {
    optee_mediator::backend::StdCall {
        command,
        session,
        cancel_id: 0,
        params,
        ret: 0,
        ret_origin: 0,
        cost: Default::default(),
    }
}
