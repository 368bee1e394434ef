//! `eddy demo [URI]`: the tutorial's `test.py` writes, and a steady mixed load generator.
//!
//! Without `--count`/`--rate` it performs exactly the tutorial's five operations on
//! `changestream.collection` (insert, update, replace, delete, drop), printing each one, so a
//! collection-level `eddy watch` sees six events (the drop also invalidates the stream).
//!
//! With `--count N` and/or `--rate R` it performs a deterministic (seeded) mix of inserts,
//! updates, replaces and deletes. Every operation changes exactly one document, so it produces
//! exactly one change event: updates and replaces always write a new `n` (the operation number)
//! and deletes only target live documents. Each operation is printed as one line
//! `[i/N] op(args)` unless a progress bar is shown on the terminal instead.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bson::{doc, Document};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mongodb::Collection;

use super::output::{dumps, JsonMode};
use super::signal::Shutdown;
use super::watch::{connect, resolve_uri};

/// `eddy demo` flags.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Connection string [default: $CHANGE_STREAM_DB, then mongodb://localhost:27017]
    #[arg(value_name = "URI")]
    pub uri: Option<String>,

    /// Database to write to
    #[arg(long, default_value = "changestream")]
    pub db: String,

    /// Collection to write to
    #[arg(long, default_value = "collection")]
    pub coll: String,

    /// Instead of the tutorial's five writes, perform N mixed insert/update/replace/delete
    /// operations (unbounded until Ctrl-C when only --rate is given)
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Operations per second for the mixed load [default: as fast as possible]
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// Seed for the mixed load's choice of operations (same seed, same sequence)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// One operation of the mixed load.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// insert_one({_id, n})
    Insert(i64),
    /// update_one({_id}, {$set: {n}})
    Update(i64),
    /// replace_one({_id}, {n, replaced: true})
    Replace(i64),
    /// delete_one({_id})
    Delete(i64),
}

/// Deterministic generator of the mixed load.
#[derive(Debug)]
pub struct LoadPlan {
    rng: u64,
    live: Vec<i64>,
    next_id: i64,
}

impl LoadPlan {
    /// A plan for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            live: Vec::new(),
            next_id: 1,
        }
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11
    }

    /// The next operation: ~40% inserts, 25% updates, 15% replaces, 20% deletes; always an
    /// insert when no document is live.
    pub fn next_op(&mut self) -> Op {
        let roll = self.random() % 100;
        if self.live.is_empty() || roll < 40 {
            let id = self.next_id;
            self.next_id += 1;
            self.live.push(id);
            return Op::Insert(id);
        }
        let idx = (self.random() % self.live.len() as u64) as usize;
        let id = self.live[idx];
        if roll < 65 {
            Op::Update(id)
        } else if roll < 80 {
            Op::Replace(id)
        } else {
            self.live.swap_remove(idx);
            Op::Delete(id)
        }
    }
}

fn show(d: &Document) -> String {
    dumps(d, JsonMode::Relaxed, None)
}

/// Runs `eddy demo`; returns the exit code.
pub async fn run(args: DemoArgs, shutdown: Shutdown) -> Result<i32> {
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of operations per second");
        }
    }
    let uri = resolve_uri(args.uri.as_deref());
    let client = connect(&uri, "eddy demo").await?;
    let coll = client.database(&args.db).collection::<Document>(&args.coll);
    if args.count.is_none() && args.rate.is_none() {
        tutorial(&coll, &uri).await?;
    } else {
        load(&coll, &args, shutdown).await?;
    }
    Ok(0)
}

/// The tutorial's test.py, step by step.
async fn tutorial(coll: &Collection<Document>, uri: &str) -> Result<()> {
    let ns = coll.namespace();
    println!("Writing to {ns} on {}", super::watch::redact_uri(uri));
    let d = doc! {"_id": 1, "hello": "world"};
    let r = coll
        .insert_one(d.clone())
        .await
        .with_context(|| format!("insert_one({})", show(&d)))?;
    println!("insert_one({}) -> inserted_id {}", show(&d), r.inserted_id);
    let (f, u) = (doc! {"_id": 1}, doc! {"$set": {"hello": "mars"}});
    let r = coll
        .update_one(f.clone(), u.clone())
        .await
        .with_context(|| format!("update_one({}, {})", show(&f), show(&u)))?;
    println!(
        "update_one({}, {}) -> matched {}, modified {}",
        show(&f),
        show(&u),
        r.matched_count,
        r.modified_count
    );
    let rep = doc! {"bye": "world"};
    let r = coll
        .replace_one(f.clone(), rep.clone())
        .await
        .with_context(|| format!("replace_one({}, {})", show(&f), show(&rep)))?;
    println!(
        "replace_one({}, {}) -> matched {}, modified {}",
        show(&f),
        show(&rep),
        r.matched_count,
        r.modified_count
    );
    let r = coll
        .delete_one(f.clone())
        .await
        .with_context(|| format!("delete_one({})", show(&f)))?;
    println!("delete_one({}) -> deleted {}", show(&f), r.deleted_count);
    coll.drop().await.context("drop()")?;
    println!("drop() -> dropped {ns}");
    Ok(())
}

