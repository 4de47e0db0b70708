//! A stand-in for a containerd shim that leaks an eventfd per exec (seed
//! 002), for the `shim-fd-leak` scenario.
//!
//! It names itself `containerd-shim` (the `comm` a real
//! `containerd-shim-runc-v2` has; `--name NAME` picks another), blocks
//! SIGUSR1 and SIGTERM, prints `ready`, then on each SIGUSR1 opens one
//! eventfd it never closes and prints `eventfds N`. SIGTERM ends it.
//! Signals of one kind do not queue, so a caller sends the next SIGUSR1
//! only after reading the line that answers the previous one.

use std::ffi::CString;
use std::io::Write;

use anyhow::{bail, Context, Result};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SigSet, Signal};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut name = String::from("containerd-shim");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--name" => name = args.next().context("--name needs a value")?,
            other => bail!("unknown argument {other:?} (usage: fake_shim [--name NAME])"),
        }
    }
    // PR_SET_NAME names the calling thread; on the main thread that is the
    // process's `comm`, which is what shim detection looks at.
    let cname = CString::new(name).context("name has a NUL byte")?;
    nix::sys::prctl::set_name(&cname).context("prctl(PR_SET_NAME)")?;

    let mut set = SigSet::empty();
    set.add(Signal::SIGUSR1);
    set.add(Signal::SIGTERM);
    set.thread_block().context("block signals")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;

    let mut leaked: Vec<EventFd> = Vec::new();
    loop {
        match set.wait().context("sigwait")? {
            Signal::SIGUSR1 => {
                leaked.push(EventFd::from_flags(EfdFlags::EFD_CLOEXEC).context("eventfd")?);
                writeln!(out, "eventfds {}", leaked.len())?;
                out.flush()?;
            }
            _ => return Ok(()),
        }
    }
}
