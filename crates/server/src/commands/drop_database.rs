//! `dropDatabase`: `{dropDatabase: 1}` on the database to drop.

use bson::Document;
use eddy_codes::{ErrorCode, MongoError};

use super::data::{check_fields, with_engine};
use crate::command::{Command, CommandResult, Ctx};

pub struct DropDatabase;

impl Command for DropDatabase {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(cmd, "dropDatabase", &[])?;
        if matches!(ctx.db(), "admin" | "config" | "local") {
            return Err(MongoError::new(
                ErrorCode::IllegalOperation,
                format!("Dropping the '{}' database is prohibited.", ctx.db()),
            ));
        }
        Ok(DropDatabase)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        with_engine(&ctx, move |e| e.drop_database(db)).await?;
        Ok(Document::new().into())
    }
}