/// Applies one load operation; returns its printable form.
async fn apply(coll: &Collection<Document>, op: &Op, n: u64) -> Result<String> {
    let n = n as i64;
    let line = match op {
        Op::Insert(id) => {
            let d = doc! {"_id": id, "n": n};
            coll.insert_one(d.clone()).await?;
            format!("insert_one({})", show(&d))
        }
        Op::Update(id) => {
            let (f, u) = (doc! {"_id": id}, doc! {"$set": {"n": n}});
            let r = coll.update_one(f.clone(), u.clone()).await?;
            if r.modified_count != 1 {
                bail!(
                    "update_one({}) modified {} documents",
                    show(&f),
                    r.modified_count
                );
            }
            format!("update_one({}, {})", show(&f), show(&u))
        }
        Op::Replace(id) => {
            let (f, r) = (doc! {"_id": id}, doc! {"n": n, "replaced": true});
            let res = coll.replace_one(f.clone(), r.clone()).await?;
            if res.modified_count != 1 {
                bail!(
                    "replace_one({}) modified {} documents",
                    show(&f),
                    res.modified_count
                );
            }
            format!("replace_one({}, {})", show(&f), show(&r))
        }
        Op::Delete(id) => {
            let f = doc! {"_id": id};
            let r = coll.delete_one(f.clone()).await?;
            if r.deleted_count != 1 {
                bail!(
                    "delete_one({}) deleted {} documents",
                    show(&f),
                    r.deleted_count
                );
            }
            format!("delete_one({})", show(&f))
        }
    };
    Ok(line)
}

async fn load(coll: &Collection<Document>, args: &DemoArgs, mut shutdown: Shutdown) -> Result<()> {
    let bar_visible = std::io::stderr().is_terminal();
    let print_ops = !bar_visible || !std::io::stdout().is_terminal();
    let pb = match args.count {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    pb.set_draw_target(if bar_visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let template = if args.count.is_some() {
        "{bar:40} {pos}/{len} ops  {per_sec}  eta {eta}  {msg}"
    } else {
        "{spinner} {pos} ops  {per_sec}  {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    let mut interval = args.rate.map(|r| {
        let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut plan = LoadPlan::new(args.seed);
    let total = args.count.map_or_else(|| "?".to_owned(), |c| c.to_string());
    let started = Instant::now();
    let mut done: u64 = 0;
    let mut counts = [0u64; 4];
    while args.count.is_none_or(|c| done < c) {
        if let Some(i) = interval.as_mut() {
            tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                _ = i.tick() => {}
            }
        } else if shutdown.requested() {
            break;
        }
        let op = plan.next_op();
        let n = done + 1;
        let line = apply(coll, &op, n)
            .await
            .with_context(|| format!("operation {n} ({op:?}) on {}", coll.namespace()))?;
        counts[match op {
            Op::Insert(_) => 0,
            Op::Update(_) => 1,
            Op::Replace(_) => 2,
            Op::Delete(_) => 3,
        }] += 1;
        done = n;
        if print_ops {
            pb.suspend(|| println!("[{n}/{total}] {line}"));
        }
        pb.set_message(line);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "done: {done} operations on {} ({} inserts, {} updates, {} replaces, {} deletes) in {secs:.1}s ({:.1} ops/s)",
        coll.namespace(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        if secs > 0.0 { done as f64 / secs } else { 0.0 }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_valid() {
        let a: Vec<Op> = {
            let mut p = LoadPlan::new(7);
            (0..500).map(|_| p.next_op()).collect()
        };
        let b: Vec<Op> = {
            let mut p = LoadPlan::new(7);
            (0..500).map(|_| p.next_op()).collect()
        };
        assert_eq!(a, b);
        // Replay: every update/replace/delete targets a live document; ids are never reused.
        let mut live = std::collections::HashSet::new();
        let mut seen = std::collections::HashSet::new();
        let mut kinds = [0; 4];
        for op in &a {
            match op {
                Op::Insert(id) => {
                    assert!(seen.insert(*id), "id {id} reused");
                    live.insert(*id);
                    kinds[0] += 1;
                }
                Op::Update(id) | Op::Replace(id) => {
                    assert!(live.contains(id));
                    kinds[if matches!(op, Op::Update(_)) { 1 } else { 2 }] += 1;
                }
                Op::Delete(id) => {
                    assert!(live.remove(id));
                    kinds[3] += 1;
                }
            }
        }
        assert!(
            kinds.iter().all(|k| *k > 30),
            "mix is too skewed: {kinds:?}"
        );
        let mut other = LoadPlan::new(8);
        let c: Vec<Op> = (0..500).map(|_| other.next_op()).collect();
        assert_ne!(a, c);
    }
}
