//! eddy-query: MongoDB 7.0 query semantics, pure and synchronous.
//!
//! Everything here works on in-memory `bson` values and never does I/O, so the engine
//! can call it under its own locks. Modules:
//!
//! * [`cmp`]: mongod's total order over BSON values;
//! * [`path`]: dotted paths with mongod's implicit array traversal.
//! * [`key`]: order-preserving byte encoding of values for index keys;
#![forbid(unsafe_code)]

pub mod cmp;
pub mod key;
pub mod path;
