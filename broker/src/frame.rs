//! A response on its way to the socket: encoded bytes, and for fetches the
//! record batches as ranges of segment files, sent with sendfile(2) so that
//! record data never passes through the broker's memory.
//!
//! A fetch handler puts a [`placeholder`] of the right length into each
//! partition's `records` field; the frame is encoded with those left out
//! (`strata_protocol::encode_response_with_holes`) and [`Frame::write_to`]
//! sends the encoded pieces and the file ranges in order.

use std::io;
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};
use strata_protocol::HoleyFrame;
use strata_storage::FileSlice;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

/// Record sets up to this size are sent from files; a larger one (only a
/// single batch above `max.message.bytes`-sized fetch limits can be) is
/// copied into the response instead.
pub const PLACEHOLDER_LEN: usize = 64 << 20;

/// Below this many record bytes a response is copied and sent with one
/// write: a sendfile saves little on small reads, and one write keeps a small
/// response in one TCP segment.
pub const SENDFILE_MIN_BYTES: usize = 64 << 10;

/// Zeros standing in for record bytes while a response is encoded. Never
/// read (the encoder skips registered holes), so it costs address space,
/// not memory: a zeroed static lives in the never-touched BSS.
static PLACEHOLDER: [u8; PLACEHOLDER_LEN] = [0; PLACEHOLDER_LEN];

/// A stand-in for `len` bytes of records, or `None` if `len` is too large
/// (the caller then copies the bytes).
pub fn placeholder(len: usize) -> Option<Bytes> {
    PLACEHOLDER.get(..len).map(Bytes::from_static)
}

/// Whether `records` is a stand-in made by [`placeholder`].
pub fn is_placeholder_slice(records: &[u8]) -> bool {
    !records.is_empty() && std::ptr::eq(records.as_ptr(), PLACEHOLDER.as_ptr())
}

/// [`is_placeholder_slice`] for a `records` field.
#[cfg(test)]
pub fn is_placeholder(records: &Bytes) -> bool {
    is_placeholder_slice(records)
}

/// One piece of a response frame.
#[derive(Debug)]
enum Part {
    Bytes(Bytes),
    File(FileSlice),
}

/// A complete response frame (size prefix included), in pieces.
#[derive(Debug)]
pub struct Frame {
    parts: Vec<Part>,
}

impl Frame {
    /// A frame encoded whole.
    pub fn from_bytes(bytes: BytesMut) -> Frame {
        Frame {
            parts: vec![Part::Bytes(bytes.freeze())],
        }
    }

    /// A frame encoded with holes, and each hole's file ranges in hole order.
    pub fn from_holes(frame: HoleyFrame, holes: Vec<Vec<FileSlice>>) -> Frame {
        let mut bytes = frame.bytes.freeze();
        let mut parts = Vec::with_capacity(2 * holes.len() + 1);
        let mut consumed = 0;
        for (offset, slices) in frame.hole_offsets.into_iter().zip(holes) {
            parts.push(Part::Bytes(bytes.split_to(offset - consumed)));
            consumed = offset;
            parts.extend(slices.into_iter().map(Part::File));
        }
        parts.push(Part::Bytes(bytes));
        parts.retain(|part| !matches!(part, Part::Bytes(b) if b.is_empty()));
        Frame { parts }
    }

    /// The whole frame as bytes, file ranges read in (for transports that
    /// cannot sendfile, and for tests).
    pub fn to_bytes(&self) -> io::Result<Bytes> {
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Bytes(bytes) => out.extend_from_slice(bytes),
                Part::File(slice) => slice.read_into(&mut out)?,
            }
        }
        Ok(Bytes::from(out))
    }

    /// Writes the frame to a plaintext TCP connection: bytes with `write_all`,
    /// file ranges with sendfile on the same socket. An error leaves the
    /// frame half-written: the caller must close the connection.
    pub async fn write_to(&self, writer: &mut OwnedWriteHalf) -> io::Result<()> {
        let file_bytes: usize = self
            .parts
            .iter()
            .map(|part| match part {
                Part::File(slice) => slice.len(),
                Part::Bytes(_) => 0,
            })
            .sum();
        if file_bytes < SENDFILE_MIN_BYTES {
            return writer.write_all(&self.to_bytes()?).await;
        }
        for part in &self.parts {
            match part {
                Part::Bytes(bytes) => writer.write_all(bytes).await?,
                Part::File(slice) => send_file(writer.as_ref(), slice).await?,
            }
        }
        Ok(())
    }
}

/// Sends a file range to the socket with sendfile(2), waiting for the socket
/// to become writable whenever its buffer is full.
async fn send_file(socket: &TcpStream, slice: &FileSlice) -> io::Result<()> {
    let mut offset = libc::off_t::try_from(slice.position())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
    let mut left = slice.len();
    let file = slice.file().as_raw_fd();
    while left > 0 {
        socket.writable().await?;
        let sent = socket.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call
            // (`slice` holds the file, `socket` the connection), and `offset`
            // is a valid, exclusively borrowed off_t that sendfile updates.
            let sent = unsafe { libc::sendfile(socket.as_raw_fd(), file, &mut offset, left) };
            if sent < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(sent as usize)
            }
        });
        match sent {
            // The file ended early: it was truncated under the read.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file shorter than the fetched range",
                ))
            }
            Ok(sent) => left -= sent,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
