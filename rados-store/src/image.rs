//! A RADOS image's header object (`NAME.header`: format, size, object size) and making one.
//! `create` turns the header into a marker of an unfinished mkfs first and writes the header
//! last, after the old image's objects are gone.

use crate::cluster::Pool;
use crate::name::ImageName;
use crate::RadosError;

/// 4 MiB objects, as RBD's default.
pub const DEFAULT_OBJECT_SIZE: u64 = 4 << 20;

const MAGIC: &str = "rwxfs-rados-image";
const FORMAT: u32 = 1;
/// The first word of a header object whose image is being made.
const UNFINISHED: &str = "rwxfs-rados-image-unfinished";

/// What the header object records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The image's size in bytes.
    pub size: u64,
    /// The size of each object the image is striped over.
    pub object_size: u64,
}

impl Header {
    /// The header's bytes: a few lines of text, readable with `rados get`.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{MAGIC} {FORMAT}\nsize {}\nobject_size {}\n",
            self.size, self.object_size
        )
        .into_bytes()
    }

    /// A header from its bytes; what is wrong with them otherwise.
    pub fn decode(bytes: &[u8]) -> Result<Header, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not text".to_string())?;
        let mut lines = text.lines();
        match lines.next().and_then(|l| l.split_once(' ')) {
            Some((MAGIC, v)) if v == FORMAT.to_string() => {}
            Some((MAGIC, v)) => return Err(format!("format {v}, this rwxfs reads {FORMAT}")),
            _ => return Err(format!("no {MAGIC} line")),
        }
        let (mut size, mut object_size) = (None, None);
        for line in lines {
            let (k, v) = line
                .split_once(' ')
                .ok_or_else(|| format!("line {line:?}"))?;
            let v: u64 = v
                .parse()
                .map_err(|_| format!("{k}: {v:?} is not a number"))?;
            match k {
                "size" => size = Some(v),
                "object_size" => object_size = Some(v),
                _ => {}
            }
        }
        let h = Header {
            size: size.ok_or("no size")?,
            object_size: object_size.ok_or("no object_size")?,
        };
        if !h.object_size.is_power_of_two() || h.object_size < 4096 {
            return Err(format!(
                "object size {} is not a power of two >= 4096",
                h.object_size
            ));
        }
        Ok(h)
    }

    /// How many data objects the image may have.
    pub fn objects(&self) -> u64 {
        self.size.div_ceil(self.object_size)
    }
}

/// What a header object holds.
enum Found {
    /// No header object (or an empty one).
    Nothing,
    /// An image's header.
    Image(Header),
    /// A mkfs that began and did not finish, and how many data objects may be left.
    Unfinished(u64),
}

/// The header object's content.
fn read_found(pool: &Pool, name: &ImageName) -> Result<Found, RadosError> {
    let mut buf = vec![0u8; 4096];
    let n = pool
        .read(&name.header_object(), &mut buf, 0)
        .map_err(|e| RadosError::Io(name.to_string(), e))?;
    let bytes = &buf[..n];
    if n == 0 {
        return Ok(Found::Nothing);
    }
    if let Some(rest) = bytes.strip_prefix(UNFINISHED.as_bytes()) {
        return decode_unfinished(rest)
            .map(Found::Unfinished)
            .ok_or_else(|| {
                RadosError::BadHeader(name.clone(), "an unreadable mkfs marker".into())
            });
    }
    Header::decode(bytes)
        .map(Found::Image)
        .map_err(|e| RadosError::BadHeader(name.clone(), e))
}

/// The count of objects after the marker's first word: ` 1\nobjects N\n`.
fn decode_unfinished(rest: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(rest).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("objects "))?;
    line.trim().parse().ok()
}

/// The image's header, `None` if there is no header object; an error for a mkfs that did
/// not finish.
pub(crate) fn read_header(pool: &Pool, name: &ImageName) -> Result<Option<Header>, RadosError> {
    match read_found(pool, name)? {
        Found::Nothing => Ok(None),
        Found::Image(h) => Ok(Some(h)),
        Found::Unfinished(_) => Err(RadosError::Unfinished(name.clone())),
    }
}

