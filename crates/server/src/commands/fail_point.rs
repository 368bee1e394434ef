//! `configureFailPoint` (test commands only): `{configureFailPoint: name, mode, data?}`.

use bson::{Bson, Document};
use eddy_codes::MongoError;

use crate::args::{missing, opt_doc, wrong_type};
use crate::command::{Command, CommandResult, Ctx};
use crate::failpoint::FailPoints;

pub struct ConfigureFailPoint {
    name: String,
    mode: Bson,
    data: Option<Document>,
}

impl Command for ConfigureFailPoint {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        let name = match cmd.get("configureFailPoint") {
            Some(Bson::String(s)) => s.clone(),
            Some(v) => {
                return Err(wrong_type(
                    "configureFailPoint",
                    "configureFailPoint",
                    v,
                    "type 'string'",
                ))
            }
            None => return Err(missing("configureFailPoint", "configureFailPoint")),
        };
        let mode = cmd
            .get("mode")
            .cloned()
            .ok_or_else(|| missing("configureFailPoint", "mode"))?;
        Ok(ConfigureFailPoint {
            name,
            mode,
            data: opt_doc(cmd, "configureFailPoint", "data")?.cloned(),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let count = ctx
            .state()
            .failpoints
            .configure(&self.name, &self.mode, self.data)?;
        Ok(FailPoints::reply(count).into())
    }
}
