//! Swapping a cleaned segment in, crash-safely, as Kafka does:
//!
//! 1. `<base>.{log,index,timeindex}.cleaned` (written and fsynced) are renamed to
//!    `.swap`, and the directory is fsynced: from here on the cleaned segment wins.
//! 2. The segments it replaces are deleted (directory fsynced).
//! 3. The `.swap` files are renamed to their final names (directory fsynced).
//! 4. The new segment takes the old ones' place in the segment list.
//!
//! A process killed at any point leaves a directory that [`finish_interrupted_swaps`]
//! (run at the top of `Log::open`, before segments are listed) turns into a correct
//! log: `.cleaned` files are deleted (the old segments are intact); a `.log.swap` file
//! is completed — every segment file whose base offset lies in the swap segment's
//! offset range goes, then the `.swap` files take their final names; index `.swap`
//! files without their log are deleted (a missing index is rebuilt from the log);
//! leftover `.deleted` files and the cleaner's scratch directory are removed.
//!
//! The swap segment's offset range is read from its batches: it starts at its base
//! offset and ends after its last batch, which is always the last batch of the
//! replaced segments (the cleaner keeps it, if only as an empty batch), so every
//! replaced segment holding data is covered.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{suffixed, CleanedGroup, SegmentIdentity, SCRATCH_DIR, SEGMENT_EXTENSIONS};
use crate::batch::{BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::io_error;
use crate::log::Log;
use crate::segment::{self, Segment};
use crate::StorageError;

impl Log {
    /// Swaps `group` in if the segments it replaces are still in the log, unchanged and
    /// inactive; otherwise deletes it and returns `false`. `stop_after` (tests only)
    /// stops after that step, leaving the directory as a kill at that point would (the
    /// `Log` must then be dropped, not used).
    pub(crate) fn swap_in(
        &mut self,
        mut group: CleanedGroup,
        stop_after: Option<u8>,
    ) -> Result<bool, StorageError> {
        let Some(first) = self.find_replaced(&group.replaces)? else {
            tracing::info!(
                dir = %self.dir.display(),
                base_offset = group.base_offset,
                "segments changed during cleaning; abandoning the cleaned segment"
            );
            return Ok(false);
        };
        let stop = |step: u8| stop_after.is_some_and(|last| step >= last);

        // Step 1: the cleaned segment becomes the one recovery rolls forward to, at the
        // moment its `.log` is renamed (the indexes go first).
        const STEP_1_ORDER: [&str; 3] = ["index", "timeindex", "log"];
        for (done, extension) in STEP_1_ORDER.iter().enumerate() {
            let from = group.path(extension, "cleaned");
            let to = group.path(extension, "swap");
            if let Err(error) = fs::rename(&from, &to) {
                for undo in &STEP_1_ORDER[..done] {
                    let _ = fs::rename(group.path(undo, "swap"), group.path(undo, "cleaned"));
                }
                return Err(io_error(&to)(error));
            }
        }
        group.owns_files = false;
        self.dir_dirty = true;
        self.sync_dir()?;
        if stop(1) {
            return Ok(true);
        }

        // Step 2: the replaced segments go.
        let replaced: Vec<Segment> = self
            .segments
            .drain(first..first + group.replaces.len())
            .collect();
        for segment in replaced {
            segment.delete()?;
        }
        self.dir_dirty = true;
        self.sync_dir()?;
        if stop(2) {
            return Ok(true);
        }

        // Step 3: final names.
        for extension in SEGMENT_EXTENSIONS {
            let from = group.path(extension, "swap");
            let to = self
                .dir
                .join(segment::file_name(group.base_offset, extension));
            fs::rename(&from, &to).map_err(io_error(&to))?;
        }
        self.dir_dirty = true;
        self.sync_dir()?;
        if stop(3) {
            return Ok(true);
        }

        // Step 4: the segment list. The segment after the group exists: the group
        // never includes the active segment.
        let next_base = self.segments[first].base_offset();
        let (mut segment, index_missing) = Segment::open(&self.dir, group.base_offset)?;
        if index_missing {
            segment.recover(&self.config)?;
            segment.deactivate();
        } else {
            segment.load_clean(Some(next_base), &self.config)?;
        }
        self.segments.insert(first, segment);
        tracing::debug!(
            dir = %self.dir.display(),
            base_offset = group.base_offset,
            replaced = group.replaces.len(),
            "swapped in cleaned segment"
        );
        Ok(true)
    }

    /// The index of the first of `replaces` in the segment list, if all of them are
    /// there in order, unchanged, and followed by another segment.
    fn find_replaced(&self, replaces: &[SegmentIdentity]) -> Result<Option<usize>, StorageError> {
        let Some(wanted) = replaces.first() else {
            return Ok(None);
        };
        let Some(first) = self
            .segments
            .iter()
            .position(|segment| segment.base_offset() == wanted.base_offset)
        else {
            return Ok(None);
        };
        if first + replaces.len() >= self.segments.len() {
            return Ok(None);
        }
        for (segment, wanted) in self.segments[first..].iter().zip(replaces) {
            if segment.base_offset() != wanted.base_offset
                || SegmentIdentity::of(segment).ok().as_ref() != Some(wanted)
            {
                return Ok(None);
            }
        }
        Ok(Some(first))
    }
}

/// Repairs what an interrupted cleaning left in a log directory (see the module
/// docs). Runs before the segments are listed.
pub(crate) fn finish_interrupted_swaps(dir: &Path) -> Result<(), StorageError> {
    let scratch = dir.join(SCRATCH_DIR);
    if scratch.exists() {
        fs::remove_dir_all(&scratch).map_err(io_error(&scratch))?;
    }
    let mut swapped_logs = Vec::new();
    let mut swapped_indexes = Vec::new();
    let mut changed = false;
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".cleaned") || name.ends_with(".deleted") {
            segment::remove_if_exists(&entry.path())?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(".swap") {
            match parse_segment_file_name(stem) {
                Some((base, "log")) => swapped_logs.push(base),
                Some((base, extension)) => swapped_indexes.push((base, extension.to_string())),
                None => {}
            }
        }
    }
    swapped_logs.sort_unstable();
    for &base in &swapped_logs {
        finish_swap(dir, base)?;
        changed = true;
    }
    for (base, extension) in swapped_indexes {
        if swapped_logs.binary_search(&base).is_err() {
            // Its log already has its final name; the index is rebuilt from it.
            segment::remove_if_exists(&suffixed(dir, base, &extension, "swap"))?;
            changed = true;
        }
    }
    if changed {
        fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(dir))?;
    }
    Ok(())
}

