//! Fault injection for the simulated source Glance: what can go wrong while an image's data is
//! being read (`GET /v2/images/{id}/file`), so the sidecar's retry, verification and fail-closed
//! paths can be tested against a real socket.

use std::time::Duration;

/// One way the fake Glance misbehaves when serving an image's data.
///
/// Byte counts are bytes of the response body; `Corrupt::offset` is an offset in the image, so the
/// same byte is hit by a full read and by a Range read that covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Send this many body bytes, then abort the connection (the client sees an incomplete
    /// message: Content-Length was promised). A response with no more than this many bytes (e.g.
    /// a Range resume from the drop point) completes normally.
    DropAfter(u64),
    /// Send this many body bytes and end the body; with Content-Length declared this is still an
    /// incomplete message on the wire (hyper closes the connection).
    ShortBody(u64),
    /// Flip (xor 0xff) the byte at this image offset in transit; headers, Content-Length and
    /// Content-MD5 stay those of the true data.
    Corrupt {
        /// Offset of the flipped byte in the image.
        offset: u64,
    },
    /// Send the headers, then wait this long before the first body byte.
    Stall(Duration),
    /// Wait this long before sending anything, headers included (a response-timeout test).
    StallHeaders(Duration),
    /// Send this many body bytes, then pause for `duration` (a read-timeout test mid-stream).
    StallAfter {
        /// Body bytes sent before the pause.
        bytes: u64,
        /// Length of the pause.
        duration: Duration,
    },
    /// Answer this status with a Glance-style error body instead of the data.
    Status(u16),
    /// Declare this Content-Length and send exactly that many bytes (the true data, truncated or
    /// padded with zeros): a well-formed HTTP message whose length disagrees with the image size.
    WrongContentLength(u64),
    /// Serve at about this many bytes per second (progress and backpressure tests).
    Throttle {
        /// Target rate.
        bytes_per_sec: u64,
    },
}

/// One way the fake Glance misbehaves when receiving an image's data (`PUT /file`): the
/// target-side faults an import must survive without leaving a half-written image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadFault {
    /// Refuse the upload with this status before reading any of it (the image stays `queued`).
    Refuse(u16),
    /// Read this many bytes, then answer this status and put the image back to `queued` — as
    /// Glance does when its store fails (500), is full or over quota (413), or is unavailable
    /// (503) mid-upload.
    FailAfter { bytes: u64, status: u16 },
    /// Take the first this many bytes as the whole upload, store them and answer 204 at once:
    /// a server that ends a body early and keeps what it has (the image ends `active`, short).
    StoreFirst(u64),
}

/// A fault set on an image, with how many more responses it applies to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ArmedFault {
    pub(crate) fault: Fault,
    /// `None` = every response until cleared; `Some(n)` = the next `n` responses.
    pub(crate) remaining: Option<u32>,
}

impl ArmedFault {
    /// Takes one use of the fault; returns it and whether it is now spent.
    pub(crate) fn take(&mut self) -> (Fault, bool) {
        match self.remaining.as_mut() {
            None => (self.fault, false),
            Some(n) => {
                *n = n.saturating_sub(1);
                (self.fault, *n == 0)
            }
        }
    }
}

/// How the fake Glance's web server hands an upload's body to Glance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyReading {
    /// As uwsgi does (Glance 33): a body cut short is an error, whatever its framing; Glance
    /// checks the size in `x-openstack-image-size` (32+) or `Content-Length`.
    #[default]
    Strict,
    /// As the most lenient stack hands a body on: a `Content-Length` body cut short reads as a
    /// clean, shorter end of data and is stored; a chunked body cut before its last chunk is an
    /// error; `x-openstack-image-size` is not known (as before Glance 32). eventlet's WSGI server
    /// reads a cut `Content-Length` body so; Glance itself still notices the missing bytes through
    /// WebOb (`DisconnectionError`, scripts/interop/NOTES.md), an application or proxy that does
    /// not count them would store the short image.
    Lenient,
}
