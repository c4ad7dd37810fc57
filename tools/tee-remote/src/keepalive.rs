// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The client's keepalive: a VMM whose guests hold sessions open but make
//! no call is alive, and says so.
//!
//! The service drops a peer that sends nothing for its idle timeout (as
//! sshd's ClientAliveInterval and TCP keepalives find dead peers), and
//! tells it that timeout in its welcome ([`crate::wire::Welcome`]). A
//! small thread per connection sends [`Request::Ping`] when the client
//! has sent nothing for a third of it, so that only a dead or hung VMM is
//! dropped.
//!
//! The connection is request/response: a ping must never come between a
//! request and its answer. The client and the thread take turns, told by
//! [`State`]: the client waits while a ping is on the wire
//! ([`Keepalive::begin`]), the thread waits while a request is. Nobody
//! holds the lock across a read, a write or a wait (a condition variable
//! releases it), and a ping's round trip is bounded by the stream's
//! timeouts.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::addr::Stream;
use crate::frame;
use crate::wire::{Request, Response};

/// The shortest interval between pings, whatever the service says.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Whose turn it is on a connection.
#[derive(Debug)]
struct State {
    /// A request of the client's is on the wire (its answer not read).
    asking: bool,
    /// A ping is on the wire (its answer not read).
    pinging: bool,
    /// When the last answer came (or the connection was made): the
    /// service's idle clock started then.
    last: Instant,
    /// The connection is being let go: the thread ends.
    stop: bool,
    /// Why a ping failed: the connection is dead.
    broken: Option<String>,
}

/// What the client and its thread share.
#[derive(Debug)]
struct Shared {
    /// The turn-taking; held only to read or change it.
    state: Mutex<State>,
    /// Signalled whenever `state` changes.
    changed: Condvar,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Recovered if a holder panicked: the flags are consistent
        // between statements.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The keepalive of one connection; its thread ends when it is dropped.
#[derive(Debug)]
pub(crate) struct Keepalive {
    shared: Arc<Shared>,
}

/// The interval between pings for a service that drops a peer silent for
/// `idle_timeout_ms`: a third of it; `None` if it never does.
pub(crate) fn interval(idle_timeout_ms: Option<u64>) -> Option<Duration> {
    let ms = idle_timeout_ms.filter(|&ms| ms > 0)?;
    Some((Duration::from_millis(ms) / 3).max(MIN_INTERVAL))
}

impl Keepalive {
    /// Pings on `stream` (a handle on the client's connection) whenever
    /// nothing was sent on it for `every`.
    pub(crate) fn start(stream: Stream, every: Duration) -> std::io::Result<Keepalive> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                asking: false,
                pinging: false,
                last: Instant::now(),
                stop: false,
                broken: None,
            }),
            changed: Condvar::new(),
        });
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("tee-keepalive".to_owned())
            .stack_size(128 << 10)
            .spawn(move || run(&sh, stream, every))?;
        Ok(Keepalive { shared })
    }

    /// Takes the connection's turn for a request: waits while a ping is on
    /// the wire. `Err` with the reason if a ping found the connection
    /// dead. [`Keepalive::end`] gives the turn back.
    pub(crate) fn begin(&self) -> Result<(), String> {
        let mut st = self.shared.state();
        while st.pinging {
            st = self
                .shared
                .changed
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
        if let Some(why) = &st.broken {
            return Err(why.clone());
        }
        st.asking = true;
        Ok(())
    }

    /// Why a ping found the connection dead, if one did.
    pub(crate) fn broken(&self) -> Option<String> {
        self.shared.state().broken.clone()
    }

    /// Gives the turn back: the request's answer came, or it failed.
    pub(crate) fn end(&self) {
        let mut st = self.shared.state();
        st.asking = false;
        st.last = Instant::now();
        drop(st);
        self.shared.changed.notify_all();
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        self.shared.state().stop = true;
        self.shared.changed.notify_all();
    }
}

/// One ping and its answer.
fn ping(stream: &mut Stream) -> Result<(), String> {
    frame::send(stream, &Request::Ping).map_err(|e| e.to_string())?;
    match frame::receive::<_, Response>(stream) {
        Ok(Response::Pong) => Ok(()),
        Ok(other) => Err(format!("{other:?} in answer to a ping")),
        Err(e) => Err(e.to_string()),
    }
}

/// The thread: waits until the connection has been silent for `every`
/// and no request is on the wire, pings, and again, until stopped or a
/// ping fails (then the connection is shut down: the client's next
/// request fails, and it reconnects).
fn run(shared: &Shared, mut stream: Stream, every: Duration) {
    let mut st = shared.state();
    loop {
        if st.stop {
            return;
        }
        let Some(due) = st.last.checked_add(every) else {
            // Never due (an interval of centuries).
            st = shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let now = Instant::now();
        if st.asking || now < due {
            let wait = if st.asking {
                every
            } else {
                due.saturating_duration_since(now)
            };
            st = shared
                .changed
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        st.pinging = true;
        drop(st);
        let r = ping(&mut stream);
        st = shared.state();
        st.pinging = false;
        st.last = Instant::now();
        if let Err(why) = r {
            log::debug!("keepalive: {why}");
            st.broken = Some(why);
            drop(st);
            let _ = stream.shutdown();
            shared.changed.notify_all();
            return;
        }
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_of_the_idle_timeout_never_below_10_ms_none_for_never() {
        assert_eq!(interval(Some(3_600_000)), Some(Duration::from_secs(1200)));
        assert_eq!(interval(Some(900)), Some(Duration::from_millis(300)));
        assert_eq!(interval(Some(3)), Some(MIN_INTERVAL));
        assert_eq!(interval(Some(0)), None);
        assert_eq!(interval(None), None);
    }
}
