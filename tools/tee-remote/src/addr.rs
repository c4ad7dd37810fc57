// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Where the service is: a Unix socket path, or a TCP address; and the
//! connected stream.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A service address, as both tosfwd-teed's `--listen` and tosfwd-vmm's
/// `--tee remote:` take it: `unix:PATH` or `tcp:HOST:PORT` (see
/// [`Address::from_str`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// A TCP address, `HOST:PORT`.
    Tcp(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

impl FromStr for Address {
    type Err = String;

    /// `unix:PATH` or `tcp:HOST:PORT` (HOST a name, an IPv4 address or a
    /// bracketed IPv6 one); without a prefix, a path that starts with `/`
    /// or `.`, or `HOST:PORT`.
    fn from_str(s: &str) -> Result<Address, String> {
        let tcp = |a: &str| match a.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Address::Tcp(a.to_owned()))
            }
            _ => Err(format!("tcp:{a}: want tcp:HOST:PORT")),
        };
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err("unix: needs a socket path (unix:PATH)".to_owned());
            }
            Ok(Address::Unix(PathBuf::from(p)))
        } else if let Some(a) = s.strip_prefix("tcp:") {
            tcp(a)
        } else if s.starts_with('/') || s.starts_with('.') {
            Ok(Address::Unix(PathBuf::from(s)))
        } else {
            tcp(s).map_err(|_| format!("'{s}': want unix:PATH or tcp:HOST:PORT"))
        }
    }
}

/// A connected stream.
#[derive(Debug)]
pub enum Stream {
    /// Unix.
    Unix(UnixStream),
    /// TCP.
    Tcp(TcpStream),
}

impl Stream {
    /// Connects to `addr`; reads and writes then time out after `timeout`.
    pub fn connect(addr: &Address, timeout: Duration) -> io::Result<Stream> {
        let s = match addr {
            Address::Unix(p) => Stream::Unix(UnixStream::connect(p)?),
            Address::Tcp(a) => {
                let t = TcpStream::connect(a)?;
                t.set_nodelay(true)?;
                Stream::Tcp(t)
            }
        };
        s.set_timeout(timeout)?;
        Ok(s)
    }

    /// Sets the read and write timeouts.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.set_timeouts(Some(timeout), Some(timeout))
    }

    /// Sets the read and write timeouts apart (`None`: none).
    pub fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(read)?;
                s.set_write_timeout(write)
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(read)?;
                s.set_write_timeout(write)
            }
        }
    }

    /// Moves it into or out of non-blocking mode.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_nonblocking(on),
            Stream::Tcp(s) => s.set_nonblocking(on),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }
}

impl Stream {
    /// Another handle on the same connection (for the keepalive).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    /// Ends the connection both ways, for every handle on it.
    pub fn shutdown(&self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_or_without_a_prefix() {
        let ok = |s: &str| s.parse::<Address>().unwrap();
        assert_eq!(ok("/run/t.sock"), Address::Unix("/run/t.sock".into()));
        assert_eq!(ok("./t.sock"), Address::Unix("./t.sock".into()));
        assert_eq!(ok("unix:rel.sock"), Address::Unix("rel.sock".into()));
        assert_eq!(
            ok("tcp:10.0.0.1:7000"),
            Address::Tcp("10.0.0.1:7000".into())
        );
        assert_eq!(ok("host:7000"), Address::Tcp("host:7000".into()));
        assert_eq!(ok("[::1]:7000"), Address::Tcp("[::1]:7000".into()));
        assert_eq!(ok("/run/t.sock").to_string(), "unix:/run/t.sock");
        for (bad, msg) in [
            ("unix:", "unix: needs a socket path (unix:PATH)"),
            ("tcp:host", "tcp:host: want tcp:HOST:PORT"),
            ("tcp::80", "tcp::80: want tcp:HOST:PORT"),
            (
                "host:99999",
                "'host:99999': want unix:PATH or tcp:HOST:PORT",
            ),
            ("t.sock", "'t.sock': want unix:PATH or tcp:HOST:PORT"),
        ] {
            assert_eq!(bad.parse::<Address>().unwrap_err(), msg);
        }
    }
}
