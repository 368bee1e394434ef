//! `distinct`: `{distinct: coll, key, query?}` -> `{values}` (arrays contribute their
//! elements, as in mongod; values in mongod's comparison order).

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;

use super::data::{check_fields, collation_arg, collection_arg, namespace, with_engine};
use crate::args::{missing, opt_doc, wrong_type};
use crate::command::{Command, CommandResult, Ctx};
use eddy_engine::exec::{query, QuerySpec};

pub struct Distinct {
    coll: String,
    key: String,
    /// Also what `explain` of this command runs.
    pub(super) query: QuerySpec,
    /// Whether the command names a `collation` (else the collection's or view's default).
    pub(super) names_collation: bool,
}

impl Command for Distinct {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(cmd, "distinct", &["key", "query", "collation", "hint"])?;
        let key = match cmd.get("key") {
            Some(Bson::String(k)) => k.clone(),
            Some(v) => return Err(wrong_type("distinct", "key", v, "type 'string'")),
            None => return Err(missing("distinct", "key")),
        };
        Ok(Distinct {
            names_collation: cmd.contains_key("collation"),
            coll: collection_arg(cmd, "distinct")?,
            key,
            query: QuerySpec {
                filter: opt_doc(cmd, "distinct", "query")?
                    .cloned()
                    .unwrap_or_default(),
                collation: collation_arg(cmd, "distinct")?,
                snapshot: super::data::snapshot_read(cmd)?,
                hint: super::data::opt_hint(cmd)?,
                ..QuerySpec::default()
            },
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let key = self.key;
        let mut query = QuerySpec {
            deadline: ctx.deadline(),
            ..self.query
        };
        let names_collation = self.names_collation;
        let (values, at) = with_engine(&ctx, move |e| {
            e.apply_default_collation(&ns, names_collation, &mut query.collation)?;
            let query::Outcome { docs, at, .. } = query::execute(e, &ns, &query)?;
            // Values equal under the collation are one value (the first one met).
            let collation = query.collation.as_deref();
            let same = |a: &Bson, b: &Bson| eddy_query::cmp::values_equal_collated(a, b, collation);
            let mut values: Vec<Bson> = Vec::new();
            for d in &docs {
                // Leaf arrays contribute their elements, not themselves.
                for c in eddy_query::path::lookup_all(d, &key, true) {
                    let Some(v) = c.value.filter(|_| !c.whole_array) else {
                        continue;
                    };
                    if !values.iter().any(|x| same(x, v)) {
                        values.push(v.clone());
                    }
                }
            }
            values.sort_by(|a, b| eddy_query::cmp::compare_collated(a, b, collation));
            Ok((values, at))
        })
        .await?;
        let mut reply = doc! {"values": values};
        if let Some(ts) = at {
            reply.insert("atClusterTime", ts);
        }
        Ok(reply.into())
    }
}
