//! `delete`: `{delete: coll, deletes: [{q, limit, hint?, collation?}], ordered?}`.

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::DeleteOp;

use super::data::{
    check_fields, check_statement_fields, collation_arg, collection_arg, documents_arg, namespace,
    with_engine, write_errors,
};
use crate::args::{as_integer, missing, opt_bool, opt_doc, wrong_type};
use crate::command::{Command, CommandResult, Ctx};

pub struct Delete {
    coll: String,
    ops: Vec<DeleteOp>,
    /// Per statement, whether it names a `collation` (else the collection's default).
    names_collation: Vec<bool>,
    ordered: bool,
    let_vars: Document,
}

fn parse_statement(s: &Document) -> Result<DeleteOp, MongoError> {
    let filter = match s.get("q") {
        Some(Bson::Document(d)) => d.clone(),
        Some(v) => return Err(wrong_type("delete.deletes", "q", v, "type 'object'")),
        None => return Err(missing("delete.deletes", "q")),
    };
    let limit = match s.get("limit") {
        Some(v) => as_integer(v).ok_or_else(|| {
            wrong_type(
                "delete.deletes",
                "limit",
                v,
                "types '[long, int, decimal, double]'",
            )
        })?,
        None => return Err(missing("delete.deletes", "limit")),
    };
    if limit != 0 && limit != 1 {
        return Err(MongoError::new(
            ErrorCode::FailedToParse,
            format!("The limit field in delete objects must be 0 or 1. Got {limit}"),
        ));
    }
    check_statement_fields(s, "delete.deletes", &["q", "limit", "hint", "collation"])?;
    Ok(DeleteOp {
        filter,
        just_one: limit == 1,
        let_vars: Vec::new(),
        collation: collation_arg(s, "delete.deletes")?,
        hint: super::data::opt_hint(s)?,
    })
}

impl Command for Delete {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(cmd, "delete", &["deletes", "ordered", "let"])?;
        let ops = documents_arg(cmd, "delete", "deletes")?
            .iter()
            .map(parse_statement)
            .collect::<Result<Vec<_>, _>>()?;
        let names_collation = documents_arg(cmd, "delete", "deletes")?
            .iter()
            .map(|s| s.contains_key("collation"))
            .collect();
        Ok(Delete {
            coll: collection_arg(cmd, "delete")?,
            ops,
            names_collation,
            ordered: opt_bool(cmd, "delete", "ordered")?.unwrap_or(true),
            let_vars: opt_doc(cmd, "delete", "let")?.cloned().unwrap_or_default(),
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
            e.delete_retryable(ns, ops, ordered, retry)
        })
        .await?;
        let mut reply = doc! {"n": out.n as i32};
        if !out.errors.is_empty() {
            reply.insert("writeErrors", write_errors(&out));
        }
        Ok(reply.into())
    }
}
