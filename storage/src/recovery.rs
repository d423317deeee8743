//! Opening a partition directory: finding segments, trusting or rebuilding their
//! indexes, and recovering from a crash.
//!
//! * Clean shutdown: nothing is scanned except the batches of the last segment after
//!   its last offset index entry (to learn the log end offset). The last segment's
//!   index files are sanity-checked at open, older ones' on first use, and missing or
//!   inconsistent ones rebuilt.
//! * Unclean shutdown: every segment holding offsets at or above the recovery point
//!   (and always the last one) is scanned batch by batch — lengths, magic, CRC32C —
//!   with its indexes rebuilt. In the segment holding the recovery point, the index
//!   entries below it were fsynced with the data and are kept after a sanity check,
//!   so the scan starts at the last of them: only the unflushed tail is read. The
//!   log is truncated at the first torn or corrupt batch (with a warning naming the
//!   segment, position and reason) and any later segment deleted. The result is then
//!   fsynced, so the recovery point can move to the log end offset.
//! * Older segments are not opened at all: their files are opened (and their
//!   indexes mapped and checked) on first use, through the file cache.

use std::fs;
use std::path::Path;

use crate::error::io_error;
use crate::leader_epoch::LeaderEpochCache;
use crate::log::Log;
use crate::segment::{self, Segment};
use crate::{LogConfig, StorageError};

impl Log {
    /// Opens (creating if needed) the log in `dir`. `recovery_point` is the offset
    /// below which data was known to be fsynced (from the broker's checkpoint);
    /// `clean_shutdown` says whether the broker found its clean-shutdown marker.
    /// `now_ms` starts the `segment.ms` clock of a non-empty active segment (the
    /// original first-append time is not stored on disk).
    pub fn open(
        dir: &Path,
        config: LogConfig,
        recovery_point: i64,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<Log, StorageError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        // A cleaning interrupted by a crash: finish or undo it before listing segments.
        crate::cleaner::finish_interrupted_swaps(dir)?;
        let bases = find_segments(dir)?;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        // Segments holding scanned offsets at or above the recovery point: bytes the
        // recovery read may still sit only in the page cache. (Rebuilt index files
        // are fsynced when written; data below the recovery point already was.)
        let mut rebuilt = Vec::with_capacity(bases.len().max(1));
        let mut dir_dirty = false;
        if bases.is_empty() {
            segments.push(Segment::create(dir, 0, &config)?);
            dir_dirty = true;
        } else {
            // Unclean: scan from the segment holding the recovery point.
            let first_to_scan = if clean_shutdown {
                bases.len()
            } else {
                bases
                    .partition_point(|&base| base <= recovery_point)
                    .saturating_sub(1)
            };
            for (i, &base) in bases.iter().enumerate() {
                let (mut segment, index_missing) = Segment::open(dir, base)?;
                let scan = i >= first_to_scan || index_missing;
                let truncated = if scan {
                    if index_missing && i < first_to_scan {
                        tracing::warn!(segment = %segment.log_path().display(), "index file missing; rebuilding");
                    }
                    if i == first_to_scan && !index_missing {
                        segment.recover_from(recovery_point, &config)?
                    } else {
                        segment.recover(&config)?
                    }
                } else {
                    segment.load_clean(bases.get(i + 1).copied(), &config)?
                };
                rebuilt.push(scan && segment.next_offset() > recovery_point);
                segments.push(segment);
                if truncated {
                    for &later in &bases[i + 1..] {
                        tracing::warn!(dir = %dir.display(), base_offset = later, "deleting segment after a truncated one");
                        for extension in ["log", "index", "timeindex"] {
                            segment::remove_if_exists(
                                &dir.join(segment::file_name(later, extension)),
                            )?;
                        }
                        dir_dirty = true;
                    }
                    break;
                }
            }
        }
        // Make recovered bytes durable before the recovery point claims them.
        for (segment, rebuilt) in segments.iter().zip(&rebuilt) {
            if *rebuilt {
                segment.flush()?;
                dir_dirty = true;
            }
        }
        let last = segments.len() - 1;
        for segment in &mut segments[..last] {
            segment.deactivate();
        }
        let active = &mut segments[last];
        active.activate(&config)?;
        if active.size() > 0 {
            active.first_append_ms = Some(now_ms);
        }
        let log_start_offset = segments[0].base_offset();
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            recovery_point,
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            dir_dirty,
            epochs: LeaderEpochCache::empty(dir),
        };
        match LeaderEpochCache::read(dir)? {
            Some(epochs) => {
                log.epochs = epochs;
                // Entries past a log cut short by the crash go.
                log.trim_epochs()?;
            }
            // A log of a release before the checkpoint: rebuilt from its
            // batches once.
            None => {
                let mut epochs = LeaderEpochCache::empty(dir);
                log.for_each_batch_header(|header| {
                    epochs.assign(header.partition_leader_epoch, header.base_offset);
                })?;
                if !epochs.entries().is_empty() {
                    epochs.write()?;
                }
                log.epochs = epochs;
            }
        }
        log.sync_dir()?;
        log.recovery_point = log.log_end_offset();
        Ok(log)
    }
}

/// Base offsets of the `.log` files in `dir`, sorted. Index files without a log file
/// are leftovers (e.g. of a deletion cut short) and are removed.
fn find_segments(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    let mut orphans = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, extension)) = name.split_once('.') else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        match extension {
            "log" => bases.push(base),
            "index" | "timeindex" => orphans.push((base, entry.path())),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in orphans {
        if bases.binary_search(&base).is_err() {
            tracing::warn!(path = %path.display(), "removing index file without a log file");
            segment::remove_if_exists(&path)?;
        }
    }
    Ok(bases)
}
