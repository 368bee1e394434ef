//! The `granularity` of `$bucketAuto`: bucket boundaries rounded to a series of preferred
//! numbers (Renard, E, 1-2-5) or to powers of two, as mongod's `GranularityRounder`s.
//!
//! Doubles, ints and longs round through doubles (a preferred-number boundary is a
//! double; a power of two is the `$pow` of ints when it fits); decimals round exactly in
//! decimal arithmetic, with the series converted as mongod converts a double (15 digits).

use bson::Bson;
use eddy_codes::MongoError;

use crate::expr::num::{self, Dec};
use crate::util::type_name;

// The preferred-number series, mongod's tables (Wikipedia's "least rounded" forms).
const R5: &[f64] = &[10., 16., 25., 40., 63.];
const R10: &[f64] = &[100., 125., 160., 200., 250., 315., 400., 500., 630., 800.];
const R20: &[f64] = &[
    100., 112., 125., 140., 160., 180., 200., 224., 250., 280., 315., 355., 400., 450., 500., 560.,
    630., 710., 800., 900.,
];
const R40: &[f64] = &[
    100., 106., 112., 118., 125., 132., 140., 150., 160., 170., 180., 190., 200., 212., 224., 236.,
    250., 265., 280., 300., 315., 355., 375., 400., 425., 450., 475., 500., 530., 560., 600., 630.,
    670., 710., 750., 800., 850., 900., 950.,
];
const R80: &[f64] = &[
    103., 109., 115., 122., 128., 136., 145., 155., 165., 175., 185., 195., 206., 218., 230., 243.,
    258., 272., 290., 307., 325., 345., 365., 387., 412., 437., 462., 487., 515., 545., 575., 615.,
    650., 690., 730., 775., 825., 875., 925., 975.,
];
const SERIES_125: &[f64] = &[10., 20., 50.];
const E6: &[f64] = &[10., 15., 22., 33., 47., 68.];
const E12: &[f64] = &[10., 12., 15., 18., 22., 27., 33., 39., 47., 56., 68., 82.];
const E24: &[f64] = &[
    10., 11., 12., 13., 15., 16., 18., 20., 22., 24., 27., 30., 33., 36., 39., 43., 47., 51., 56.,
    62., 68., 75., 82., 91.,
];
const E48: &[f64] = &[
    100., 105., 110., 115., 121., 127., 133., 140., 147., 154., 162., 169., 178., 187., 196., 205.,
    215., 226., 237., 249., 261., 274., 287., 301., 316., 332., 348., 365., 383., 402., 422., 442.,
    464., 487., 511., 536., 562., 590., 619., 649., 681., 715., 750., 787., 825., 866., 909., 953.,
];
const E96: &[f64] = &[
    100., 102., 105., 107., 110., 113., 115., 118., 121., 124., 127., 130., 133., 137., 140., 143.,
    147., 150., 154., 158., 162., 165., 169., 174., 178., 182., 187., 191., 196., 200., 205., 210.,
    215., 221., 226., 232., 237., 243., 249., 255., 261., 267., 274., 280., 287., 294., 301., 309.,
    316., 324., 332., 340., 348., 357., 365., 374., 383., 392., 402., 412., 422., 432., 442., 453.,
    464., 475., 487., 499., 511., 523., 536., 549., 562., 576., 590., 604., 619., 634., 649., 665.,
    681., 698., 715., 732., 750., 768., 787., 806., 825., 845., 866., 887., 909., 931., 953., 976.,
];
const E192: &[f64] = &[
    100., 101., 102., 104., 105., 106., 107., 109., 110., 111., 113., 114., 115., 117., 118., 120.,
    121., 123., 124., 126., 127., 129., 130., 132., 133., 135., 137., 138., 140., 142., 143., 145.,
    147., 149., 150., 152., 154., 156., 158., 160., 162., 164., 165., 167., 169., 172., 174., 176.,
    178., 180., 182., 184., 187., 189., 191., 193., 196., 198., 200., 203., 205., 208., 210., 213.,
    215., 218., 221., 223., 226., 229., 232., 234., 237., 240., 243., 246., 249., 252., 255., 258.,
    261., 264., 267., 271., 274., 277., 280., 284., 287., 291., 294., 298., 301., 305., 309., 312.,
    316., 320., 324., 328., 332., 336., 340., 344., 348., 352., 357., 361., 365., 370., 374., 379.,
    383., 388., 392., 397., 402., 407., 412., 417., 422., 427., 432., 437., 442., 448., 453., 459.,
    464., 470., 475., 481., 487., 493., 499., 505., 511., 517., 523., 530., 536., 542., 549., 556.,
    562., 569., 576., 583., 590., 597., 604., 612., 619., 626., 634., 642., 649., 657., 665., 673.,
    681., 690., 698., 706., 715., 723., 732., 741., 750., 759., 768., 777., 787., 796., 806., 816.,
    825., 835., 845., 856., 866., 876., 887., 898., 909., 920., 931., 942., 953., 965., 976., 988.,
];

