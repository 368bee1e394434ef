//! `update`: `{update: coll, updates: [{q, u, multi?, upsert?, arrayFilters?, hint?, collation?}], ordered?}`.

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;
use eddy_engine::UpdateOp;

use super::data::{
    check_fields, check_statement_fields, collation_arg, collection_arg, documents_arg, namespace,
    opt_documents, with_engine, write_errors,
};
use crate::args::{missing, opt_bool, opt_doc, wrong_type};
use crate::command::{Command, CommandResult, Ctx};

pub struct Update {
    coll: String,
    ops: Vec<UpdateOp>,
    /// Per statement, whether it names a `collation` (else the collection's default).
    names_collation: Vec<bool>,
    ordered: bool,
    let_vars: Document,
}

fn parse_statement(s: &Document) -> Result<UpdateOp, MongoError> {
    check_statement_fields(
        s,
        "update.updates",
        &[
            "q",
            "u",
            "multi",
            "upsert",
            "arrayFilters",
            "hint",
            "collation",
            "c",
            "upsertSupplied",
            "sort",
        ],
    )?;
    let filter = match s.get("q") {
        Some(Bson::Document(d)) => d.clone(),
        Some(v) => return Err(wrong_type("update.updates", "q", v, "type 'object'")),
        None => return Err(missing("update.updates", "q")),
    };
    let update = match s.get("u") {
        Some(u @ (Bson::Document(_) | Bson::Array(_))) => u.clone(),
        Some(v) => {
            return Err(wrong_type(
                "update.updates",
                "u",
                v,
                "types '[object, array]'",
            ))
        }
        None => return Err(missing("update.updates", "u")),
    };
    if let Bson::Array(stages) = &update {
        eddy_query::pipeline::check_stage_names(stages)?;
    }
    if s.contains_key("sort") {
        return Err(MongoError::new(
            eddy_codes::ErrorCode::CommandNotSupported,
            "update with 'sort' (MongoDB 8.0) is not supported by Eddy, which tracks 7.0",
        ));
    }
    Ok(UpdateOp {
        filter,
        update,
        multi: opt_bool(s, "update.updates", "multi")?.unwrap_or(false),
        upsert: opt_bool(s, "update.updates", "upsert")?.unwrap_or(false),
        array_filters: opt_documents(s, "update.updates", "arrayFilters")?,
        let_vars: Vec::new(),
        collation: collation_arg(s, "update.updates")?,
        bypass_document_validation: false,
        hint: super::data::opt_hint(s)?,
    })
}

impl Command for Update {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "update",
            &["updates", "ordered", "bypassDocumentValidation", "let"],
        )?;
        let bypass = opt_bool(cmd, "update", "bypassDocumentValidation")?.unwrap_or(false);
        let ops = documents_arg(cmd, "update", "updates")?
            .iter()
            .map(|s| {
                parse_statement(s).map(|op| UpdateOp {
                    bypass_document_validation: bypass,
                    ..op
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let names_collation = documents_arg(cmd, "update", "updates")?
            .iter()
            .map(|s| s.contains_key("collation"))
            .collect();
        Ok(Update {
            coll: collection_arg(cmd, "update")?,
            ops,
            names_collation,
            ordered: opt_bool(cmd, "update", "ordered")?.unwrap_or(true),
            let_vars: opt_doc(cmd, "update", "let")?.cloned().unwrap_or_default(),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let (mut ops, ordered, let_spec) = (self.ops, self.ordered, self.let_vars);
        let retry = ctx.retryable();
        let names_collation = self.names_collation;
        let out = with_engine(&ctx, move |e| {
            let statements = names_collation.into_iter().zip(ops.iter_mut());
            e.apply_default_collations(&ns, statements.map(|(g, op)| (g, &mut op.collation)))?;
            let vars = eddy_engine::exec::evaluate_let(e, &let_spec)?;
            for op in &mut ops {
                op.let_vars.clone_from(&vars);
            }
            e.update_retryable(ns, ops, ordered, retry)
        })
        .await?;
        let mut reply = doc! {"n": out.n as i32, "nModified": out.n_modified as i32};
        if !out.upserted.is_empty() {
            let upserted: Vec<Bson> = out
                .upserted
                .iter()
                .map(|(i, id)| Bson::Document(doc! {"index": *i as i32, "_id": id.clone()}))
                .collect();
            reply.insert("upserted", upserted);
        }
        if !out.errors.is_empty() {
            reply.insert("writeErrors", write_errors(&out));
        }
        Ok(reply.into())
    }
}
