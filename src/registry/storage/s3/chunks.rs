//! What an upload in the bucket holds, and which of its chunks count.
//!
//! Every request writes its body to its own data object,
//! `_uploads/<uuid>/data/<offset>-<token>` (`token`: random, one per
//! request), so no request ever overwrites another's bytes. Only when the
//! body is complete does it write the chunk's marker, an empty object
//! `_uploads/<uuid>/chunks/<offset>-<size>-<token>` (numbers in 20
//! digits): one LIST of the upload then gives every chunk with its size.
//!
//! S3 stores do not all offer conditional writes (Garage 2.5 ignores
//! `If-None-Match`), so two requests may both write a chunk at one offset
//! (a stalled `PATCH` finishing after its retry went through another
//! instance). The rule every instance applies: at each offset the chunk
//! whose marker was written first counts (the store's `last_modified`, then
//! the token), and a request whose chunk does not count answers 416 and
//! deletes it. A marker is written in one short request once its data is
//! complete, so "first written" is "first complete".

use std::time::SystemTime;

use object_store::path::Path;

/// One chunk of an upload, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Chunk {
    pub(super) offset: u64,
    pub(super) size: u64,
    /// The writing request's token (empty for a chunk of the older layout,
    /// `chunks/<offset>` holding the data itself).
    pub(super) token: String,
    /// When its marker was written.
    pub(super) at: SystemTime,
    /// The object holding the bytes.
    pub(super) data: Path,
}

/// A new request's token: 32 random hex digits.
pub(super) fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `dir/name` (`name` may hold `/`).
pub(super) fn under(dir: &Path, name: &str) -> Path {
    Path::from(format!("{dir}/{name}"))
}

/// `data/<offset>-<token>`, below the upload's folder.
pub(super) fn data_name(offset: u64, token: &str) -> String {
    format!("data/{offset:020}-{token}")
}

/// `chunks/<offset>-<size>-<token>`, below the upload's folder.
pub(super) fn marker_name(offset: u64, size: u64, token: &str) -> String {
    format!("chunks/{offset:020}-{size:020}-{token}")
}

/// `writing/<token>`: a request is streaming into this upload (refreshed
/// while it runs, so the purge of abandoned uploads sees it).
pub(super) fn writing_name(token: &str) -> String {
    format!("writing/{token}")
}

/// A chunk from a listed object (`rel`: its key below the upload's
/// folder `dir`), or `None` if it is not a chunk marker.
pub(super) fn parse_chunk(dir: &Path, rel: &str, size: u64, at: SystemTime) -> Option<Chunk> {
    let name = rel.strip_prefix("chunks/")?;
    let mut parts = name.splitn(3, '-');
    let offset = parts.next()?.parse::<u64>().ok()?;
    match (parts.next(), parts.next()) {
        // The older layout: the marker is the data.
        (None, _) => Some(Chunk {
            offset,
            size,
            token: String::new(),
            at,
            data: under(dir, rel),
        }),
        (Some(chunk_size), Some(token)) if !token.is_empty() => {
            let size = chunk_size.parse::<u64>().ok()?;
            Some(Chunk {
                offset,
                size,
                token: token.to_string(),
                at,
                data: under(dir, &data_name(offset, token)),
            })
        }
        _ => None,
    }
}

/// A key below the upload's folder that sorts after every marker at
/// `offset` and before every marker after it (`.` sorts after `-`): a LIST
/// of `chunks/` starting after it sees the markers from `offset + 1` on.
pub(super) fn markers_after(offset: u64) -> String {
    format!("chunks/{offset:020}.")
}

/// The chunk that counts at each offset (first written, then lowest
/// token), chained from offset 0: the upload's content, in order.
pub(super) fn counted(all: Vec<Chunk>) -> Vec<Chunk> {
    counted_from(all, 0)
}

/// [`counted`], chained from `start` (an offset the chain reaches: the
/// chain below it never changes, as the first chunk at an offset always
/// counts).
pub(super) fn counted_from(mut all: Vec<Chunk>, start: u64) -> Vec<Chunk> {
    all.retain(|c| c.size > 0 && c.offset >= start);
    all.sort_by(|x, y| (x.offset, x.at, &x.token).cmp(&(y.offset, y.at, &y.token)));
    let mut end = start;
    let mut out: Vec<Chunk> = Vec::new();
    for c in all {
        // The first of each offset is the one that counts; later ones at
        // the same offset never do.
        if out.last().is_some_and(|l| l.offset == c.offset) {
            continue;
        }
        if c.offset == end {
            end += c.size;
            out.push(c);
        } else if c.offset > end {
            break;
        }
    }
    out
}

