//! [`FileSlice`]: a byte range of a segment file, handed out by reads instead
//! of a copy of the bytes.
//!
//! A fetch locates whole batches under the partition lock, then the connection
//! sends the range straight from the file (sendfile on plaintext sockets) or
//! copies it out with one positioned read — both after the lock is released.
//! Segments are append-only and deletion leaves open files readable, so a
//! slice stays valid while the log moves on.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// `len` bytes of a segment's `.log` file starting at `position`: whole
/// record batches.
#[derive(Clone, Debug)]
pub struct FileSlice {
    file: Arc<File>,
    position: u64,
    len: usize,
}

impl FileSlice {
    pub(crate) fn new(file: Arc<File>, position: u64, len: usize) -> FileSlice {
        FileSlice {
            file,
            position,
            len,
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the slice's bytes to `out` with one positioned read.
    pub fn read_into(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let start = out.len();
        out.resize(start + self.len, 0);
        let read = self.file.read_exact_at(&mut out[start..], self.position);
        if read.is_err() {
            out.truncate(start);
        }
        read
    }
}

/// Copies a read's slices into one buffer.
pub fn read_slices(slices: &[FileSlice]) -> std::io::Result<bytes::Bytes> {
    let mut out = Vec::with_capacity(slices.iter().map(FileSlice::len).sum());
    for slice in slices {
        slice.read_into(&mut out)?;
    }
    Ok(bytes::Bytes::from(out))
}
