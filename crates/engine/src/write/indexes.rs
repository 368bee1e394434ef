//! Index writes: createIndexes (spec normalisation, default names, the build) and
//! dropIndexes.

use std::sync::Arc;

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::filter::Filter;

use super::Tx;
use crate::catalog::{self, CollectionMeta, IndexMeta, Namespace};
use crate::oplog::{CatalogOp, Op};
use crate::{index, storage_err, Engine};

impl Engine {
    /// Creates indexes (and the collection if missing). Returns
    /// `(numIndexesBefore, numIndexesAfter, createdCollectionAutomatically)`.
    pub fn create_indexes(
        self: &Arc<Self>,
        ns: Namespace,
        specs: Vec<Document>,
    ) -> Result<(usize, usize, bool), MongoError> {
        catalog::validate_writable(&ns)?;
        self.execute(move |tx| {
            let existed = tx.collection(&ns)?.is_some();
            // mongod 7.0: inside a transaction, only on a collection that did not exist
            // when it began (created by it, or now).
            if let Some(base) = tx.txn_base {
                if catalog::get(base, &ns)?.is_some() {
                    return Err(MongoError::new(
                        ErrorCode::OperationNotSupportedInTransaction,
                        format!("Cannot create new indexes on existing collection {ns} in a multi-document transaction."),
                    ));
                }
            }
            let mut meta = tx.ensure_collection(&ns)?;
            let before = meta.indexes.len() + 1;
            for spec in specs {
                tx.create_index(&mut meta, spec)?;
            }
            Ok((before, meta.indexes.len() + 1, !existed))
        })
    }

    /// Drops the named indexes (`"*"`: all but `_id_`). Returns `nIndexesWas`.
    pub fn drop_indexes(
        self: &Arc<Self>,
        ns: Namespace,
        names: IndexSelector,
    ) -> Result<usize, MongoError> {
        self.execute(move |tx| {
            let Some(mut meta) = tx.collection(&ns)? else {
                return Err(MongoError::new(
                    ErrorCode::NamespaceNotFound,
                    format!("ns not found {ns}"),
                ));
            };
            let was = meta.indexes.len() + 1;
            let targets: Vec<IndexMeta> = match &names {
                IndexSelector::All => meta.indexes.clone(),
                IndexSelector::Names(names) => {
                    let mut out = Vec::new();
                    for name in names {
                        if name == "_id_" {
                            return Err(MongoError::new(
                                ErrorCode::InvalidOptions,
                                "cannot drop _id index",
                            ));
                        }
                        match meta.index(name) {
                            Some(i) => out.push(i.clone()),
                            None => {
                                return Err(MongoError::new(
                                    ErrorCode::IndexNotFound,
                                    format!("index not found with name [{name}]"),
                                ))
                            }
                        }
                    }
                    out
                }
                IndexSelector::KeyPattern(pattern) => {
                    if pattern == &doc! {"_id": 1} {
                        return Err(MongoError::new(
                            ErrorCode::InvalidOptions,
                            "cannot drop _id index",
                        ));
                    }
                    let found: Vec<IndexMeta> = meta
                        .indexes
                        .iter()
                        .filter(|i| catalog::same_key_pattern(&i.key_pattern(), pattern))
                        .cloned()
                        .collect();
                    match found.len() {
                        0 => {
                            return Err(MongoError::new(
                                ErrorCode::IndexNotFound,
                                format!(
                                    "can't find index with key: {}",
                                    crate::display_value(&Bson::Document(pattern.clone()))
                                ),
                            ))
                        }
                        1 => found,
                        _ => {
                            return Err(MongoError::new(
                                ErrorCode::AmbiguousIndexKeyPattern,
                                "index keyPattern matches more than one index",
                            ))
                        }
                    }
                }
            };
            for index in targets {
                tx.w.delete_table(&index::table(&index))
                    .map_err(storage_err)?;
                meta.indexes.retain(|i| i.id != index.id);
                catalog::put(tx.w, &meta)?;
                tx.log(
                    &ns,
                    Some(&meta.uuid),
                    Op::Catalog(&CatalogOp::DropIndexes {
                        name: index.name().to_owned(),
                        spec: index.spec.clone(),
                    }),
                )?;
            }
            Ok(was)
        })
    }
}

/// Which indexes `dropIndexes` names.
#[derive(Debug, Clone)]
pub enum IndexSelector {
    All,
    Names(Vec<String>),
    KeyPattern(Document),
}