/// Whether the chunk written with `token` counts, with no other chunk
/// marked at the same offset at the same time. On such a tie the writer
/// gives way (answers 416), whatever the token: the store's clock may be
/// coarse (AWS S3 lists whole seconds), and the other writer may already
/// have been told its chunk was taken. Two tied writers may both give way;
/// both clients then resend, and nothing wrong is kept.
pub(super) fn taken_alone(counted: &[Chunk], all: &[Chunk], token: &str) -> bool {
    let Some(mine) = counted.iter().find(|c| c.token == token) else {
        return false;
    };
    !all.iter()
        .any(|c| c.token != token && c.offset == mine.offset && c.at == mine.at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn chunk(offset: u64, size: u64, token: &str, secs: u64) -> Chunk {
        Chunk {
            offset,
            size,
            token: token.into(),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            data: Path::from(format!("d/{offset}-{token}")),
        }
    }

    #[test]
    fn the_first_written_chunk_of_an_offset_counts_and_the_chain_starts_at_zero() {
        let a = chunk(0, 10, "b", 1);
        let late = chunk(0, 3, "a", 2);
        let next = chunk(10, 5, "c", 3);
        let off_chain = chunk(3, 7, "d", 0);
        let gap = chunk(30, 1, "e", 0);
        let got = counted(vec![next.clone(), late, a.clone(), off_chain, gap]);
        assert_eq!(got, vec![a.clone(), next]);
        // Same time: the lower token.
        let twin = chunk(0, 4, "a", 1);
        assert_eq!(counted(vec![a, twin.clone()]), vec![twin]);
        assert!(counted(vec![chunk(0, 0, "x", 0)]).is_empty());
    }

    #[test]
    fn a_writer_tied_in_time_with_another_gives_way() {
        let (a, b, late) = (
            chunk(0, 4, "a", 1),
            chunk(0, 4, "b", 1),
            chunk(0, 4, "c", 2),
        );
        let all = vec![a.clone(), b.clone(), late.clone()];
        let counted = counted(all.clone());
        assert!(!taken_alone(&counted, &all, "a"), "tied");
        assert!(!taken_alone(&counted, &all, "b"), "not counted");
        assert!(!taken_alone(&counted, &all, "c"), "not counted");
        let all = vec![a.clone(), late];
        assert!(taken_alone(&super::counted(all.clone()), &all, "a"));
    }

    #[test]
    fn a_chain_from_an_offset_and_the_listing_start_key() {
        let (a, b, c) = (
            chunk(0, 10, "a", 1),
            chunk(10, 5, "b", 2),
            chunk(15, 1, "c", 3),
        );
        let all = vec![a, b.clone(), c.clone()];
        assert_eq!(counted_from(all.clone(), 10), vec![b, c.clone()]);
        assert_eq!(counted_from(all, 15), vec![c]);
        let after = markers_after(9);
        assert!(after.as_str() > marker_name(9, 1, "zz").as_str());
        assert!(after.as_str() > "chunks/00000000000000000009");
        assert!(after.as_str() < "chunks/00000000000000000010");
        assert!(after.as_str() < marker_name(10, 1, "00").as_str());
    }

    #[test]
    fn names_parse_back() {
        let dir = Path::from("r/_uploads/u");
        let at = SystemTime::UNIX_EPOCH;
        let c = parse_chunk(&dir, &marker_name(42, 7, "ab12"), 0, at).unwrap();
        assert_eq!((c.offset, c.size, c.token.as_str()), (42, 7, "ab12"));
        assert_eq!(
            c.data.as_ref(),
            format!("r/_uploads/u/{}", data_name(42, "ab12"))
        );
        let old = parse_chunk(&dir, "chunks/00000000000000000005", 9, at).unwrap();
        assert_eq!((old.offset, old.size), (5, 9));
        assert_eq!(
            old.data.as_ref(),
            "r/_uploads/u/chunks/00000000000000000005"
        );
        assert_eq!(parse_chunk(&dir, "startedat", 1, at), None);
        assert_eq!(parse_chunk(&dir, "chunks/x-1-t", 1, at), None);
        assert_eq!(parse_chunk(&dir, &writing_name("t"), 1, at), None);
    }
}
