//! Default collations: which collation an operation runs under when it names none.
//!
//! mongod's rules (7.0): an operation's own `collation` wins on a collection; without
//! one, the collection's default (`create`'s `collation`, stored normalized in its
//! options) applies, and so does a view's default on a view. A view's default cannot
//! be overridden: an operation on a view naming any other collation, `simple`
//! included, fails with 167 OptionNotSupportedOnView. Indexes record their own
//! collation in their spec (inherited from the collection's default by
//! `createIndexes` unless given); `plan.rs` uses an index for string comparisons only
//! under the query's collation.

use std::sync::Arc;

use eddy_codes::{ErrorCode, MongoError};
use eddy_query::collation::{self, Collation};

use crate::catalog::{self, Namespace};
use crate::Engine;

/// An operation's `collation` field: absent, or given (`None` inside: simple).
pub type Given = Option<Option<Arc<Collation>>>;

impl Engine {
    /// The collation an operation on `ns` runs under (`None`: simple): the one it
    /// gives, else the default of the collection or view; 167 when it gives a view
    /// another collation than the view's.
    pub fn operation_collation(
        &self,
        ns: &Namespace,
        given: Given,
    ) -> Result<Option<Arc<Collation>>, MongoError> {
        let reader = self.reader()?;
        if let Some(view) = reader.view(ns)? {
            let default = view.default_collation();
            if let Some(given) = given {
                if !collation::same(given.as_deref(), default.as_deref()) {
                    return Err(MongoError::new(
                        ErrorCode::OptionNotSupportedOnView,
                        format!(
                            "Cannot override a view's default collation {}",
                            catalog_display(default.as_deref())
                        ),
                    ));
                }
            }
            return Ok(default);
        }
        match given {
            Some(given) => Ok(given),
            None => catalog::default_collation(reader.snap(), ns),
        }
    }
}

fn catalog_display(c: Option<&Collation>) -> String {
    match c {
        Some(c) => crate::display_value(&bson::Bson::Document(c.spec().clone())),
        None => "{ locale: \"simple\" }".to_owned(),
    }
}

impl Engine {
    /// [`Engine::operation_collation`] in place: `collation` is what the operation
    /// parsed, `given` whether it named one at all.
    pub fn apply_default_collation(
        &self,
        ns: &Namespace,
        given: bool,
        collation: &mut Option<Arc<Collation>>,
    ) -> Result<(), MongoError> {
        *collation = self.operation_collation(ns, given.then(|| collation.take()))?;
        Ok(())
    }
}

impl crate::exec::Aggregation {
    /// The aggregation's collation resolved against its collection's or view's default
    /// (`given`: whether the command named one). `{aggregate: 1}` has no default.
    pub fn apply_default_collation(
        &mut self,
        engine: &Engine,
        given: bool,
    ) -> Result<(), MongoError> {
        match &self.coll {
            Some(coll) => engine.apply_default_collation(
                &Namespace::new(self.db.clone(), coll.clone()),
                given,
                &mut self.collation,
            ),
            None => Ok(()),
        }
    }
}

impl Engine {
    /// The default collation of the collection or view `ns` (`None`: simple, or
    /// nothing there), for write statements that name none.
    pub fn default_collation(&self, ns: &Namespace) -> Result<Option<Arc<Collation>>, MongoError> {
        catalog::default_collation(self.reader()?.snap(), ns)
    }

    /// Gives each statement that names no collation (`given[i]` false) the
    /// collection's default.
    pub fn apply_default_collations<'a>(
        &self,
        ns: &Namespace,
        statements: impl Iterator<Item = (bool, &'a mut Option<Arc<Collation>>)>,
    ) -> Result<(), MongoError> {
        let mut default = None;
        for (given, collation) in statements {
            if !given {
                if default.is_none() {
                    default = Some(self.default_collation(ns)?);
                }
                collation.clone_from(default.as_ref().expect("just read"));
            }
        }
        Ok(())
    }
}
