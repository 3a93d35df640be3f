//! Segment files for compacted batches (docs/adr/0008): sled keeps only a
//! small pointer for each merged batch; its frame is appended to the
//! current segment file `cold/<id>.seg`, fsynced before the pointer is
//! committed. A segment file is deleted as soon as no pointer refers to it,
//! so the space of delivered or dropped backlog is given back at once and
//! whole (sled rewrote merged values inside its own log and kept 5–10× the
//! logical bytes on disk).
//!
//! A record is `[len u32 LE][crc32 u32 LE][frame]`; the pointer repeats the
//! offset, length and CRC, and a read checks all three, so a torn or
//! overwritten record is reported as corrupt, never returned.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Marks a stored frame that is a pointer (a wire frame starts with `DCMB`).
pub const MAGIC: [u8; 4] = *b"DCX1";
/// A new segment is started past this size.
pub const SEGMENT_MAX: u64 = 64 << 20;
const RECORD_HEADER: u64 = 8;

/// Where a frame lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ptr {
    pub segment: u64,
    /// Offset of the frame (after the record header).
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
}

impl Ptr {
    pub const ENCODED_LEN: usize = 28;

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0u8; Self::ENCODED_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..12].copy_from_slice(&self.segment.to_le_bytes());
        b[12..20].copy_from_slice(&self.offset.to_le_bytes());
        b[20..24].copy_from_slice(&self.len.to_le_bytes());
        b[24..28].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    /// `Some` when `frame` is a pointer.
    pub fn parse(frame: &[u8]) -> Option<Ptr> {
        if frame.len() != Self::ENCODED_LEN || frame.get(0..4)? != MAGIC {
            return None;
        }
        Some(Ptr {
            segment: u64::from_le_bytes(frame.get(4..12)?.try_into().ok()?),
            offset: u64::from_le_bytes(frame.get(12..20)?.try_into().ok()?),
            len: u32::from_le_bytes(frame.get(20..24)?.try_into().ok()?),
            crc: u32::from_le_bytes(frame.get(24..28)?.try_into().ok()?),
        })
    }
}

/// The segment files and how many pointers refer to each.
#[derive(Debug)]
pub struct Cold {
    dir: PathBuf,
    current: Option<(u64, File, u64)>,
    next_id: u64,
    refs: BTreeMap<u64, u64>,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.seg"))
}

/// Deletes a segment file; a failure is logged (the file costs space, not
/// data; the next start tries again).
fn remove(dir: &Path, id: u64) {
    let path = seg_path(dir, id);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete a delivered segment file")
        }
    }
}

fn ids(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse().ok())
        {
            out.push(id);
        }
    }
    Ok(out)
}

impl Cold {
    /// Opens `dir` (creating it). Call [`Cold::note_ref`] for every pointer
    /// found, then [`Cold::remove_unreferenced`].
    pub fn open(dir: &Path) -> std::io::Result<Cold> {
        std::fs::create_dir_all(dir)?;
        let next_id = ids(dir)?.into_iter().max().map_or(1, |m| m + 1);
        Ok(Cold {
            dir: dir.to_path_buf(),
            current: None,
            next_id,
            refs: BTreeMap::new(),
        })
    }

    pub fn note_ref(&mut self, p: &Ptr) {
        *self.refs.entry(p.segment).or_default() += 1;
    }

    /// Deletes segment files no pointer refers to (records appended before
    /// a crash and never committed, or segments fully delivered). A file
    /// that cannot be deleted is logged and left: it costs space, not data.
    pub fn remove_unreferenced(&mut self) -> std::io::Result<()> {
        let current = self.current.as_ref().map(|c| c.0);
        for id in ids(&self.dir)? {
            if !self.refs.contains_key(&id) && Some(id) != current {
                remove(&self.dir, id);
            }
        }
        Ok(())
    }

