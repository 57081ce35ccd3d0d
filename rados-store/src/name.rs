//! `rados://POOL/NAME`: which names are RADOS images, and their parts.

use std::fmt;

use crate::RadosError;

/// The scheme that marks an image name as a RADOS one.
pub const SCHEME: &str = "rados://";

/// A RADOS image's name: the pool it lives in and the prefix of its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// The pool the image lives in.
    pub pool: String,
    /// The image's name: its objects' prefix.
    pub name: String,
}

impl ImageName {
    /// `Ok(None)` for a name that is not a RADOS one (a local path); an error for a
    /// `rados://` name that is malformed.
    pub fn parse(s: &str) -> Result<Option<ImageName>, RadosError> {
        let Some(rest) = s.strip_prefix(SCHEME) else {
            return Ok(None);
        };
        let bad = || RadosError::BadName(s.to_string());
        let (pool, name) = rest.split_once('/').ok_or_else(bad)?;
        let ok = |p: &str| !p.is_empty() && !p.contains(['/', '\0']) && p.is_ascii();
        if !ok(pool) || !ok(name) || name.len() > 200 {
            return Err(bad());
        }
        Ok(Some(ImageName {
            pool: pool.to_string(),
            name: name.to_string(),
        }))
    }

    /// The object holding the image's size, object size and format.
    pub fn header_object(&self) -> String {
        format!("{}.header", self.name)
    }

    /// The `index`th data object: bytes `index * object_size ..` of the image.
    pub fn data_object(&self, index: u64) -> String {
        format!("{}.{index:016x}", self.name)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.pool, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = ImageName::parse("rados://rbd/vol1").unwrap().unwrap();
        assert_eq!((n.pool.as_str(), n.name.as_str()), ("rbd", "vol1"));
        assert_eq!(n.to_string(), "rados://rbd/vol1");
        assert_eq!(n.data_object(0x2a), "vol1.000000000000002a");
        assert_eq!(n.header_object(), "vol1.header");
        assert_eq!(ImageName::parse("/tmp/vol.img").unwrap(), None);
        assert_eq!(ImageName::parse("rados:/x/y").unwrap(), None);
        for bad in [
            "rados://",
            "rados://pool",
            "rados://pool/",
            "rados:///name",
            "rados://a/b/c",
        ] {
            let e = ImageName::parse(bad).unwrap_err();
            assert!(e.to_string().contains("rados://POOL/NAME"), "{bad}: {e}");
        }
    }
}
