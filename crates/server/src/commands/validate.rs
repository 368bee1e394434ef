//! `validate` (a collection's documents checked against its indexes, see
//! `eddy_engine::validate`) and `fsync` (every acknowledged write is already durable).

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::data::{collection_arg, namespace, with_engine};
use crate::args::opt_bool;
use crate::command::{Command, CommandResult, Ctx};

pub struct Validate {
    coll: String,
    /// `full` is accepted and changes nothing: it asks mongod for checks Eddy always
    /// makes (every document decoded, every index entry compared).
    background: bool,
}

impl Command for Validate {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        let coll = collection_arg(cmd, "validate")?;
        let full = opt_bool(cmd, "validate", "full")?.unwrap_or(false);
        let background = opt_bool(cmd, "validate", "background")?.unwrap_or(false);
        if full && background {
            return Err(MongoError::new(
                ErrorCode::InvalidOptions,
                "Running the validate command with both { background: true } and { full: true } is not supported.",
            ));
        }
        for unsupported in ["repair", "metadata", "fixMultikey"] {
            if opt_bool(cmd, "validate", unsupported)?.unwrap_or(false) {
                return Err(MongoError::new(
                    ErrorCode::CommandNotSupported,
                    format!("Eddy does not support validate with '{unsupported}'"),
                ));
            }
        }
        Ok(Validate { coll, background })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let background = self.background;
        with_engine(&ctx, move |e| {
            let reader = e.reader()?;
            if reader.view(&ns)?.is_some() {
                return Err(MongoError::new(
                    ErrorCode::CommandNotSupportedOnView,
                    "Cannot validate a view",
                ));
            }
            let Some(meta) = reader.collection(&ns)? else {
                return Err(MongoError::new(
                    ErrorCode::NamespaceNotFound,
                    format!("Collection '{ns}' does not exist to validate."),
                ));
            };
            let report = reader.validate(&meta)?;
            let mut keys = Document::new();
            let mut details = Document::new();
            for (name, n) in &report.keys_per_index {
                keys.insert(name.clone(), *n as i64);
                details.insert(
                    name.clone(),
                    doc! {"valid": !report.invalid_indexes.contains(name)},
                );
            }
            let mut warnings: Vec<Bson> = Vec::new();
            if background {
                warnings.push(Bson::String(
                    "Eddy validates a snapshot of the latest commit; background: true changes nothing"
                        .into(),
                ));
            }
            let valid = report.valid();
            let mut reply = doc! {
                "ns": ns.to_string(),
                "uuid": meta.uuid_bson(),
                "nInvalidDocuments": report.invalid_documents as i64,
                "nNonCompliantDocuments": report.invalid_documents as i64,
                "nrecords": report.nrecords as i64,
                "nIndexes": report.keys_per_index.len() as i32,
                "keysPerIndex": keys,
                "indexDetails": details,
                "valid": valid,
                "repaired": false,
                "warnings": warnings,
                "errors": report.errors.clone(),
                "extraIndexEntries": report.extra_entries.clone(),
                "missingIndexEntries": report.missing_entries.clone(),
                "corruptRecords": report.corrupt_records.clone(),
            };
            if !valid {
                reply.insert(
                    "advice",
                    "A corrupt namespace has been detected. See http://dochub.mongodb.org/core/data-recovery for recovery steps.",
                );
            }
            Ok(reply.into())
        })
        .await
    }
}

pub struct Fsync;

impl Command for Fsync {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        if opt_bool(cmd, "fsync", "lock")?.unwrap_or(false) {
            return Err(MongoError::new(
                ErrorCode::CommandNotSupported,
                "Eddy does not support fsync with lock",
            ));
        }
        Ok(Fsync)
    }

    /// Every acknowledged write was fsynced by its group commit, so there is nothing
    /// left to flush.
    async fn apply(self, _ctx: Ctx) -> CommandResult {
        Ok(doc! {"numFiles": 1_i32}.into())
    }
}
