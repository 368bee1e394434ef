//! The `$geoNear` stage's options, parsed with mongod's checks. The stage reads its
//! collection through a geo index, so the engine runs it (`eddy_engine::exec`), as
//! the pipeline's first stage, and the pipeline continues from the next one.

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;

use crate::geo::query::Near;

/// A parsed `$geoNear`.
#[derive(Debug, Clone)]
pub struct GeoNear {
    /// The `near` point as given (GeoJSON or a legacy pair).
    pub near: Bson,
    /// Whether `near` is a GeoJSON point (distances in meters).
    pub geojson: bool,
    pub spherical: bool,
    pub distance_field: String,
    pub include_locs: Option<String>,
    pub distance_multiplier: f64,
    pub min_distance: Option<f64>,
    pub max_distance: Option<f64>,
    pub query: Document,
    pub key: Option<String>,
    /// The predicate the engine plans: `near` with its distance bounds.
    pub parsed: Near,
}

fn bad(code: i32, msg: &str) -> MongoError {
    MongoError::location(code, msg.to_owned())
}

fn distance(name: &str, v: &Bson) -> Result<f64, MongoError> {
    match crate::util::number_as_f64(v) {
        Some(n) if crate::cmp::is_number(v) && n >= 0.0 => Ok(n),
        Some(_) if crate::cmp::is_number(v) => {
            Err(MongoError::bad_value(format!("{name} must be nonnegative")))
        }
        _ => Err(MongoError::type_mismatch(format!(
            "{name} must be a number"
        ))),
    }
}

impl GeoNear {
    /// Parses the stage's argument.
    pub fn parse(arg: &Bson) -> Result<GeoNear, MongoError> {
        let Bson::Document(opts) = arg else {
            return Err(bad(
                10065,
                "invalid parameter: expected an object ($geoNear)",
            ));
        };
        let near = match opts.get("near") {
            Some(v @ (Bson::Array(_) | Bson::Document(_))) => v.clone(),
            _ => return Err(bad(16605, "$geoNear requires a 'near' option as an Array")),
        };
        let distance_field = match opts.get("distanceField") {
            Some(Bson::String(s)) => s.clone(),
            _ => {
                return Err(bad(
                    16606,
                    "$geoNear requires a 'distanceField' option as a String",
                ))
            }
        };
        let mut out = GeoNear {
            geojson: matches!(&near, Bson::Document(d) if d.contains_key("type")),
            near,
            spherical: false,
            distance_field,
            include_locs: None,
            distance_multiplier: 1.0,
            min_distance: None,
            max_distance: None,
            query: Document::new(),
            key: None,
            parsed: Near::parse(&doc! {"$near": [0, 0]}).map_err(MongoError::bad_value)?,
        };
        for (k, v) in opts {
            match k.as_str() {
                "near" | "distanceField" => {}
                "spherical" => out.spherical = crate::util::true_value(v),
                "includeLocs" => match v {
                    Bson::String(s) => out.include_locs = Some(s.clone()),
                    _ => {
                        return Err(bad(
                            16607,
                            "$geoNear requires that 'includeLocs' option is a String",
                        ))
                    }
                },
                "distanceMultiplier" => {
                    out.distance_multiplier = distance("distanceMultiplier", v)?;
                }
                "maxDistance" => out.max_distance = Some(distance("maxDistance", v)?),
                "minDistance" => out.min_distance = Some(distance("minDistance", v)?),
                "query" => match v {
                    Bson::Document(d) => out.query = d.clone(),
                    _ => return Err(MongoError::type_mismatch("query must be an object")),
                },
                "key" => match v {
                    Bson::String(s) if !s.is_empty() => out.key = Some(s.clone()),
                    Bson::String(_) => {
                        return Err(MongoError::bad_value(
                            "$geoNear parameter 'key' cannot be the empty string",
                        ))
                    }
                    _ => {
                        return Err(MongoError::type_mismatch(
                            "$geoNear parameter 'key' must be of type string",
                        ))
                    }
                },
                other => {
                    return Err(bad(
                        16604,
                        &format!("unknown argument to $geoNear: {other}"),
                    ))
                }
            }
        }
        // GeoJSON is measured on the sphere in meters; legacy pairs in radians when
        // `spherical`, else flat.
        let op = if out.geojson || out.spherical {
            "$nearSphere"
        } else {
            "$near"
        };
        let point = if out.geojson {
            Bson::Document(doc! {"$geometry": out.near.clone()})
        } else {
            out.near.clone()
        };
        let mut parsed =
            Near::parse_point(op, &point, op == "$nearSphere").map_err(MongoError::bad_value)?;
        parsed.min = out.min_distance;
        parsed.max = out.max_distance;
        out.parsed = parsed;
        Ok(out)
    }

    /// The `$near` predicate of the stage as a query clause on `path`.
    pub fn near_clause(&self, path: &str) -> Document {
        let op = if self.geojson || self.spherical {
            "$nearSphere"
        } else {
            "$near"
        };
        let mut ops = if self.geojson {
            doc! {op: {"$geometry": self.near.clone()}}
        } else {
            doc! {op: self.near.clone()}
        };
        if let Some(m) = self.min_distance {
            ops.insert("$minDistance", m);
        }
        if let Some(m) = self.max_distance {
            ops.insert("$maxDistance", m);
        }
        doc! {path: ops}
    }
}

impl GeoNear {
    /// Writes the stage's outputs into a found document: `distanceField` (times
    /// `distanceMultiplier`) and `includeLocs` (the location measured).
    pub fn annotate(&self, doc: &mut Document, distance: f64, loc: &Bson) {
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        super::set_nested(
            doc,
            &path(&self.distance_field),
            Bson::Double(distance * self.distance_multiplier),
        );
        if let Some(l) = &self.include_locs {
            super::set_nested(doc, &path(l), loc.clone());
        }
    }
}
