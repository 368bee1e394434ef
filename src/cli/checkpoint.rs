//! `eddy watch --checkpoint FILE`: the resume token of the last event written to stdout.
//!
//! Invariant: the file on disk is always either absent or a complete, valid checkpoint. It is
//! replaced atomically: write a temporary file in the same directory, fsync it, rename it over
//! the old file, then fsync the directory so the rename itself survives a crash.
//!
//! Format: one canonical Extended JSON document (readable with `jq`, and with pymongo's
//! `json_util.loads`):
//! `{"resumeToken": {"_data": "82..."}, "operationType": "insert", "clusterTime": {...}}`.
//! `operationType` is kept because a token taken from an `invalidate` event can only be used
//! with `startAfter`, never `resumeAfter` (mongod refuses that with InvalidResumeToken).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bson::{Bson, Document};

use super::output::{dumps, JsonMode};

/// What a checkpoint file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The event's `_id` (its resume token).
    pub resume_token: Document,
    /// The event's `operationType`, if it had one.
    pub operation_type: Option<String>,
    /// The event's `clusterTime`, for humans and for `--start-at-operation-time` fallbacks.
    pub cluster_time: Option<bson::Timestamp>,
}

impl Checkpoint {
    /// Builds a checkpoint from a change event; `None` if it has no document `_id`.
    pub fn from_event(event: &Document) -> Option<Self> {
        let resume_token = event.get_document("_id").ok()?.clone();
        Some(Self {
            resume_token,
            operation_type: event.get_str("operationType").ok().map(str::to_owned),
            cluster_time: event.get_timestamp("clusterTime").ok(),
        })
    }

    /// True when resuming must use `startAfter` (the token came from an invalidate event).
    pub fn needs_start_after(&self) -> bool {
        self.operation_type.as_deref() == Some("invalidate")
    }

    fn to_document(&self) -> Document {
        let mut d = Document::new();
        d.insert("resumeToken", self.resume_token.clone());
        if let Some(op) = &self.operation_type {
            d.insert("operationType", op.clone());
        }
        if let Some(ts) = self.cluster_time {
            d.insert("clusterTime", ts);
        }
        d
    }

    fn from_document(d: &Document) -> Result<Self> {
        let resume_token = d
            .get_document("resumeToken")
            .map_err(|_| anyhow!("missing or non-document field \"resumeToken\""))?
            .clone();
        let operation_type = match d.get("operationType") {
            None => None,
            Some(Bson::String(s)) => Some(s.clone()),
            Some(_) => bail!("field \"operationType\" must be a string"),
        };
        let cluster_time = match d.get("clusterTime") {
            None => None,
            Some(Bson::Timestamp(ts)) => Some(*ts),
            Some(_) => bail!("field \"clusterTime\" must be a $timestamp"),
        };
        Ok(Self {
            resume_token,
            operation_type,
            cluster_time,
        })
    }
}

/// Reads a checkpoint; `Ok(None)` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<Checkpoint>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading checkpoint {}", path.display())),
    };
    let parse = || -> Result<Checkpoint> {
        let json: serde_json::Value = serde_json::from_str(&text)?;
        match Bson::try_from(json)? {
            Bson::Document(d) => Checkpoint::from_document(&d),
            _ => bail!("not a JSON object"),
        }
    };
    parse().map(Some).with_context(|| {
        format!(
            "checkpoint file {} is not valid (delete it to start from now)",
            path.display()
        )
    })
}

/// Atomically replaces the checkpoint at `path`.
pub fn save(path: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("checkpoint path {} has no file name", path.display()))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let mut text = dumps(&checkpoint.to_document(), JsonMode::Canonical, None);
    text.push('\n');
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Make the rename durable. Opening a directory read-only and fsyncing it is the POSIX
        // way; on platforms where that is refused the rename is still atomic, just not yet
        // durable, so such an error is not fatal.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow!("saving checkpoint {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn sample(op: &str) -> Checkpoint {
        Checkpoint::from_event(&doc! {
            "_id": {"_data": "826500000000000001"},
            "operationType": op,
            "clusterTime": bson::Timestamp { time: 10, increment: 2 },
        })
        .expect("event has an _id")
    }

    #[test]
    fn roundtrip_and_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cp.json");
        assert_eq!(load(&path).expect("missing file is fine"), None);
        let cp = sample("insert");
        save(&path, &cp).expect("save");
        assert_eq!(load(&path).expect("load"), Some(cp.clone()));
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "{\"resumeToken\": {\"_data\": \"826500000000000001\"}, \"operationType\": \"insert\", \"clusterTime\": {\"$timestamp\": {\"t\": 10, \"i\": 2}}}\n"
        );
        assert!(!cp.needs_start_after());
        assert!(sample("invalidate").needs_start_after());
    }

    #[test]
    fn save_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cp.json");
        for i in 0..20 {
            let mut cp = sample("update");
            cp.resume_token = doc! {"_data": format!("{i:04}")};
            save(&path, &cp).expect("save");
            assert_eq!(load(&path).expect("load"), Some(cp));
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("cp.json")]);
    }

    #[test]
    fn old_checkpoint_survives_a_failed_save() {
        // A save that cannot create its temp file must leave the previous checkpoint intact.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cp.json");
        let cp = sample("insert");
        save(&path, &cp).expect("save");
        // The temp name is derived from the pid; occupy it with a directory so open() fails.
        let tmp = dir
            .path()
            .join(format!("cp.json.tmp.{}", std::process::id()));
        fs::create_dir(&tmp).expect("mkdir");
        let mut newer = sample("delete");
        newer.resume_token = doc! {"_data": "ffff"};
        assert!(save(&path, &newer).is_err());
        assert_eq!(load(&path).expect("load"), Some(cp));
    }

    #[test]
    fn invalid_files_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cp.json");
        for bad in [
            "",
            "[]",
            "{\"resumeToken\": 1}",
            "{\"operationType\": \"x\"}",
            "{oops",
        ] {
            fs::write(&path, bad).expect("write");
            let err = load(&path).expect_err(bad);
            assert!(format!("{err:#}").contains("is not valid"), "{err:#}");
        }
    }
}
