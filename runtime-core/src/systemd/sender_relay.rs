//! A relay that lets zbus talk to systemd's private socket.
//!
//! On `/run/systemd/private` there is no bus daemon, and systemd stamps each
//! message it sends with the sender `org.freedesktop.systemd1`, a
//! well-known name. The D-Bus specification says the sender field holds a
//! unique name (`:1.42`), and zbus enforces that: it drops every reply from
//! the private socket, so calls would only ever time out (seen on systemd
//! 252 with zbus 5.19). The relay sits between zbus and the socket and
//! rewrites, in place and only in the header's sender field, a well-known
//! name into a unique one of the same length (`org.x` -> `:rg.x`). Nothing
//! else changes: byte counts, alignment and bodies pass through untouched,
//! and the client-to-systemd direction is copied verbatim.
//!
//! The authentication exchange (text lines) is forwarded as is. The relay
//! tells text from messages by the first byte: authentication replies start
//! with an upper-case command (`OK`, `AGREE_UNIX_FD`, `ERROR`, `REJECTED`,
//! `DATA`), messages with their endianness mark `l` or `B`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

/// D-Bus header field code of the sender.
const FIELD_SENDER: u8 = 7;
/// A message larger than this (the D-Bus maximum is 128 MiB) means the
/// stream is not what we think it is.
const MAX_MESSAGE: usize = 128 << 20;

/// Start relaying between `upstream` (systemd) and a new socket pair; the
/// returned end is for zbus. Both relay threads end when either side
/// closes.
pub fn relay(upstream: UnixStream) -> io::Result<UnixStream> {
    let (ours, theirs) = UnixStream::pair()?;
    let up_read = upstream.try_clone()?;
    let theirs_read = theirs.try_clone()?;
    // zbus -> systemd: verbatim.
    std::thread::Builder::new()
        .name("systemd-private-relay-out".into())
        .spawn(move || {
            let mut from = theirs_read;
            let mut to = upstream;
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
        })?;
    // systemd -> zbus: auth lines, then messages with the sender rewritten.
    std::thread::Builder::new()
        .name("systemd-private-relay-in".into())
        .spawn(move || {
            let mut to = theirs;
            let _ = pump_in(up_read, &mut to);
            let _ = to.shutdown(Shutdown::Both);
        })?;
    Ok(ours)
}

fn pump_in(from: UnixStream, to: &mut UnixStream) -> io::Result<()> {
    let mut r = BufReader::new(from);
    loop {
        let first = match r.fill_buf()? {
            [] => return Ok(()),
            b => b[0],
        };
        if first == b'l' || first == b'B' {
            let msg = read_message(&mut r, first == b'l')?;
            to.write_all(&msg)?;
        } else {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line)?;
            to.write_all(&line)?;
        }
    }
}

fn read_message(r: &mut impl Read, little: bool) -> io::Result<Vec<u8>> {
    let mut msg = vec![0u8; 16];
    r.read_exact(&mut msg)?;
    let u32_at = |b: &[u8], at: usize| {
        let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let body = u32_at(&msg, 4) as usize;
    let fields = u32_at(&msg, 12) as usize;
    let header_end = (16 + fields).next_multiple_of(8);
    let total = header_end + body;
    if total > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "D-Bus message too large",
        ));
    }
    msg.resize(total, 0);
    r.read_exact(&mut msg[16..])?;
    rewrite_sender(&mut msg[..16 + fields], little);
    Ok(msg)
}

/// Walk the header fields (`a(yv)` from offset 16) and make a well-known
/// sender a unique name of the same length. Leaves anything it does not
/// understand alone.
fn rewrite_sender(h: &mut [u8], little: bool) {
    let u32_at = |b: &[u8], at: usize| -> Option<usize> {
        let a: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        } as usize)
    };
    let mut at = 16;
    while at < h.len() {
        at = at.next_multiple_of(8);
        let (Some(&code), Some(&sig_len)) = (h.get(at), h.get(at + 1)) else {
            return;
        };
        let sig_start = at + 2;
        let Some(sig) = h.get(sig_start..sig_start + sig_len as usize) else {
            return;
        };
        if sig.len() != 1 {
            return; // header fields are all single basic types
        }
        let sig = sig[0];
        let mut v = sig_start + sig_len as usize + 1;
        match sig {
            b's' | b'o' => {
                v = v.next_multiple_of(4);
                let Some(len) = u32_at(h, v) else { return };
                let s = v + 4;
                if s + len >= h.len() {
                    return;
                }
                if code == FIELD_SENDER {
                    make_unique(&mut h[s..s + len]);
                }
                at = s + len + 1;
            }
            b'g' => {
                let Some(&len) = h.get(v) else { return };
                at = v + 1 + len as usize + 1;
            }
            b'u' => at = v.next_multiple_of(4) + 4,
            _ => return,
        }
    }
}