/// Make `name` an empty image of `size` bytes. First the header object becomes a marker of
/// an unfinished mkfs that says how many data objects may be left of what was there, then
/// every one of them is removed, then the header is written: a mkfs interrupted anywhere
/// leaves the marker, which no server opens and the next mkfs reads to finish the clearing,
/// so no object of the old image outlives it, in the new image's range or past it.
pub fn create(pool: &Pool, name: &ImageName, header: Header) -> Result<(), RadosError> {
    create_while(pool, name, header, &|| Ok(()))
}

/// `create`, stopping with its error as soon as `held` fails, which is asked before the
/// marker is written, between batches of removals, and before the header is written: a
/// tool's hold on the volume (`Hold::ensure`) that may have lapsed.
pub fn create_while(
    pool: &Pool,
    name: &ImageName,
    header: Header,
    held: &dyn Fn() -> std::io::Result<()>,
) -> Result<(), RadosError> {
    let io = |e| RadosError::Io(name.to_string(), e);
    let there = match read_found(pool, name) {
        Ok(Found::Nothing) => 0,
        Ok(Found::Image(old)) => old.objects(),
        Ok(Found::Unfinished(n)) => n,
        // An unreadable header still marks objects of that name: remove up to the new size.
        Err(RadosError::BadHeader(..)) => 0,
        Err(e) => return Err(e),
    };
    // Up to the new size whatever was there: objects left by a header removed by hand read
    // as zeros no more than an old image's do.
    let clear = there.max(header.objects());
    let marker = format!("{UNFINISHED} {FORMAT}\nobjects {clear}\n");
    held().map_err(io)?;
    pool.write_full(&name.header_object(), marker.as_bytes())
        .map_err(io)?;
    let mut pending = std::collections::VecDeque::new();
    for i in 0..clear {
        pending.push_back(pool.aio_remove(&name.data_object(i)).map_err(io)?);
        if pending.len() >= 256 {
            finish_remove(pending.pop_front()).map_err(io)?;
            if i % 256 == 0 {
                held().map_err(io)?;
            }
        }
    }
    while let Some(p) = pending.pop_front() {
        finish_remove(Some(p)).map_err(io)?;
    }
    held().map_err(io)?;
    pool.write_full(&name.header_object(), &header.encode())
        .map_err(io)
}

fn finish_remove(p: Option<crate::Pending>) -> std::io::Result<()> {
    match p.map(|p| p.wait()) {
        Some(Err(e)) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_refusals() {
        let h = Header {
            size: 100 << 30,
            object_size: DEFAULT_OBJECT_SIZE,
        };
        assert_eq!(
            String::from_utf8(h.encode()).unwrap(),
            "rwxfs-rados-image 1\nsize 107374182400\nobject_size 4194304\n"
        );
        assert_eq!(Header::decode(&h.encode()), Ok(h));
        assert_eq!(h.objects(), 25600);
        assert!(
            Header::decode(b"rwxfs-rados-image 2\nsize 1\nobject_size 4096\n")
                .unwrap_err()
                .contains("format 2")
        );
        assert!(Header::decode(b"hello").is_err());
        assert!(Header::decode(b"rwxfs-rados-image 1\nsize 1\nobject_size 5000\n").is_err());
        assert!(Header::decode(b"rwxfs-rados-image 1\nobject_size 4096\n").is_err());
    }

    #[test]
    fn the_unfinished_marker_names_the_objects_left() {
        assert_eq!(decode_unfinished(b" 1\nobjects 25600\n"), Some(25600));
        assert_eq!(decode_unfinished(b" 1\n"), None);
        assert_eq!(decode_unfinished(b" 1\nobjects many\n"), None);
        // The marker is not a header, whatever reads it.
        assert!(Header::decode(b"rwxfs-rados-image-unfinished 1\nobjects 3\n").is_err());
    }
}
