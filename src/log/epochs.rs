//! Lamport epochs (`_sync_epochs`): one per import, `(local_seq, lamport)`, from which each
//! local op's Lamport time is derived (local.rs).
//!
//! Invariant: `Epochs` answers as `_sync_epochs` says, but reads only the epochs from the one
//! in force at the oldest op it was asked about, read again further back when asked about an
//! older op (while there are few, all of them at once): an import reads the few it
//! needs, not one row per import ever made. A failed read is kept, answers as if there were no
//! epoch, and is returned by `check`, which every writer calls before its work commits.

use std::cell::{Cell, RefCell};

use crate::db::{Conn, Error, Result};
use crate::value::Value;

/// The epochs read: every one with `local_seq >= from` (or, with `from` None, every one: none
/// is below the op first asked about), up to `to` when more were left unread.
struct Read {
    from: Option<u64>,
    to: Option<u64>,
    list: Vec<(u64, u64)>,
}

impl Read {
    /// Whether the epoch in force at op `seq` is known from what was read.
    fn covers(&self, seq: u64) -> bool {
        self.from.is_none_or(|from| from < seq) && self.to.is_none_or(|to| seq <= to + 1)
    }
}

/// Epochs read at once (more are read when asked about an op beyond them).
const WINDOW: usize = 1024;

pub struct Epochs<'c> {
    conn: &'c Conn,
    read: RefCell<Option<Read>>,
    /// Whether a read of every epoch was tried, and how many it reads (contexts.rs
    /// `whole_limit`)
    tried: Cell<bool>,
    whole_limit: usize,
    failed: RefCell<Option<Error>>,
}

impl<'c> Epochs<'c> {
    /// Epochs read from `conn` as they are asked for (nothing is read yet).
    pub fn new(conn: &'c Conn) -> Result<Epochs<'c>> {
        Ok(Epochs {
            conn,
            whole_limit: super::contexts::whole_limit(conn)?,
            read: RefCell::new(None),
            tried: Cell::new(false),
            failed: RefCell::new(None),
        })
    }

    /// The first read that failed, if one did.
    pub fn check(&self) -> Result<()> {
        match self.failed.borrow_mut().take() {
            Some(e) => Err(Error::new(format!("reading Lamport epochs: {e}"))),
            None => Ok(()),
        }
    }

    /// Forgets what was read: read again when asked for.
    pub fn forget(&mut self) {
        *self.read.get_mut() = None;
    }

    /// Notes an epoch stored meanwhile (as `_sync_epochs` does: the greater Lamport time wins).
    pub fn note(&mut self, local_seq: u64, lamport: u64) {
        let Some(read) = self.read.get_mut() else {
            return; // read from `_sync_epochs` when asked for
        };
        match read.list.last_mut() {
            _ if read.to.is_some() => {} // beyond what was read: read when asked for
            Some(last) if last.0 == local_seq => last.1 = last.1.max(lamport),
            Some(last) if last.0 > local_seq => *self.read.get_mut() = None,
            _ => read.list.push((local_seq, lamport)),
        }
    }

    /// Lamport time of local op `seq`: `lamport + seq - local_seq` of the epoch with the
    /// greatest `local_seq < seq`, or `seq` before every epoch.
    pub fn lamport(&self, seq: u64) -> u64 {
        let mut read = self.read.borrow_mut();
        if !read.as_ref().is_some_and(|r| r.covers(seq)) {
            let whole = read.is_none() && self.whole_limit > 0 && !self.tried.replace(true);
            match self.read_from(seq, whole) {
                Ok(r) => *read = Some(r),
                Err(e) => {
                    *read = None;
                    self.failed.borrow_mut().get_or_insert(e);
                    return seq;
                }
            }
        }
        let list = &read.as_ref().expect("just read").list;
        match list.partition_point(|&(local_seq, _)| local_seq < seq) {
            0 => seq,
            i => {
                let (local_seq, lamport) = list[i - 1];
                lamport + seq - local_seq
            }
        }
    }

    /// Reads the epochs from the one in force at op `seq` on (`WINDOW` of them at most); or,
    /// `whole`, every epoch if there are at most `whole_limit` (a young database's, in one query).
    fn read_from(&self, seq: u64, whole: bool) -> Result<Read> {
        if whole {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT local_seq, lamport FROM main._sync_epochs ORDER BY local_seq LIMIT {}",
                self.whole_limit + 1
            ))?;
            let mut list = Vec::new();
            while let Some(row) = stmt.step()? {
                list.push((row.column_int(0) as u64, row.column_int(1) as u64));
            }
            if list.len() <= self.whole_limit {
                let (from, to) = (None, None);
                return Ok(Read { from, to, list });
            }
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT local_seq, lamport FROM main._sync_epochs
             WHERE local_seq >= coalesce(
               (SELECT max(local_seq) FROM main._sync_epochs WHERE local_seq < ?1), 0)
             ORDER BY local_seq LIMIT {}",
            WINDOW + 1
        ))?;
        stmt.bind_all(&[Value::Integer(seq as i64)])?;
        let mut list = Vec::new();
        while let Some(row) = stmt.step()? {
            let n = |i| row.column_int(i) as u64;
            list.push((n(0), n(1)));
        }
        let to = match list.len() > WINDOW {
            true => {
                list.pop();
                list.last().map(|e| e.0)
            }
            false => None,
        };
        let from = list.first().map(|e| e.0).filter(|&first| first < seq);
        Ok(Read { from, to, list })
    }
}
