//! Handing a file descriptor to another process over a connected Unix
//! stream socket (`SCM_RIGHTS`): how the hub gives every service the sensor
//! table's sealed memfd (ipc-channel can only send its own shared memory,
//! which cannot be sealed).
//!
//! One byte travels with the descriptor, because ancillary data needs at
//! least one byte of data to ride on. These functions never open a socket:
//! the caller owns the connection (the bootstrap's `hub.sock` stream).

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

/// The most descriptors one message may carry that [`recv_fd`] takes in:
/// a peer that sends more has the extra ones closed, never leaked.
const MAX_FDS: usize = 8;

/// A control buffer aligned for `cmsghdr` (its fields are at most 8 bytes).
#[repr(C, align(8))]
struct Control<const N: usize>([u8; N]);

const FD_BYTES: u32 = mem::size_of::<RawFd>() as u32;
// SAFETY: CMSG_SPACE is pure arithmetic on its argument (it is `unsafe`
// only because libc declares every CMSG_* macro so).
const SEND_SPACE: usize = unsafe { libc::CMSG_SPACE(FD_BYTES) } as usize;
// SAFETY: as above.
const RECV_SPACE: usize = unsafe { libc::CMSG_SPACE(FD_BYTES * MAX_FDS as u32) } as usize;

/// The data of a message: the one byte in `data`.
fn one_byte(data: &mut [u8; 1]) -> libc::iovec {
    libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    }
}

/// A message of `iov` with `control` for its ancillary data. It holds raw
/// pointers to both: they must outlive every use of it (the caller's
/// locals, for one system call).
fn message(iov: &mut libc::iovec, control: &mut [u8]) -> libc::msghdr {
    // SAFETY: msghdr is a plain C struct for which all zeroes is a valid
    // value (null pointers, zero lengths); some targets have private
    // padding fields, so it cannot be built field by field.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    msg
}

/// Sends `byte` with a duplicate of `fd` on `socket` (the receiver gets its
/// own descriptor for the same open file). The socket may be non-blocking:
/// one byte on a connection whose peer is waiting for it does not block.
pub fn send_fd(socket: impl AsFd, byte: u8, fd: impl AsFd) -> io::Result<()> {
    let mut data = [byte];
    let mut iov = one_byte(&mut data);
    let mut control = Control([0u8; SEND_SPACE]);
    let msg = message(&mut iov, &mut control.0);
    // SAFETY: `msg` points at a control buffer of SEND_SPACE bytes, enough
    // for one header with one descriptor, aligned for cmsghdr; CMSG_FIRSTHDR
    // returns its start (never null, as msg_controllen >= the header size),
    // and CMSG_DATA the payload inside it, which has room for one RawFd
    // (written unaligned, as CMSG_DATA makes no alignment promise).
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(FD_BYTES) as _;
        ptr::write_unaligned(
            libc::CMSG_DATA(cmsg).cast::<RawFd>(),
            fd.as_fd().as_raw_fd(),
        );
    }
    loop {
        // SAFETY: `msg` and everything it points to (data, iov, control)
        // live until the call returns; the socket descriptor is borrowed.
        // MSG_NOSIGNAL: a peer that left gives EPIPE, not a SIGPIPE.
        let sent = unsafe {
            libc::sendmsg(
                socket.as_fd().as_raw_fd(),
                &msg,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        match sent {
            1 => return Ok(()),
            0 => return Err(io::ErrorKind::WriteZero.into()),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Receives one byte and the descriptor sent with it by [`send_fd`]:
/// `Ok((byte, None))` if the byte came without one. Honours the socket's
/// read timeout (`WouldBlock` or `TimedOut` when it runs out); the end of
/// the stream is `UnexpectedEof`. Descriptors arrive close-on-exec; any
/// beyond the first are closed.
pub fn recv_fd(socket: impl AsFd) -> io::Result<(u8, Option<OwnedFd>)> {
    let mut data = [0u8; 1];
    let mut iov = one_byte(&mut data);
    let mut control = Control([0u8; RECV_SPACE]);
    let mut msg = message(&mut iov, &mut control.0);
    let received = loop {
        // SAFETY: `msg` points to a one-byte buffer and a control buffer of
        // RECV_SPACE bytes, both alive and writable for the call.
        let n =
            unsafe { libc::recvmsg(socket.as_fd().as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    // Take ownership of every descriptor that arrived before anything can
    // return, so none is leaked.
    let mut fds: Vec<OwnedFd> = Vec::new();
    // SAFETY: the kernel filled `control` and set msg_controllen to what it
    // wrote; CMSG_FIRSTHDR/CMSG_NXTHDR walk only within it and return null
    // at its end. For an SCM_RIGHTS header, the payload holds
    // (cmsg_len - CMSG_LEN(0)) / 4 descriptors, each newly installed in
    // this process and owned by nobody else yet, so each becomes an
    // OwnedFd exactly once (read unaligned: CMSG_DATA has no alignment
    // promise).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let first = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..payload / mem::size_of::<RawFd>() {
                    let raw = ptr::read_unaligned(first.add(i));
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if received == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok((data[0], fds.into_iter().next()))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn a_descriptor_crosses_a_socket_and_names_the_same_file() {
        let (a, b) = UnixStream::pair().expect("pair");
        let mut file = tempfile_in_tmp();
        file.write_all(b"table").expect("write");
        send_fd(&a, b'T', &file).expect("send");
        let (byte, fd) = recv_fd(&b).expect("recv");
        assert_eq!(byte, b'T');
        let mut received = std::fs::File::from(fd.expect("an fd"));
        received.rewind().expect("seek");
        let mut text = String::new();
        received.read_to_string(&mut text).expect("read");
        assert_eq!(text, "table");
    }

    #[test]
    fn a_byte_without_a_descriptor_and_the_end_are_told_apart() {
        let (mut a, b) = UnixStream::pair().expect("pair");
        a.write_all(b"x").expect("write");
        let (byte, fd) = recv_fd(&b).expect("recv");
        assert_eq!((byte, fd.is_none()), (b'x', true));
        drop(a);
        let err = recv_fd(&b).expect_err("eof");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    fn tempfile_in_tmp() -> std::fs::File {
        let path = std::env::temp_dir().join(format!("vigil-fdpass-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("temp file");
        let _ = std::fs::remove_file(&path);
        file
    }
}