impl Tx<'_, '_> {
    pub(super) fn create_index(
        &mut self,
        meta: &mut CollectionMeta,
        spec: Document,
    ) -> Result<(), MongoError> {
        let inherits = !spec.contains_key("collation");
        if let Some(ts) = meta.timeseries() {
            crate::timeseries::check_index_spec(&ts, &spec)?;
        }
        let mut spec = normalize_index_spec(spec)?;
        // An index given no collation has the collection's default (mongod's
        // `fixIndexSpec`); `{locale: "simple"}` was normalized away.
        if inherits {
            if let Ok(c) = meta.options.get_document("collation") {
                spec.insert("collation", c.clone());
            }
        }
        check_collation_supported(&spec)?;
        let name = spec.get_str("name").unwrap_or_default().to_owned();
        let key = spec.get_document("key").cloned().unwrap_or_default();
        let ttl = spec.contains_key("expireAfterSeconds");
        if key == doc! {"_id": 1} {
            if ttl {
                return Err(MongoError::new(
                    ErrorCode::InvalidIndexSpecificationOption,
                    format!(
                        "The field 'expireAfterSeconds' is not valid for an _id index specification. Specification: {}",
                        crate::display_value(&Bson::Document(spec.clone()))
                    ),
                ));
            }
            return Ok(());
        }
        if ttl && meta.cap().is_some() {
            return Err(MongoError::new(
                ErrorCode::CannotCreateIndex,
                "Cannot create TTL index on a capped collection",
            ));
        }
        if let Some(existing) = meta.index(&name) {
            if !catalog::same_key_pattern(&existing.key_pattern(), &key) {
                return Err(MongoError::new(
                    ErrorCode::IndexKeySpecsConflict,
                    format!(
                        "An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: {}, existing index: {}",
                        crate::display_value(&Bson::Document(spec.clone())),
                        crate::display_value(&Bson::Document(existing.spec.clone()))
                    ),
                ));
            }
            if options_of(&existing.spec) != options_of(&spec) {
                return Err(MongoError::new(
                    ErrorCode::IndexOptionsConflict,
                    format!("An equivalent index already exists with the same name but different options. Requested index: {}, existing index: {}",
                        crate::display_value(&Bson::Document(spec.clone())),
                        crate::display_value(&Bson::Document(existing.spec.clone()))),
                ));
            }
            return Ok(());
        }
        // Indexes on one key pattern may coexist under different collations.
        if let Some(existing) = meta.indexes.iter().find(|i| {
            catalog::same_key_pattern(&i.key_pattern(), &key)
                && i.spec.get("collation") == spec.get("collation")
        }) {
            if options_of(&existing.spec) == options_of(&spec) {
                return Err(MongoError::new(
                    ErrorCode::IndexOptionsConflict,
                    format!(
                        "Index already exists with a different name: {}",
                        existing.name()
                    ),
                ));
            }
            return Err(MongoError::new(
                ErrorCode::IndexOptionsConflict,
                format!("An equivalent index already exists with a different name and options. Requested index: {}, existing index: {}",
                    crate::display_value(&Bson::Document(spec.clone())),
                    crate::display_value(&Bson::Document(existing.spec.clone()))),
            ));
        }
        if eddy_query::text::is_text_key(&key) {
            if let Some(existing) = meta.indexes.iter().find(|i| i.is_text()) {
                return Err(MongoError::new(
                    ErrorCode::CannotCreateIndex,
                    format!(
                        "only one text index per collection allowed, found existing text index \"{}\"",
                        existing.name()
                    ),
                ));
            }
        }
        let mut index = IndexMeta {
            id: self.next_id()?,
            spec: spec.clone(),
            multikey_paths: Some(vec![Vec::new(); key.len()]),
        };
        // Build: every document's keys, checking uniqueness as entries are added.
        let table = index::table(&index);
        let docs: Vec<(Vec<u8>, Vec<u8>)> = self
            .w
            .scan_all(&meta.docs_table(), false)
            .map_err(storage_err)?
            .collect::<Result<_, _>>()
            .map_err(storage_err)?;
        let probe = CollectionMeta {
            indexes: vec![index.clone()],
            ..meta.clone()
        };
        for (id_key, bytes) in docs {
            let doc = catalog::decode(&bytes)?;
            if index.unique() {
                if let Err(e) = index::check_unique(&*self.w, &probe, &doc, None, &id_key) {
                    self.w.delete_table(&table).map_err(storage_err)?;
                    return Err(e);
                }
            }
            let paths = index::add_index_entries(self.w, &index, &doc, &id_key)?;
            index.add_multikey_paths(&paths);
        }
        self.engine.usage.created(meta.id, index.id);
        meta.indexes.push(index);
        catalog::put(self.w, meta)?;
        self.log(
            &meta.ns,
            Some(&meta.uuid),
            Op::Catalog(&CatalogOp::CreateIndexes { spec }),
        )
    }
}