/// The preferred-number rounders by name.
const SERIES: [(&str, &[f64]); 12] = [
    ("R5", R5),
    ("R10", R10),
    ("R20", R20),
    ("R40", R40),
    ("R80", R80),
    ("1-2-5", SERIES_125),
    ("E6", E6),
    ("E12", E12),
    ("E24", E24),
    ("E48", E48),
    ("E96", E96),
    ("E192", E192),
];

/// How `$bucketAuto` rounds its boundaries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Granularity {
    /// A series of preferred numbers, repeated at every power of ten.
    Series(&'static str, &'static [f64]),
    /// `POWERSOF2`.
    PowersOfTwo,
}

impl Granularity {
    /// The rounder named `name` (40257 for another name).
    pub fn parse(name: &str) -> Result<Granularity, MongoError> {
        if name == "POWERSOF2" {
            return Ok(Granularity::PowersOfTwo);
        }
        SERIES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, series)| Granularity::Series(n, series))
            .ok_or_else(|| {
                MongoError::location(40257, format!("Unknown rounding granularity '{name}'"))
            })
    }

    /// The smallest boundary strictly greater than `v` (`v` itself when it is 0).
    pub fn round_up(&self, v: &Bson) -> Result<Bson, MongoError> {
        self.check(v)?;
        if num::to_f64(v) == 0.0 {
            return Ok(v.clone());
        }
        Ok(match self {
            Granularity::Series(_, series) => match v {
                Bson::Decimal128(_) => series_up(series, num::to_dec(v)).to_bson(),
                _ => Bson::Double(series_up(series, num::to_f64(v))),
            },
            Granularity::PowersOfTwo => match v {
                Bson::Double(d) => power_of_two(d.log2().floor() as i32 + 1),
                Bson::Decimal128(_) => {
                    decimal_power_of_two(num::to_f64(v).log2().floor() as i32 + 1)
                }
                _ => power_of_two(bit_length(num::to_i64(v))),
            },
        })
    }

    /// The largest boundary strictly less than `v` (`v` itself when it is 0).
    pub fn round_down(&self, v: &Bson) -> Result<Bson, MongoError> {
        self.check(v)?;
        if num::to_f64(v) == 0.0 {
            return Ok(v.clone());
        }
        Ok(match self {
            Granularity::Series(_, series) => match v {
                Bson::Decimal128(_) => series_down(series, num::to_dec(v)).to_bson(),
                _ => Bson::Double(series_down(series, num::to_f64(v))),
            },
            Granularity::PowersOfTwo => match v {
                Bson::Double(d) => power_of_two(d.log2().ceil() as i32 - 1),
                Bson::Decimal128(_) => {
                    decimal_power_of_two(num::to_f64(v).log2().ceil() as i32 - 1)
                }
                _ => {
                    let n = num::to_i64(v);
                    // A power of two rounds down to the one below it.
                    let exact = n.count_ones() == 1;
                    power_of_two(bit_length(n) - 1 - i32::from(exact))
                }
            },
        })
    }

    /// mongod's checks of a value to round (the codes differ between its two rounders).
    fn check(&self, v: &Bson) -> Result<(), MongoError> {
        let [not_numeric, nan, negative] = match self {
            Granularity::Series(..) => [40262, 40263, 40268],
            Granularity::PowersOfTwo => [40265, 40266, 40267],
        };
        if !num::is_numeric(v) {
            return Err(MongoError::location(
                not_numeric,
                format!(
                    "A granularity rounder can only round numeric values, but found type: {}",
                    type_name(v)
                ),
            ));
        }
        let d = num::to_f64(v);
        if d.is_nan() {
            return Err(MongoError::location(
                nan,
                "A granularity rounder cannot round NaN",
            ));
        }
        if d < 0.0 {
            return Err(MongoError::location(
                negative,
                "A granularity rounder can only round non-negative numbers",
            ));
        }
        Ok(())
    }
}

