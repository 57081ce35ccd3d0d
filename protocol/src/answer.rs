//! What a successful call's `Response` carries, as a type: a caller that knows which answer
//! a request gets takes it as that type (`Answer::take`), so the unpacking of each kind of
//! response is written once, beside the `Response` enum, for every placement's client.

use crate::messages::Response;
use crate::wire::{Attr, DirEntry, Layout, LockKind, LockRange, StatFs};

/// A type a `Response` (with its bulk bytes) can be taken as.
pub trait Answer: Sized {
    /// The answer `resp` carries, or `None` if it is another kind of response.
    fn take(resp: Response, bulk: Vec<u8>) -> Option<Self>;
}

/// F_GETLK's answer: the lock in the way, or kind unlock over the range asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockState {
    /// The bytes it covers.
    pub range: LockRange,
    /// Its kind; unlock if nothing is in the way.
    pub kind: LockKind,
    /// The process holding it, as its client said.
    pub pid: u32,
}

impl Answer for () {
    fn take(_: Response, _: Vec<u8>) -> Option<()> {
        // Whatever a call that answers nothing in particular got, it succeeded.
        Some(())
    }
}

impl Answer for Attr {
    fn take(resp: Response, _: Vec<u8>) -> Option<Attr> {
        match resp {
            Response::Attr(a) => Some(a),
            _ => None,
        }
    }
}

impl Answer for Vec<DirEntry> {
    fn take(resp: Response, _: Vec<u8>) -> Option<Self> {
        match resp {
            Response::Entries(es) => Some(es),
            _ => None,
        }
    }
}

impl Answer for Vec<(DirEntry, Attr)> {
    fn take(resp: Response, _: Vec<u8>) -> Option<Self> {
        match resp {
            Response::EntriesPlus(es) => Some(es),
            _ => None,
        }
    }
}

/// Bytes: read data (after the header) or a value (a link's target, an extended attribute).
impl Answer for Vec<u8> {
    fn take(resp: Response, bulk: Vec<u8>) -> Option<Vec<u8>> {
        match resp {
            Response::Data => Some(bulk),
            Response::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Bytes written.
impl Answer for u32 {
    fn take(resp: Response, _: Vec<u8>) -> Option<u32> {
        match resp {
            Response::Written(n) => Some(n),
            _ => None,
        }
    }
}

/// A position in a file.
impl Answer for u64 {
    fn take(resp: Response, _: Vec<u8>) -> Option<u64> {
        match resp {
            Response::Offset(o) => Some(o),
            _ => None,
        }
    }
}

impl Answer for Vec<Vec<u8>> {
    fn take(resp: Response, _: Vec<u8>) -> Option<Self> {
        match resp {
            Response::Names(names) => Some(names),
            _ => None,
        }
    }
}

impl Answer for StatFs {
    fn take(resp: Response, _: Vec<u8>) -> Option<StatFs> {
        match resp {
            Response::StatFs(s) => Some(s),
            _ => None,
        }
    }
}

impl Answer for LockState {
    fn take(resp: Response, _: Vec<u8>) -> Option<LockState> {
        match resp {
            Response::Lock { range, kind, pid } => Some(LockState { range, kind, pid }),
            _ => None,
        }
    }
}

impl Answer for Layout {
    fn take(resp: Response, _: Vec<u8>) -> Option<Layout> {
        match resp {
            Response::Layout(l) => Some(l),
            _ => None,
        }
    }
}

/// Where the volume lives (`Request::VolumeLocation`).
impl Answer for crate::VolumeAt {
    fn take(resp: Response, _: Vec<u8>) -> Option<crate::VolumeAt> {
        match resp {
            Response::Location(l) => Some(l),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_taken_only_from_its_own_kind_of_response() {
        let data = <Vec<u8>>::take(Response::Data, b"read".to_vec());
        assert_eq!(data.as_deref(), Some(&b"read"[..]));
        let value = <Vec<u8>>::take(Response::Bytes(b"v".to_vec()), Vec::new());
        assert_eq!(value.as_deref(), Some(&b"v"[..]));
        assert_eq!(u32::take(Response::Written(7), Vec::new()), Some(7));
        assert_eq!(u32::take(Response::Empty, Vec::new()), None);
        assert!(Attr::take(Response::Written(7), Vec::new()).is_none());
        assert!(<Vec<DirEntry>>::take(Response::EntriesPlus(Vec::new()), Vec::new()).is_none());
    }
}
