//! `distinct`: `{distinct: coll, key, query?}` -> `{values}` (arrays contribute their
//! elements, as in mongod; values in mongod's comparison order).

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;

use super::data::{check_collation, check_fields, collection_arg, namespace, with_engine};
use super::query::{self, QuerySpec};
use crate::args::{missing, opt_doc, wrong_type};
use crate::command::{Command, CommandResult, Ctx};

pub struct Distinct {
    coll: String,
    key: String,
    /// Also what `explain` of this command runs.
    pub(super) query: QuerySpec,
}

impl Command for Distinct {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(cmd, "distinct", &["key", "query", "collation", "hint"])?;
        check_collation(cmd, "distinct")?;
        let key = match cmd.get("key") {
            Some(Bson::String(k)) => k.clone(),
            Some(v) => return Err(wrong_type("distinct", "key", v, "type 'string'")),
            None => return Err(missing("distinct", "key")),
        };
        Ok(Distinct {
            coll: collection_arg(cmd, "distinct")?,
            key,
            query: QuerySpec {
                filter: opt_doc(cmd, "distinct", "query")?
                    .cloned()
                    .unwrap_or_default(),
                hint: super::data::opt_hint(cmd)?,
                ..QuerySpec::default()
            },
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let (key, query) = (self.key, self.query);
        let values = with_engine(&ctx, move |e| {
            let docs = query::run(e, &ns, &query)?;
            let mut values: Vec<Bson> = Vec::new();
            for d in &docs {
                // Leaf arrays contribute their elements, not themselves.
                for c in eddy_query::path::lookup_all(d, &key, true) {
                    let Some(v) = c.value.filter(|_| !c.whole_array) else {
                        continue;
                    };
                    if !values.iter().any(|x| eddy_query::cmp::values_equal(x, v)) {
                        values.push(v.clone());
                    }
                }
            }
            values.sort_by(eddy_query::cmp::compare);
            Ok(values)
        })
        .await?;
        Ok(doc! {"values": values}.into())
    }
}
