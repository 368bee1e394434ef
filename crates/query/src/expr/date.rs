//! Date operators.

use bson::Bson;
use eddy_codes::MongoError;

use super::{Ctx, Named, Node, Parser};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Year,
}

pub(super) fn parse_named(
    _p: &mut Parser,
    _name: &str,
    _arg: &Bson,
) -> Result<Option<Node>, MongoError> {
    Ok(None)
}

pub(super) fn eval_named(
    _cx: &mut Ctx<'_>,
    _op: Named,
    _args: &[Option<Node>],
) -> Result<Option<Bson>, MongoError> {
    Err(super::not_yet())
}