    /// Appends `frame` to the current segment and makes it durable.
    pub fn append(&mut self, frame: &[u8]) -> std::io::Result<Ptr> {
        let len = u32::try_from(frame.len())
            .map_err(|_| std::io::Error::other("frame larger than 4 GiB"))?;
        let need = RECORD_HEADER + u64::from(len);
        let roll = self
            .current
            .as_ref()
            .is_none_or(|(_, _, size)| *size > 0 && size + need > SEGMENT_MAX);
        if roll {
            let old = self.current.take().map(|c| c.0);
            let id = self.next_id;
            self.next_id += 1;
            let f = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(seg_path(&self.dir, id))?;
            // The new file's directory entry must survive a power cut.
            File::open(&self.dir)?.sync_all()?;
            self.current = Some((id, f, 0));
            // A finished segment nobody points to any more can go now.
            if let Some(old) = old
                && !self.refs.contains_key(&old)
            {
                remove(&self.dir, old);
            }
        }
        let Some((id, f, size)) = self.current.as_mut() else {
            return Err(std::io::Error::other("no current segment"));
        };
        let crc = crc32fast::hash(frame);
        let mut rec = Vec::with_capacity(need as usize);
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&crc.to_le_bytes());
        rec.extend_from_slice(frame);
        f.write_all(&rec)?;
        f.sync_data()?;
        let p = Ptr {
            segment: *id,
            offset: *size + RECORD_HEADER,
            len,
            crc,
        };
        *size += need;
        *self.refs.entry(p.segment).or_default() += 1;
        Ok(p)
    }

    /// The frame `p` points to, or `None` when it cannot be read whole or
    /// its length or CRC does not match.
    pub fn read(&self, p: &Ptr) -> Option<Vec<u8>> {
        let mut f = File::open(seg_path(&self.dir, p.segment)).ok()?;
        f.seek(SeekFrom::Start(p.offset.checked_sub(RECORD_HEADER)?))
            .ok()?;
        let mut head = [0u8; RECORD_HEADER as usize];
        f.read_exact(&mut head).ok()?;
        let len = u32::from_le_bytes(head[0..4].try_into().ok()?);
        let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
        if len != p.len || crc != p.crc || u64::from(len) > SEGMENT_MAX {
            return None;
        }
        let mut frame = vec![0u8; len as usize];
        f.read_exact(&mut frame).ok()?;
        (crc32fast::hash(&frame) == crc).then_some(frame)
    }

    /// One pointer to `p`'s segment is gone; a finished segment with none
    /// left is deleted.
    pub fn release(&mut self, p: &Ptr) -> std::io::Result<()> {
        if let Some(n) = self.refs.get_mut(&p.segment) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.refs.remove(&p.segment);
                if self.current.as_ref().map(|c| c.0) != Some(p.segment) {
                    remove(&self.dir, p.segment);
                }
            }
        }
        Ok(())
    }

    /// Bytes of the segment files.
    pub fn bytes_on_disk(&self) -> u64 {
        ids(&self.dir).map_or(0, |ids| {
            ids.into_iter()
                .filter_map(|id| std::fs::metadata(seg_path(&self.dir, id)).ok())
                .map(|m| m.len())
                .sum()
        })
    }

    /// Test hook: flips the bytes of the frame `p` points to.
    #[doc(hidden)]
    pub fn corrupt_for_test(&self, p: &Ptr) -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(seg_path(&self.dir, p.segment))?;
        f.seek(SeekFrom::Start(p.offset))?;
        let mut b = vec![0u8; p.len as usize];
        f.read_exact(&mut b)?;
        for x in &mut b {
            *x ^= 0x5a;
        }
        f.seek(SeekFrom::Start(p.offset))?;
        f.write_all(&b)?;
        f.sync_data()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_segments_go_when_unreferenced() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cold::open(dir.path()).unwrap();
        let a = c.append(b"first frame").unwrap();
        let b = c.append(b"second").unwrap();
        assert_eq!(c.read(&a).unwrap(), b"first frame");
        assert_eq!(c.read(&b).unwrap(), b"second");
        assert_eq!(Ptr::parse(&a.encode()), Some(a));
        assert_eq!(Ptr::parse(b"DCMB0000"), None);
        // The current segment stays while it is written to.
        c.release(&a).unwrap();
        c.release(&b).unwrap();
        assert_eq!(ids(dir.path()).unwrap().len(), 1);
        // Reopened: nothing refers to it, so it goes.
        drop(c);
        let mut c = Cold::open(dir.path()).unwrap();
        c.remove_unreferenced().unwrap();
        assert!(ids(dir.path()).unwrap().is_empty());
        let p = c.append(b"x").unwrap();
        assert!(p.segment >= 2, "ids are never reused");
    }

    #[test]
    fn damaged_records_are_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cold::open(dir.path()).unwrap();
        let a = c.append(b"precious data").unwrap();
        c.corrupt_for_test(&a).unwrap();
        assert_eq!(c.read(&a), None);
        let b = c.append(b"more").unwrap();
        let wrong = Ptr { len: 3, ..b };
        assert_eq!(c.read(&wrong), None);
        let gone = Ptr { segment: 999, ..b };
        assert_eq!(c.read(&gone), None);
    }
}