/// The options of an index spec that make two indexes on the same key different.
fn options_of(spec: &Document) -> Document {
    let mut out = Document::new();
    for k in [
        "unique",
        "sparse",
        "partialFilterExpression",
        "expireAfterSeconds",
        "collation",
        "hidden",
        "weights",
        "default_language",
        "language_override",
        "textIndexVersion",
    ] {
        if let Some(v) = spec.get(k) {
            if !(k != "partialFilterExpression" && matches!(v, Bson::Boolean(false))) {
                out.insert(k, v.clone());
            }
        }
    }
    out
}

/// mongod refuses a collation on the index types whose keys hold no comparable
/// strings (text, 2d): 67 CannotCreateIndex.
fn check_collation_supported(spec: &Document) -> Result<(), MongoError> {
    if !spec.contains_key("collation") {
        return Ok(());
    }
    let key = spec.get_document("key").cloned().unwrap_or_default();
    let kind = if eddy_query::text::is_text_key(&key) {
        Some("text")
    } else if key.values().any(|v| v.as_str() == Some("2d")) {
        Some("2d")
    } else {
        None
    };
    match kind {
        Some(kind) => Err(MongoError::new(
            ErrorCode::CannotCreateIndex,
            format!(
                "Index type '{kind}' does not support collation: {}",
                crate::display_value(spec.get("collation").unwrap_or(&Bson::Null))
            ),
        )),
        None => Ok(()),
    }
}