/// The number of bits of a positive integer (`floor(log2(n)) + 1`).
fn bit_length(n: i64) -> i32 {
    64 - n.leading_zeros() as i32
}

/// `$pow(2, exp)` of ints: an int or a long when it fits, else a double.
fn power_of_two(exp: i32) -> Bson {
    match exp {
        0..=62 => num::int_or_long(1_i64 << exp),
        _ => Bson::Double(2_f64.powi(exp)),
    }
}

/// `$pow(2, exp)` with a decimal exponent: a decimal.
fn decimal_power_of_two(exp: i32) -> Bson {
    Dec::from_f64(2_f64.powi(exp), 34).to_bson()
}

/// The arithmetic the series rounding needs, in doubles or in decimals (mongod runs
/// the same steps on either).
trait Scaled: Sized {
    fn of(series: f64) -> Self;
    fn times(&self, m: &Self) -> Self;
    fn tenth(&self) -> Self;
    fn tenfold(&self) -> Self;
    fn less(&self, other: &Self) -> bool;
}

impl Scaled for f64 {
    fn of(series: f64) -> f64 {
        series
    }
    fn times(&self, m: &f64) -> f64 {
        self * m
    }
    fn tenth(&self) -> f64 {
        self / 10.0
    }
    fn tenfold(&self) -> f64 {
        self * 10.0
    }
    fn less(&self, other: &f64) -> bool {
        self < other
    }
}

impl Scaled for Dec {
    /// mongod's `Decimal128(double)`: 15 significant digits.
    fn of(series: f64) -> Dec {
        Dec::from_f64(series, 15)
    }
    fn times(&self, m: &Dec) -> Dec {
        self.mul(m)
    }
    fn tenth(&self) -> Dec {
        self.div(&Dec::from_i64(10)).unwrap_or_else(Dec::zero)
    }
    fn tenfold(&self) -> Dec {
        self.mul(&Dec::from_i64(10))
    }
    fn less(&self, other: &Dec) -> bool {
        self.sub(other).is_neg()
    }
}

/// The series value above `n` (mongod's `roundUp`): scale the series by powers of ten
/// until it spans `n`, then take the first value greater than `n`.
fn series_up<T: Scaled>(series: &[f64], n: T) -> T {
    let series: Vec<T> = series.iter().map(|s| T::of(*s)).collect();
    let (first, last) = (&series[0], &series[series.len() - 1]);
    let mut multiplier = T::of(1.0);
    while !n.less(&last.times(&multiplier)) {
        multiplier = multiplier.tenfold();
    }
    while n.less(&first.times(&multiplier)) {
        let previous_min = first.times(&multiplier);
        multiplier = multiplier.tenth();
        if !n.less(&last.times(&multiplier)) {
            // Between one decade's last value and the next one's first.
            return previous_min;
        }
    }
    let i = series.partition_point(|s| !n.less(&s.times(&multiplier)));
    series[i].times(&multiplier)
}

