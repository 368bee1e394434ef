//! `insert`: `{insert: coll, documents: [...], ordered?, bypassDocumentValidation?}`.

use bson::{doc, Document};
use eddy_codes::MongoError;

use super::data::{
    check_fields, collection_arg, documents_arg, namespace, with_engine, write_errors,
};
use crate::args::opt_bool;
use crate::command::{Command, CommandResult, Ctx};

pub struct Insert {
    coll: String,
    documents: Vec<Document>,
    ordered: bool,
    bypass_document_validation: bool,
}

impl Command for Insert {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "insert",
            &["documents", "ordered", "bypassDocumentValidation", "let"],
        )?;
        Ok(Insert {
            coll: collection_arg(cmd, "insert")?,
            documents: documents_arg(cmd, "insert", "documents")?,
            ordered: opt_bool(cmd, "insert", "ordered")?.unwrap_or(true),
            bypass_document_validation: opt_bool(cmd, "insert", "bypassDocumentValidation")?
                .unwrap_or(false),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let (docs, ordered, bypass) = (
            self.documents,
            self.ordered,
            self.bypass_document_validation,
        );
        let retry = ctx.retryable();
        let out = with_engine(&ctx, move |e| {
            e.insert_retryable(ns, docs, ordered, bypass, retry)
        })
        .await?;
        let mut reply = doc! {"n": out.n as i32};
        if !out.errors.is_empty() {
            reply.insert("writeErrors", write_errors(&out));
        }
        Ok(reply.into())
    }
}
