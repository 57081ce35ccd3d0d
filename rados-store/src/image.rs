//! A RADOS image's header object (`NAME.header`: format, size, object size) and making one.
//! The header is written last by `create`, after the old image's objects are gone.

use crate::cluster::Pool;
use crate::name::ImageName;
use crate::RadosError;

/// 4 MiB objects, as RBD's default.
pub const DEFAULT_OBJECT_SIZE: u64 = 4 << 20;

const MAGIC: &str = "rwxfs-rados-image";
const FORMAT: u32 = 1;

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

/// The image's header, `None` if there is no header object.
pub(crate) fn read_header(pool: &Pool, name: &ImageName) -> Result<Option<Header>, RadosError> {
    let mut buf = vec![0u8; 4096];
    let n = pool
        .read(&name.header_object(), &mut buf, 0)
        .map_err(|e| RadosError::Io(name.to_string(), e))?;
    if n == 0 {
        return Ok(None);
    }
    Header::decode(&buf[..n])
        .map(Some)
        .map_err(|e| RadosError::BadHeader(name.clone(), e))
}

/// Make `name` an empty image of `size` bytes: every data object of an image that was there
/// before is removed first (so nothing of it reads back), then the header is written.
pub fn create(pool: &Pool, name: &ImageName, header: Header) -> Result<(), RadosError> {
    let io = |e| RadosError::Io(name.to_string(), e);
    let old = match read_header(pool, name) {
        Ok(h) => h,
        // An unreadable header still marks objects of that name: remove up to the new size.
        Err(RadosError::BadHeader(..)) => Some(header),
        Err(e) => return Err(e),
    };
    if let Some(old) = old {
        pool.remove(&name.header_object()).map_err(io)?;
        let mut pending = std::collections::VecDeque::new();
        for i in 0..old.objects().max(header.objects()) {
            pending.push_back(pool.aio_remove(&name.data_object(i)).map_err(io)?);
            if pending.len() >= 256 {
                finish_remove(pending.pop_front()).map_err(io)?;
            }
        }
        while let Some(p) = pending.pop_front() {
            finish_remove(Some(p)).map_err(io)?;
        }
    }
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
}