/// The series value below `n` (mongod's `roundDown`).
fn series_down<T: Scaled>(series: &[f64], n: T) -> T {
    let series: Vec<T> = series.iter().map(|s| T::of(*s)).collect();
    let (first, last) = (&series[0], &series[series.len() - 1]);
    let mut multiplier = T::of(1.0);
    while !first.times(&multiplier).less(&n) {
        multiplier = multiplier.tenth();
    }
    while last.times(&multiplier).less(&n) {
        let previous_max = last.times(&multiplier);
        multiplier = multiplier.tenfold();
        if !first.times(&multiplier).less(&n) {
            return previous_max;
        }
    }
    let i = series.partition_point(|s| s.times(&multiplier).less(&n));
    series[i - 1].times(&multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(g: &str, v: Bson) -> Bson {
        Granularity::parse(g)
            .expect("known")
            .round_up(&v)
            .expect("rounds")
    }

    fn down(g: &str, v: Bson) -> Bson {
        Granularity::parse(g)
            .expect("known")
            .round_down(&v)
            .expect("rounds")
    }

    #[test]
    fn preferred_numbers_round_strictly_past_the_value() {
        // mongod's granularity_rounder_preferred_numbers_test: E6 around a decade.
        assert_eq!(up("E6", Bson::Double(0.8)), Bson::Double(1.0));
        assert_eq!(down("E6", Bson::Double(0.8)), Bson::Double(0.68));
        assert_eq!(up("E6", Bson::Int32(15)), Bson::Double(22.0));
        assert_eq!(down("E6", Bson::Int32(15)), Bson::Double(10.0));
        assert_eq!(up("R5", Bson::Int32(70)), Bson::Double(100.0));
        assert_eq!(down("R5", Bson::Int32(100)), Bson::Double(63.0));
        assert_eq!(up("1-2-5", Bson::Int32(2)), Bson::Double(5.0));
        assert_eq!(down("1-2-5", Bson::Int32(2)), Bson::Double(1.0));
        assert_eq!(up("R20", Bson::Int32(0)), Bson::Int32(0));
    }

    #[test]
    fn powers_of_two_keep_integers_integral() {
        assert_eq!(up("POWERSOF2", Bson::Int32(4)), Bson::Int32(8));
        assert_eq!(up("POWERSOF2", Bson::Int32(5)), Bson::Int32(8));
        assert_eq!(down("POWERSOF2", Bson::Int32(4)), Bson::Int32(2));
        assert_eq!(down("POWERSOF2", Bson::Int64(5)), Bson::Int32(4));
        assert_eq!(up("POWERSOF2", Bson::Double(0.3)), Bson::Double(0.5));
        assert_eq!(down("POWERSOF2", Bson::Double(3.0)), Bson::Int32(2));
    }

    #[test]
    fn decimals_round_in_decimal() {
        let d = |s: &str| Bson::Decimal128(s.parse().expect("decimal"));
        let up = up("E6", d("15"));
        assert_eq!(num::to_f64(&up), 22.0);
        assert!(matches!(up, Bson::Decimal128(_)));
        assert_eq!(num::to_f64(&down("E6", d("0.8"))), 0.68);
    }

    #[test]
    fn refuses_what_it_cannot_round() {
        let e6 = Granularity::parse("E6").expect("known");
        let code = |r: Result<Bson, MongoError>| r.expect_err("refused").code;
        assert_eq!(code(e6.round_up(&Bson::String("a".into()))), 40262);
        assert_eq!(code(e6.round_up(&Bson::Double(f64::NAN))), 40263);
        assert_eq!(code(e6.round_up(&Bson::Int32(-1))), 40268);
        let p2 = Granularity::parse("POWERSOF2").expect("known");
        assert_eq!(code(p2.round_down(&Bson::Int32(-1))), 40267);
        assert_eq!(Granularity::parse("E7").expect_err("unknown").code, 40257);
    }
}
