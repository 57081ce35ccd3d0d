//! The table's invariants, checked by the tests and the models after every step.

use super::file::overlaps;
use super::{Kind, LockTable};

impl LockTable {
    /// Check the invariants the module promises; a description of the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut queued = 0;
        for (ino, f) in &self.files {
            for (i, a) in f.held.iter().enumerate() {
                if a.end < a.start {
                    return Err(format!("file {ino}: backwards range {a:?}"));
                }
                for b in &f.held[i + 1..] {
                    let touch = overlaps(a.start, a.end, b.start, b.end);
                    if a.owner != b.owner
                        && touch
                        && (a.kind == Kind::Write || b.kind == Kind::Write)
                    {
                        return Err(format!("file {ino}: {a:?} and {b:?} conflict"));
                    }
                    let adjacent = a.end.checked_add(1) == Some(b.start)
                        || b.end.checked_add(1) == Some(a.start);
                    if a.owner == b.owner && (touch || (adjacent && a.kind == b.kind)) {
                        return Err(format!("file {ino}: {a:?} and {b:?} not merged"));
                    }
                }
            }
            for w in &f.queue {
                queued += 1;
                if self.waiting.get(&(w.req.owner.session, w.wait)) != Some(ino) {
                    return Err(format!("file {ino}: wait {} not indexed", w.wait));
                }
            }
        }
        if queued != self.waiting.len() {
            return Err(format!(
                "{} waits indexed, {queued} queued",
                self.waiting.len()
            ));
        }
        Ok(())
    }
}
