//! `renameCollection`: `{renameCollection: "db.from", to: "db.to", dropTarget?}` on admin.

use bson::{Bson, Document};
use eddy_codes::MongoError;
use eddy_engine::Namespace;

use super::data::{check_fields, with_engine};
use crate::args::{missing, truthy, wrong_type};
use crate::command::{Command, CommandResult, Ctx};

pub struct RenameCollection {
    from: Namespace,
    to: Namespace,
    drop_target: bool,
}

impl Command for RenameCollection {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(cmd, "renameCollection", &["to", "dropTarget", "stayTemp"])?;
        let from = match cmd.get("renameCollection") {
            Some(Bson::String(s)) => Namespace::parse(s)?,
            Some(v) => {
                return Err(wrong_type(
                    "renameCollection",
                    "renameCollection",
                    v,
                    "type 'string'",
                ))
            }
            None => return Err(missing("renameCollection", "renameCollection")),
        };
        let to = match cmd.get("to") {
            Some(Bson::String(s)) => Namespace::parse(s)?,
            Some(v) => return Err(wrong_type("renameCollection", "to", v, "type 'string'")),
            None => return Err(missing("renameCollection", "to")),
        };
        Ok(RenameCollection {
            from,
            to,
            drop_target: cmd.get("dropTarget").is_some_and(truthy),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        with_engine(&ctx, move |e| {
            e.rename_collection(self.from, self.to, self.drop_target)
        })
        .await?;
        Ok(Document::new().into())
    }
}