/// The default name mongod gives an index: `a_1_b_-1`.
pub fn default_index_name(key: &Document) -> String {
    key.iter()
        .map(|(k, v)| {
            let dir = match v {
                Bson::Int32(n) => n.to_string(),
                Bson::Int64(n) => n.to_string(),
                Bson::Double(d) if d.fract() == 0.0 => format!("{}", *d as i64),
                Bson::Double(d) => d.to_string(),
                Bson::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}_{dir}")
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// Validates an index spec and puts it in the shape listIndexes shows.
/// mongod's checks on a TTL index's `expireAfterSeconds` (`validateIndexSpecTTL`): a
/// number, 0 to 2^31 - 1 seconds, on a single-field key; each refusal is 67 with the spec.
fn check_ttl(spec: &Document, key_fields: usize, v: &Bson) -> Result<(), MongoError> {
    let refuse = |why: String| {
        MongoError::new(
            ErrorCode::CannotCreateIndex,
            format!(
                "{why}. Index spec: {}",
                crate::display_value(&Bson::Document(spec.clone()))
            ),
        )
    };
    let seconds = match v {
        Bson::Int32(n) => i64::from(*n),
        Bson::Int64(n) => *n,
        // mongod's safeNumberLong: NaN is 0, the rest truncated and saturated.
        Bson::Double(d) => *d as i64,
        Bson::Decimal128(d) => d.to_string().parse::<f64>().map_or(0, |d| d as i64),
        other => {
            return Err(refuse(format!(
            "TTL index 'expireAfterSeconds' option must be numeric, but received a type of '{}'",
            eddy_query::util::type_name(other)
        )))
        }
    };
    if seconds < 0 {
        return Err(refuse(
            "TTL index 'expireAfterSeconds' option cannot be less than 0".into(),
        ));
    }
    if seconds > i64::from(i32::MAX) {
        return Err(refuse(
            "TTL index 'expireAfterSeconds' option must be within an acceptable range, try a lower number".into(),
        ));
    }
    if key_fields != 1 {
        return Err(refuse(
            "TTL indexes are single-field indexes, compound indexes do not support TTL".into(),
        ));
    }
    Ok(())
}

fn normalize_index_spec(spec: Document) -> Result<Document, MongoError> {
    let key = match spec.get("key") {
        Some(Bson::Document(k)) => k.clone(),
        Some(_) => {
            return Err(MongoError::type_mismatch(
                "The field 'key' must be an object",
            ))
        }
        None => {
            return Err(MongoError::failed_to_parse(
                "The 'key' field is a required property of an index specification",
            ))
        }
    };
    if key.is_empty() {
        return Err(MongoError::new(
            ErrorCode::CannotCreateIndex,
            "Index keys cannot be empty.",
        ));
    }
    let text = eddy_query::text::is_text_key(&key);
    for (field, dir) in &key {
        let text_field = text
            && (matches!(dir, Bson::String(s) if s == "text")
                || field == "_fts"
                || field == "_ftsx");
        if text_field && (field == "$**" || field == "_fts" || field == "_ftsx") {
            // The wildcard text field, or a key already in the stored shape.
            continue;
        }
        if field.is_empty() {
            return Err(MongoError::new(
                ErrorCode::CannotCreateIndex,
                "Index key cannot be an empty field.",
            ));
        }
        // mongod's `validateKeyPattern`: `$`-prefixed fields (storable since 5.0) cannot
        // be indexed, except names that may be part of a DBRef below the top level, and
        // a wildcard key's final `$**` (see `crate::wildcard`).
        let wildcard = crate::wildcard::is_wildcard_field(field);
        let checked = match field.strip_suffix(".$**") {
            _ if field == "$**" => "",
            Some(root) if wildcard => root,
            _ => field.as_str(),
        };
        for (i, part) in checked
            .split('.')
            .enumerate()
            .filter(|_| !checked.is_empty())
        {
            if part.is_empty() {
                return Err(MongoError::new(
                    ErrorCode::CannotCreateIndex,
                    "Index keys cannot contain an empty field.",
                ));
            }
            let dbref = i != 0 && matches!(part, "$db" | "$id" | "$ref");
            if part.starts_with('$') && !dbref {
                return Err(MongoError::new(
                    ErrorCode::CannotCreateIndex,
                    "Index key contains an illegal field name: field name starts with '$'.",
                ));
            }
        }
        match dir {
            _ if text_field => {}
            Bson::Int32(n) if *n != 0 => {}
            Bson::Int64(n) if *n != 0 => {}
            Bson::Double(d) if *d != 0.0 && d.is_finite() => {}
            Bson::String(kind) if kind == "2d" || kind == "2dsphere" || kind == "hashed" => {}
            Bson::String(kind) => {
                return Err(MongoError::new(
                    ErrorCode::CannotCreateIndex,
                    format!("Eddy does not support '{kind}' indexes yet (field '{field}')"),
                ))
            }
            other => {
                return Err(MongoError::new(
                    ErrorCode::CannotCreateIndex,
                    format!("Values in the index key pattern can only be numbers or strings, found {field}: {}", crate::display_value(other)),
                ))
            }
        }
    }
    // Also for text keys: a wildcard term beside a text field is refused there.
    crate::wildcard::check_spec(&key, &spec)?;
    let name = match spec.get("name") {
        Some(Bson::String(n)) if !n.is_empty() => n.clone(),
        Some(Bson::String(_)) => {
            return Err(MongoError::new(
                ErrorCode::CannotCreateIndex,
                "The index name cannot be empty",
            ))
        }
        Some(_) => {
            return Err(MongoError::type_mismatch(
                "The field 'name' must be a string",
            ))
        }
        None => default_index_name(&key),
    };
    let mut out = doc! {"v": 2, "key": key.clone(), "name": name};
    for (k, v) in &spec {
        match k.as_str() {
            "key" | "name" | "v" | "ns" => {}
            // Deprecated and ignored since 3.0, still accepted by mongod 7.0.
            "dropDups" => {}
            "unique" | "sparse" | "hidden" | "background" | "prepareUnique" => {
                out.insert(k.clone(), Bson::Boolean(v.as_bool().unwrap_or(false) || matches!(v, Bson::Int32(n) if *n != 0)));
            }
            // Checked by `crate::wildcard::check_spec` above.
            "wildcardProjection" => {
                out.insert(k.clone(), v.clone());
            }
            "weights" | "default_language" | "language_override" | "textIndexVersion" if text => {
                out.insert(k.clone(), v.clone());
            }
            "partialFilterExpression" => {
                let f = v.as_document().ok_or_else(|| MongoError::type_mismatch("partialFilterExpression must be an object"))?;
                if Filter::parse(f)?.text().is_some() {
                    return Err(MongoError::new(ErrorCode::CannotCreateIndex, "unsupported expression in partial index: $text"));
                }
                out.insert(k.clone(), v.clone());
            }
            // Geo index options (mongod accepts them on any spec; only geo fields read them).
            "2dsphereIndexVersion" | "bits" | "min" | "max" | "coarsestIndexedLevel" | "finestIndexedLevel" => {
                out.insert(k.clone(), v.clone());
            }
            "expireAfterSeconds" => {
                check_ttl(&spec, out.get_document("key").map_or(0, Document::len), v)?;
                out.insert(k.clone(), v.clone());
            }
            "collation" => {
                let c = v.as_document().ok_or_else(|| MongoError::type_mismatch("The field 'collation' must be an object"))?;
                if let Some(normalized) = eddy_query::collation::Collation::normalize(c)? {
                    out.insert(k.clone(), normalized);
                }
            }
            other => {
                return Err(MongoError::new(
                    ErrorCode::InvalidIndexSpecificationOption,
                    format!("The field '{other}' is not valid for an index specification. Specification: {}", crate::display_value(&Bson::Document(spec.clone()))),
                ))
            }
        }
    }
    crate::hashed::check_spec(&key, &out)?;
    crate::geo::normalize_spec(&key, &mut out)?;
    if text {
        return eddy_query::text::fix_spec(&out);
    }
    Ok(out)
}
