//! `count`: `{count: coll, query?, limit?, skip?, hint?}` -> `{n}`.

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;

use super::data::{check_fields, collation_arg, collection_arg, namespace, with_engine};
use crate::args::{opt_doc, opt_integer};
use crate::command::{Command, CommandResult, Ctx};
use eddy_engine::exec::{query, QuerySpec};

pub struct Count {
    coll: String,
    /// Also what `explain` of this command runs.
    pub(super) query: QuerySpec,
    /// Whether the command names a `collation` (else the collection's or view's default).
    pub(super) names_collation: bool,
}

impl Command for Count {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "count",
            &["query", "limit", "skip", "hint", "collation", "fields"],
        )?;
        let skip = opt_integer(cmd, "count", "skip")?.unwrap_or(0);
        if skip < 0 {
            return Err(MongoError::bad_value(
                "skip value is negative in count query",
            ));
        }
        // A negative limit counts like its absolute value (mongod's legacy rule).
        let limit = opt_integer(cmd, "count", "limit")?
            .map(i64::unsigned_abs)
            .filter(|l| *l > 0);
        Ok(Count {
            names_collation: cmd.contains_key("collation"),
            coll: collection_arg(cmd, "count")?,
            query: QuerySpec {
                filter: opt_doc(cmd, "count", "query")?.cloned().unwrap_or_default(),
                skip: skip as u64,
                limit,
                hint: cmd
                    .get("hint")
                    .filter(|h| matches!(h, Bson::String(_) | Bson::Document(_)))
                    .cloned(),
                collation: collation_arg(cmd, "count")?,
                ..QuerySpec::default()
            },
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let mut query = QuerySpec {
            deadline: ctx.deadline(),
            ..self.query
        };
        let names_collation = self.names_collation;
        let n = with_engine(&ctx, move |e| {
            e.apply_default_collation(&ns, names_collation, &mut query.collation)?;
            if query.filter.is_empty() && query.skip == 0 && query.limit.is_none() {
                // The fast path mongod also takes: the collection's record count.
                let reader = e.reader()?;
                if reader.view(&ns)?.is_none() {
                    return match reader.collection(&ns)? {
                        Some(meta) => reader.count(&meta),
                        None => Ok(0),
                    };
                }
            }
            Ok(query::run(e, &ns, &query)?.len() as u64)
        })
        .await?;
        Ok(doc! {"n": n as i64 as i32}.into())
    }
}
