//! A command's output on stdout, where the reader may stop reading early.
//!
//! `print!` panics when stdout is a pipe whose reader has gone (`tasks … | head`): the process
//! ignores `SIGPIPE`, as a server must, so the write fails with `EPIPE` instead of ending it.
//! A reader that has seen enough is not an error: the output stops quietly there.

use std::io::{ErrorKind, Write};

/// Writes `text` to stdout and flushes it. A reader that has gone ends the output quietly;
/// any other write error is reported on stderr.
pub fn write(text: impl AsRef<[u8]>) {
    let mut out = std::io::stdout().lock();
    if let Err(error) = out.write_all(text.as_ref()).and_then(|()| out.flush()) {
        if error.kind() != ErrorKind::BrokenPipe {
            eprintln!("writing to stdout failed: {error}");
        }
    }
}