/// `org.freedesktop.systemd1` -> `:rg.freedesktop.systemd1`: still a valid
/// unique name (elements of `[A-Za-z0-9_-]`, at least two), same length.
fn make_unique(name: &mut [u8]) {
    if name.first() == Some(&b':') {
        return;
    }
    let first_element = name.iter().position(|&c| c == b'.').unwrap_or(name.len());
    if first_element < 2 || !name.contains(&b'.') {
        return;
    }
    name[0] = b':';
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A method return as sd-bus frames it, with the sender field set to
    /// `sender` (little endian).
    fn reply(sender: &str, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        let pad8 = |f: &mut Vec<u8>| {
            while !(16 + f.len()).is_multiple_of(8) {
                f.push(0)
            }
        };
        // REPLY_SERIAL u 7
        f.extend([5, 1, b'u', 0]);
        f.extend(7u32.to_le_bytes());
        pad8(&mut f);
        // SENDER s
        f.extend([FIELD_SENDER, 1, b's', 0]);
        f.extend((sender.len() as u32).to_le_bytes());
        f.extend(sender.as_bytes());
        f.push(0);
        pad8(&mut f);
        // SIGNATURE g "v"
        f.extend([8, 1, b'g', 0, 1, b'v', 0]);
        let fields_len = f.len();
        pad8(&mut f);
        let mut m = vec![b'l', 2, 1, 1];
        m.extend((body.len() as u32).to_le_bytes());
        m.extend(9u32.to_le_bytes());
        m.extend((fields_len as u32).to_le_bytes());
        m.extend(&f);
        m.extend(body);
        m
    }

    #[test]
    fn rewrites_only_the_sender_field() {
        let body = b"org.freedesktop.systemd1 in the body stays";
        let msg = reply("org.freedesktop.systemd1", body);
        let out = read_message(&mut &msg[..], true).unwrap();
        assert_eq!(out.len(), msg.len());
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(":rg.freedesktop.systemd1"), "{text}");
        assert!(out.ends_with(body));
        // Unique senders are left alone.
        let msg = reply(":1.42", b"");
        assert_eq!(read_message(&mut &msg[..], true).unwrap(), msg);
    }

    #[test]
    fn names_that_cannot_be_made_unique_are_left() {
        for n in ["a.b", "x", ":1.5"] {
            let mut b = n.as_bytes().to_vec();
            make_unique(&mut b);
            assert_eq!(b, n.as_bytes());
        }
        let mut b = b"org.freedesktop.systemd1".to_vec();
        make_unique(&mut b);
        assert_eq!(b, b":rg.freedesktop.systemd1");
    }

    #[test]
    fn relays_auth_lines_then_messages() {
        let (server, upstream) = UnixStream::pair().unwrap();
        let mut client = relay(upstream).unwrap();
        let mut server_w = server.try_clone().unwrap();
        let msg = reply("org.freedesktop.systemd1", b"xy");
        let mut wire = b"OK 0123\r\nAGREE_UNIX_FD\r\n".to_vec();
        wire.extend(&msg);
        server_w.write_all(&wire).unwrap();
        client.write_all(b"\0AUTH EXTERNAL 30\r\n").unwrap();
        let mut got = vec![0u8; wire.len()];
        client.read_exact(&mut got).unwrap();
        assert!(got.starts_with(b"OK 0123\r\nAGREE_UNIX_FD\r\n"));
        assert!(String::from_utf8_lossy(&got).contains(":rg.freedesktop"));
        let mut out = [0u8; 19];
        (&server).read_exact(&mut out).unwrap();
        assert_eq!(&out, b"\0AUTH EXTERNAL 30\r\n");
    }
}
