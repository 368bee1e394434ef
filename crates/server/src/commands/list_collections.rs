//! `listCollections`: `{listCollections: 1, filter?, nameOnly?, cursor?}`.

use bson::{doc, Document};
use eddy_codes::MongoError;
use eddy_query::filter::Filter;

use super::data::{check_fields, with_engine};
use crate::args::{opt_bool, opt_doc, opt_integer};
use crate::command::{Command, CommandResult, Ctx};
use crate::cursor::{CursorOptions, VecCursor};

pub struct ListCollections {
    filter: Option<Document>,
    name_only: bool,
    authorized_collections: bool,
    batch_size: Option<u32>,
}

impl Command for ListCollections {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "listCollections",
            &[
                "filter",
                "nameOnly",
                "cursor",
                "authorizedCollections",
                "includePendingDrops",
            ],
        )?;
        let filter = opt_doc(cmd, "listCollections", "filter")?.cloned();
        if let Some(f) = &filter {
            Filter::parse(f)?;
        }
        let batch_size = match opt_doc(cmd, "listCollections", "cursor")? {
            Some(c) => {
                opt_integer(c, "listCollections.cursor", "batchSize")?.map(|b| b.max(0) as u32)
            }
            None => None,
        };
        Ok(ListCollections {
            filter,
            name_only: opt_bool(cmd, "listCollections", "nameOnly")?.unwrap_or(false),
            authorized_collections: opt_bool(cmd, "listCollections", "authorizedCollections")?
                .unwrap_or(false),
            batch_size,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        let (filter, name_only) = (self.filter, self.name_only);
        // With `--auth` and `authorizedCollections: true`, a user without
        // `listCollections` on the database sees the collections it holds privileges on.
        let visible = match ctx.state().config.auth && self.authorized_collections {
            true => ctx.conn().auth.identity().filter(|i| {
                !i.may(
                    &crate::auth::Resource::Database(db.clone()),
                    crate::auth::Action::ListCollections,
                )
            }),
            false => None,
        };
        let docs = with_engine(&ctx, move |e| {
            let filter = filter.as_ref().map(Filter::parse).transpose()?;
            let reader = e.reader()?;
            // (name, type, the full entry), collections and views in one name order.
            let mut entries: Vec<(String, &str, Document)> = Vec::new();
            for meta in reader.collections(Some(&db))? {
                if visible.as_ref().is_some_and(|i| {
                    !i.touches(&crate::auth::Resource::collection(&db, &meta.ns.coll))
                }) {
                    continue;
                }
                if meta.timeseries().is_some() {
                    let (view, buckets) = timeseries_entries(&meta);
                    entries.push((meta.ns.coll.clone(), "timeseries", view));
                    let name = format!("system.buckets.{}", meta.ns.coll);
                    entries.push((name, "collection", buckets));
                    continue;
                }
                let mut full = doc! {
                    "name": &meta.ns.coll,
                    "type": "collection",
                    "options": meta.options.clone(),
                    "info": {"readOnly": false, "uuid": meta.uuid_bson()},
                };
                // A clustered collection has no separate `_id` index (as mongod).
                if meta.clustered_index().is_none() {
                    full.insert("idIndex", eddy_engine::CollectionMeta::id_index_spec());
                }
                entries.push((meta.ns.coll, "collection", full));
            }
            for view in reader.views(&db)? {
                // As mongod: no UUID and no `_id` index.
                let full = doc! {
                    "name": &view.ns.coll,
                    "type": "view",
                    "options": view.options(),
                    "info": {"readOnly": true},
                };
                if visible.as_ref().is_some_and(|i| {
                    !i.touches(&crate::auth::Resource::collection(&db, &view.ns.coll))
                }) {
                    continue;
                }
                entries.push((view.ns.coll, "view", full));
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Vec::new();
            for (name, kind, full) in entries {
                if filter.as_ref().is_some_and(|f| !f.matches(&full)) {
                    continue;
                }
                out.push(if name_only {
                    doc! {"name": name, "type": kind}
                } else {
                    full
                });
            }
            Ok(out)
        })
        .await?;
        let ns = format!("{}.$cmd.listCollections", ctx.db());
        let source = VecCursor::from_documents(docs)?;
        ctx.open_cursor(
            ns,
            Box::new(source),
            CursorOptions::default(),
            self.batch_size,
        )
        .await
    }
}

/// The two entries mongod 7.0 lists for a time-series collection: the collection itself
/// (`type: "timeseries"`, no UUID: it is a view of its buckets there) and its buckets
/// collection `system.buckets.<name>` (clustered, with the same options). Eddy keeps
/// the measurements themselves (`eddy_engine::timeseries`), so the buckets entry is
/// shown as mongod shows it but holds no readable buckets; it carries the collection's
/// UUID. mongod's buckets `validator` is not shown.
fn timeseries_entries(meta: &eddy_engine::CollectionMeta) -> (Document, Document) {
    let view = doc! {
        "name": &meta.ns.coll,
        "type": "timeseries",
        "options": meta.options.clone(),
        "info": {"readOnly": false},
    };
    let mut options = doc! {"clusteredIndex": true};
    options.extend(meta.options.clone());
    let buckets = doc! {
        "name": format!("system.buckets.{}", meta.ns.coll),
        "type": "collection",
        "options": options,
        "info": {"readOnly": false, "uuid": meta.uuid_bson()},
    };
    (view, buckets)
}
