// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A file passed beside the protocol's bytes: one byte
//! ([`crate::wire::SHARE_MARKER`]) that carries one descriptor
//! (SCM_RIGHTS), on a Unix socket only. The service reads it right after
//! the [`crate::wire::Request::ShareMemory`] frame, with nothing read
//! ahead, so that the descriptor is the one sent with that request.

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::addr::Stream;
use crate::wire::SHARE_MARKER;

/// A connection that can carry a descriptor with a byte.
pub trait FdChannel {
    /// Sends [`SHARE_MARKER`] with `fd`.
    fn send_fd(&mut self, fd: BorrowedFd<'_>) -> io::Result<()>;
    /// Receives [`SHARE_MARKER`] and the one descriptor sent with it.
    fn receive_fd(&mut self) -> io::Result<OwnedFd>;
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a file can be passed on a Unix socket only",
    )
}

/// Room for one descriptor's control message, aligned as cmsghdr is.
#[repr(C)]
struct OneFd {
    buf: [u64; 4],
}

fn space_for_one() -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize }
}

fn send_fd_on(sock: RawFd, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut byte = [SHARE_MARKER];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = OneFd { buf: [0; 4] };
    let space = space_for_one();
    debug_assert!(space <= std::mem::size_of::<OneFd>());
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` bytes of `control`, room for
    // the one header and descriptor written here (CMSG_FIRSTHDR is not
    // null for a buffer that large).
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd.as_raw_fd());
    }
    loop {
        // SAFETY: `msg` and what it points at live across the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        match n {
            1 => return Ok(()),
            n if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            n if n < 0 => return Err(io::Error::last_os_error()),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the byte not sent",
                ))
            }
        }
    }
}

fn receive_fd_on(sock: RawFd) -> io::Result<OwnedFd> {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = OneFd { buf: [0; 4] };
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf.as_mut_ptr().cast();
    msg.msg_controllen = space_for_one() as _;
    let n = loop {
        // SAFETY: `msg` points at `byte` and `control`, which outlive the
        // call; the kernel writes at most their sizes.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break n;
        }
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // Every descriptor received is owned here, so that any beyond the one
    // wanted is closed.
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg` and the control buffer; CMSG_FIRSTHDR
    // and CMSG_NXTHDR walk only within msg_controllen, and each SCM_RIGHTS
    // message holds (cmsg_len - CMSG_LEN(0)) / 4 descriptors now ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if byte[0] != SHARE_MARKER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("byte {:#04x} where the file's marker belongs", byte[0]),
        ));
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 || fds.len() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not exactly one file with the marker",
        ));
    }
    Ok(fds.remove(0))
}

impl FdChannel for UnixStream {
    fn send_fd(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        send_fd_on(self.as_raw_fd(), fd)
    }

    fn receive_fd(&mut self) -> io::Result<OwnedFd> {
        receive_fd_on(self.as_raw_fd())
    }
}

impl FdChannel for TcpStream {
    fn send_fd(&mut self, _: BorrowedFd<'_>) -> io::Result<()> {
        Err(unsupported())
    }

    fn receive_fd(&mut self) -> io::Result<OwnedFd> {
        Err(unsupported())
    }
}

impl FdChannel for Stream {
    fn send_fd(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.send_fd(fd),
            Stream::Tcp(s) => s.send_fd(fd),
        }
    }

    fn receive_fd(&mut self) -> io::Result<OwnedFd> {
        match self {
            Stream::Unix(s) => s.receive_fd(),
            Stream::Tcp(s) => s.receive_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_file_goes_with_its_byte_and_nothing_else_is_taken() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let (mut r, w) = UnixStream::pair().unwrap();
        a.write_all(b"before").unwrap();
        a.send_fd(w.as_fd()).unwrap();
        a.write_all(b"after").unwrap();
        let mut before = [0; 6];
        b.read_exact(&mut before).unwrap();
        assert_eq!(&before, b"before");
        let fd = b.receive_fd().unwrap();
        let mut after = [0; 5];
        b.read_exact(&mut after).unwrap();
        assert_eq!(&after, b"after");
        // The descriptor received is the socket sent: what is written on
        // it arrives at its peer.
        let mut sent = UnixStream::from(fd);
        sent.write_all(b"x").unwrap();
        let mut x = [0];
        r.read_exact(&mut x).unwrap();
        assert_eq!(&x, b"x");
    }

    #[test]
    fn a_byte_without_a_file_or_another_byte_is_refused() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&[SHARE_MARKER]).unwrap();
        let e = b.receive_fd().unwrap_err();
        assert_eq!(e.to_string(), "not exactly one file with the marker");
        a.write_all(b"z").unwrap();
        let e = b.receive_fd().unwrap_err();
        assert!(e.to_string().contains("0x7a"), "{e}");
        drop(a);
        assert_eq!(
            b.receive_fd().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