/// Completes the swap of `<base>.log.swap`: deletes the segment files it replaces,
/// then gives the swap files their final names.
fn finish_swap(dir: &Path, base: i64) -> Result<(), StorageError> {
    let swap_log = suffixed(dir, base, "log", "swap");
    let next_offset = next_offset_of(&swap_log, base)?;
    tracing::warn!(dir = %dir.display(), base_offset = base, next_offset, "finishing an interrupted swap of a cleaned segment");
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some((other, extension)) = name.to_str().and_then(parse_segment_file_name) else {
            continue;
        };
        let replaced = other == base || (other > base && other < next_offset);
        if replaced && SEGMENT_EXTENSIONS.contains(&extension) {
            segment::remove_if_exists(&entry.path())?;
        }
    }
    for extension in SEGMENT_EXTENSIONS {
        let from = suffixed(dir, base, extension, "swap");
        if from.exists() {
            let to = dir.join(segment::file_name(base, extension));
            fs::rename(&from, &to).map_err(io_error(&to))?;
        }
    }
    Ok(())
}

/// The offset after the last batch of a segment file (its base offset if it holds
/// none). Stops at the first batch that does not fit the file.
fn next_offset_of(path: &Path, base_offset: i64) -> Result<i64, StorageError> {
    let file = fs::File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    let mut position = 0u64;
    let mut next_offset = base_offset;
    let mut head = [0u8; HEADER_SIZE];
    while position + HEADER_SIZE as u64 <= len {
        file.read_exact_at(&mut head, position)
            .map_err(io_error(path))?;
        let Some(header) = BatchHeader::parse(&head) else {
            break;
        };
        if header.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32
            || position + header.size() as u64 > len
        {
            break;
        }
        next_offset = next_offset.max(header.next_offset());
        position += header.size() as u64;
    }
    Ok(next_offset)
}

/// Splits `00000000000000000042.index` into (42, "index").
fn parse_segment_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, extension) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, extension))
}
