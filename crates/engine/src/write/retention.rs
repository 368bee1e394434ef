//! Oplog retention: trimming the oldest entries beyond the size cap.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bson::DateTime;
use eddy_codes::MongoError;

use crate::{storage_err, tables, Engine};

impl Engine {
    /// Trims the oldest oplog entries beyond the size cap (never those younger than the
    /// minimum retention, never the newest). At most `chunk` entries per call; returns
    /// how many were removed.
    pub fn trim_oplog(self: &Arc<Self>, chunk: usize) -> Result<usize, MongoError> {
        let cap = self.options.oplog_size_mb.saturating_mul(1024 * 1024);
        if self.oplog_bytes() <= cap {
            return Ok(0);
        }
        let min_keep_secs = (self.options.oplog_min_retention_hours * 3600.0) as u64;
        self.execute(move |tx| {
            let engine = tx.engine;
            let now = DateTime::now().timestamp_millis() / 1000;
            let newest =
                tx.w.last(tables::OPLOG)
                    .map_err(storage_err)?
                    .map(|(k, _)| k);
            let mut excess = engine.oplog_bytes().saturating_sub(cap);
            let mut doomed = Vec::new();
            let mut freed = 0u64;
            for entry in tx.w.scan_all(tables::OPLOG, false).map_err(storage_err)? {
                let (k, v) = entry.map_err(storage_err)?;
                if excess == 0 || doomed.len() >= chunk || Some(&k) == newest.as_ref() {
                    break;
                }
                let ts = crate::oplog::ts_of_key(&k)
                    .map(|t| t.time as i64)
                    .unwrap_or(0);
                if min_keep_secs > 0 && now - ts < min_keep_secs as i64 {
                    break;
                }
                let size = (k.len() + v.len()) as u64;
                excess = excess.saturating_sub(size);
                freed += size;
                doomed.push(k);
            }
            // Streams reading storage behind this point learn that they lost entries
            // (`Engine::read_oplog`); said before the commit, so no reader misses it.
            if let Some(newest_doomed) = doomed.last().and_then(|k| crate::oplog::ts_of_key(k)) {
                engine
                    .trimmed_through
                    .fetch_max(crate::clock::pack(newest_doomed), Ordering::Release);
            }
            for k in &doomed {
                tx.w.delete(tables::OPLOG, k).map_err(storage_err)?;
            }
            engine
                .oplog_bytes
                .fetch_sub(freed.min(engine.oplog_bytes()), Ordering::Relaxed);
            Ok(doomed.len())
        })
    }
}
