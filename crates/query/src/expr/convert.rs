//! `$convert` and its shortcuts.

use bson::Bson;
use eddy_codes::MongoError;

use super::{Ctx, Node, Parser};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Bool,
}

impl Target {
    pub(crate) fn from_alias(_name: &str) -> Option<Target> {
        None
    }
}

pub(super) fn parse_named(
    _p: &mut Parser,
    _name: &str,
    _arg: &Bson,
) -> Result<Option<Node>, MongoError> {
    Ok(None)
}

pub(super) fn convert_value(_v: Option<Bson>, _t: Target) -> Result<Option<Bson>, MongoError> {
    Err(super::not_yet())
}

pub(super) fn eval_convert(
    _cx: &mut Ctx<'_>,
    _args: &[Option<Node>],
) -> Result<Option<Bson>, MongoError> {
    Err(super::not_yet())
}
