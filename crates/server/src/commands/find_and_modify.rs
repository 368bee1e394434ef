//! `findAndModify`: `{findAndModify: coll, query?, sort?, remove?, update?, new?, fields?, upsert?, arrayFilters?}`.

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;
use eddy_engine::FindAndModify as Request;
use eddy_query::projection::Projection;

use super::data::{
    check_fields, collation_arg, collection_arg, namespace, opt_documents, with_engine,
};
use crate::args::{opt_bool, opt_doc, wrong_type};
use crate::command::{Command, CommandResult, Ctx};

pub struct FindAndModify {
    /// Whether the command names a `collation` (else the collection's default).
    names_collation: bool,
    coll: String,
    request: Request,
    fields: Option<Document>,
    let_vars: Document,
}

impl Command for FindAndModify {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "findAndModify",
            &[
                "query",
                "sort",
                "remove",
                "update",
                "new",
                "fields",
                "upsert",
                "arrayFilters",
                "bypassDocumentValidation",
                "collation",
                "hint",
                "let",
            ],
        )?;
        let update = match cmd.get("update") {
            None => None,
            Some(u @ (Bson::Document(_) | Bson::Array(_))) => Some(u.clone()),
            Some(v) => {
                return Err(wrong_type(
                    "findAndModify",
                    "update",
                    v,
                    "types '[object, array]'",
                ))
            }
        };
        let fields = opt_doc(cmd, "findAndModify", "fields")?.cloned();
        if let Some(f) = &fields {
            Projection::parse(f)?;
        }
        Ok(FindAndModify {
            names_collation: cmd.contains_key("collation"),
            coll: collection_arg(cmd, "findAndModify")?,
            request: Request {
                query: opt_doc(cmd, "findAndModify", "query")?
                    .cloned()
                    .unwrap_or_default(),
                sort: opt_doc(cmd, "findAndModify", "sort")?.cloned(),
                remove: opt_bool(cmd, "findAndModify", "remove")?.unwrap_or(false),
                update,
                return_new: opt_bool(cmd, "findAndModify", "new")?.unwrap_or(false),
                upsert: opt_bool(cmd, "findAndModify", "upsert")?.unwrap_or(false),
                array_filters: opt_documents(cmd, "findAndModify", "arrayFilters")?,
                let_vars: Vec::new(),
                collation: collation_arg(cmd, "findAndModify")?,
                bypass_document_validation: opt_bool(
                    cmd,
                    "findAndModify",
                    "bypassDocumentValidation",
                )?
                .unwrap_or(false),
                hint: super::data::opt_hint(cmd)?,
            },
            fields,
            let_vars: opt_doc(cmd, "findAndModify", "let")?
                .cloned()
                .unwrap_or_default(),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let mut request = self.request;
        let let_spec = self.let_vars;
        let retry = ctx.retryable();
        let names_collation = self.names_collation;
        let out = with_engine(&ctx, move |e| {
            let statement = std::iter::once((names_collation, &mut request.collation));
            e.apply_default_collations(&ns, statement)?;
            request.let_vars = eddy_engine::exec::evaluate_let(e, &let_spec)?;
            e.find_and_modify_retryable(ns, request, retry)
        })
        .await?;
        let value = match (out.value, &self.fields) {
            (Some(v), Some(f)) => Bson::Document(Projection::parse(f)?.apply(&v, None)?),
            (Some(v), None) => Bson::Document(v),
            (None, _) => Bson::Null,
        };
        let mut last_error = doc! {"n": out.n as i32};
        if out.upserted.is_some() || out.updated_existing || out.n > 0 {
            last_error.insert("updatedExisting", out.updated_existing);
        }
        if let Some(id) = out.upserted {
            last_error.insert("upserted", id);
        }
        Ok(doc! {"lastErrorObject": last_error, "value": value}.into())
    }
}
