//! `listDatabases`: `{listDatabases: 1, nameOnly?, filter?}` on admin.

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;
use eddy_query::filter::Filter;

use super::data::{check_fields, with_engine};
use crate::args::{opt_bool, opt_doc};
use crate::command::{Command, CommandResult, Ctx};

pub struct ListDatabases {
    name_only: bool,
    filter: Option<Document>,
}

impl Command for ListDatabases {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "listDatabases",
            &["nameOnly", "filter", "authorizedDatabases"],
        )?;
        let filter = opt_doc(cmd, "listDatabases", "filter")?.cloned();
        if let Some(f) = &filter {
            Filter::parse(f)?;
        }
        Ok(ListDatabases {
            name_only: opt_bool(cmd, "listDatabases", "nameOnly")?.unwrap_or(false),
            filter,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let (name_only, filter) = (self.name_only, self.filter);
        // With `--auth`, a user without the cluster's `listDatabases` sees the databases
        // its roles reach (mongod's `authorizedDatabases` default).
        let visible = match ctx.state().config.auth {
            true => ctx.conn().auth.identity().filter(|i| {
                !i.may(
                    &crate::auth::Resource::Cluster,
                    crate::auth::Action::ListDatabases,
                )
            }),
            false => None,
        };
        with_engine(&ctx, move |e| {
            let reader = e.reader()?;
            let filter = filter.as_ref().map(Filter::parse).transpose()?;
            let mut databases = Vec::new();
            let mut total = 0i64;
            // As on mongod's replica set, `admin`, `config` and `local` are always there:
            // `admin` holds the users and roles, `local` the oplog (`local.oplog.rs`),
            // `config` nothing (Eddy keeps sessions in memory).
            let mut names = reader.databases()?;
            for system in ["admin", "config", "local"] {
                if !names.iter().any(|n| n == system) {
                    names.push(system.to_owned());
                }
            }
            names.sort();
            for name in names {
                if visible.as_ref().is_some_and(|i| !i.reaches(&name)) {
                    continue;
                }
                let mut size = 0i64;
                if !name_only {
                    for meta in reader.collections(Some(&name))? {
                        size += reader.data_size(&meta)? as i64;
                    }
                    match name.as_str() {
                        "admin" => size += reader.users_and_roles_bytes()? as i64,
                        "local" => size += e.oplog_bytes() as i64,
                        _ => {}
                    }
                }
                let entry = if name_only {
                    doc! {"name": &name}
                } else {
                    doc! {"name": &name, "sizeOnDisk": size, "empty": size == 0}
                };
                if filter.as_ref().is_some_and(|f| !f.matches(&entry)) {
                    continue;
                }
                total += size;
                databases.push(Bson::Document(entry));
            }
            let mut reply = doc! {"databases": databases};
            if !name_only {
                reply.insert("totalSize", total);
                reply.insert("totalSizeMb", total / (1024 * 1024));
            }
            Ok(reply.into())
        })
        .await
    }
}
