//! eddy-query: MongoDB 7.0 query semantics, pure and synchronous.
//!
//! Everything here works on in-memory `bson` values and never does I/O, so the engine
//! can call it under its own locks. Modules:
//!
//! * [`cmp`]: mongod's total order over BSON values;
//! * [`collation`]: language-aware string comparison (ICU collations);
//! * [`path`]: dotted paths with mongod's implicit array traversal;
//! * [`key`]: order-preserving byte encoding of values for index keys;
//! * [`bounds`]: the index bounds a filter implies, and implication between filters;
//! * [`filter`]: the query matcher (`find` filters, `$match`, update queries);
//! * [`geo`]: geometry parsing, the geo operators, distances and geo index keys;
//! * [`schema`]: the `$jsonSchema` matcher;
//! * [`update`]: replacement and modifier updates, upsert seeds;
//! * [`projection`]: `find` projections and the base of `$project`;
//! * [`sort`]: sort specifications and mongod's sort keys (arrays, parallel arrays);
//! * [`storage`]: which field names may be stored where (`$`-prefixed names, `_id`);
//! * [`expr`]: aggregation expressions (`$add`, `$map`, `$dateToString`, ...);
//! * [`pipeline`]: aggregation stages (`$group`, `$lookup`, ...), change-stream and
//!   update pipelines;
//! * [`diff`]: v2 oplog diffs and change-stream `updateDescription`s;
//! * [`regex`]: PCRE-compatible regular expressions for `$regex`;
//! * [`util`]: mongod-style value printing and integer coercions for messages.
#![forbid(unsafe_code)]
// Every fallible function here returns the workspace-wide `MongoError` (code, message,
// labels, extra fields), which is deliberately a plain struct shared by all layers.
#![allow(clippy::result_large_err)]

pub mod bounds;
pub mod cmp;
pub mod collation;
pub mod diff;
pub mod expr;
pub mod filter;
pub mod geo;
pub mod hashed;
pub mod key;
pub mod meta;
pub mod path;
pub mod pipeline;
pub mod projection;
pub mod regex;
pub mod schema;
pub mod sort;
pub mod storage;
pub mod text;
pub mod update;
pub mod util;

pub use diff::UpdateDescription;
pub use filter::{Filter, MatchDetails};
pub use projection::Projection;
pub use sort::SortSpec;
pub use update::{Applied, ApplyContext, Update};
