//! The three systems behind one face: a subscriber (an Eddy change stream, a Redis
//! subscriber, a PostgreSQL listener) and a publisher (an Eddy insert, a Redis `PUBLISH`, a
//! PostgreSQL `INSERT` whose trigger notifies), each on its own TCP connection, driven the
//! same way by the scenarios with the same payload sizes.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, Result};
use bson::oid::ObjectId;
use bson::{rawdoc, RawDocumentBuf};
use serde::Serialize;

use super::eddy::DB;
use super::mongo::{event_seq, ChangeStream, MongoConn, StreamOptions};
use super::postgres::{PgConn, CHANNEL as PG_CHANNEL};
use super::redis::RedisConn;

/// The Redis channel the publishers write to.
const REDIS_CHANNEL: &str = "events";

/// How long an Eddy `getMore` waits for an event that matches (drivers' `maxAwaitTimeMS`).
pub const MAX_AWAIT_MS: i64 = 5_000;

/// Bytes of padding in each event's payload, so that the three systems carry about the
/// same bytes per event (an Eddy document of ~250 bytes, a Redis or PostgreSQL payload of
/// ~200 bytes: the sequence number, a separator and the padding).
const PAD: usize = 187;

/// Which system a figure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Eddy,
    Redis,
    Postgres,
    /// redb with one committer thread, in process: the storage reference of `insert`.
    #[serde(rename = "redb-committer")]
    RedbCommitter,
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            System::Eddy => "eddy",
            System::Redis => "redis",
            System::Postgres => "postgres",
            System::RedbCommitter => "redb-committer",
        })
    }
}

/// Where to connect for one configuration.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Eddy { addr: SocketAddr, coll: String },
    Redis(SocketAddr),
    Postgres(SocketAddr),
}

impl Endpoint {
    pub fn system(&self) -> System {
        match self {
            Endpoint::Eddy { .. } => System::Eddy,
            Endpoint::Redis(_) => System::Redis,
            Endpoint::Postgres(_) => System::Postgres,
        }
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, Copy)]
pub enum Interest {
    /// Every event (no `$match`; the channel written to).
    Everything,
    /// Nothing that is ever written: subscriber `i`'s own filter or channel.
    /// For Eddy, half `{"documentKey._id": "never-<i>"}`, half
    /// `{"fullDocument.tag": "never-<i>"}`.
    Nothing(usize),
}

/// One subscriber on its own connection.
pub enum Subscriber {
    Eddy(Box<ChangeStream>),
    Redis(RedisConn),
    Postgres(PgConn),
}

impl Subscriber {
    /// Connects and subscribes. For Eddy: opens the change stream and sends its first
    /// `getMore`, so that on return the subscriber is waiting, as a driver's would be.
    /// Events in the `aggregate`'s first batch (none when nothing is written meanwhile)
    /// are reported by the first [`Subscriber::next`].
    pub async fn open(ep: &Endpoint, interest: Interest, max_await_ms: i64) -> Result<Subscriber> {
        Ok(match ep {
            Endpoint::Eddy { addr, coll } => {
                let filter = match interest {
                    Interest::Everything => None,
                    Interest::Nothing(i) if i % 2 == 0 => {
                        Some(rawdoc! {"documentKey._id": format!("never-{i}")})
                    }
                    Interest::Nothing(i) => {
                        Some(rawdoc! {"fullDocument.tag": format!("never-{i}")})
                    }
                };
                let stream = ChangeStream::open(
                    *addr,
                    StreamOptions {
                        db: DB,
                        coll,
                        filter,
                        start_at: None,
                        max_await_ms,
                    },
                )
                .await?;
                if !stream.batch()?.is_empty() {
                    anyhow::bail!("a change stream's first batch had events before any write");
                }
                let mut stream = Box::new(stream);
                stream.request().await?;
                Subscriber::Eddy(stream)
            }
            Endpoint::Redis(addr) => {
                let mut c = RedisConn::connect(*addr).await?;
                match interest {
                    Interest::Everything => c.subscribe(REDIS_CHANNEL).await?,
                    Interest::Nothing(i) => c.subscribe(&format!("never-{i}")).await?,
                }
                Subscriber::Redis(c)
            }
            Endpoint::Postgres(addr) => {
                let mut c = PgConn::connect(*addr).await?;
                match interest {
                    Interest::Everything => c.query(&format!("LISTEN {PG_CHANNEL}")).await?,
                    Interest::Nothing(i) => c.query(&format!("LISTEN never_{i}")).await?,
                }
                Subscriber::Postgres(c)
            }
        })
    }

    /// Waits for the next delivery; appends the sequence numbers it carried to `seqs` and
    /// returns when it arrived. An Eddy stream sends its next `getMore` right after
    /// reading a reply (after taking the arrival time), as a driver re-issues it.
    pub async fn next(&mut self, seqs: &mut Vec<u64>) -> Result<Instant> {
        match self {
            Subscriber::Eddy(stream) => {
                stream.read().await?;
                let at = Instant::now();
                for event in stream.batch()? {
                    seqs.push(event_seq(event?).context("an event without fullDocument.seq")?);
                }
                stream.request().await?;
                Ok(at)
            }
            Subscriber::Redis(c) => {
                let payload = c.next_message().await?;
                let at = Instant::now();
                seqs.push(payload_seq(&payload)?);
                Ok(at)
            }
            Subscriber::Postgres(c) => {
                let payload = c.next_notification().await?;
                let at = Instant::now();
                seqs.push(payload_seq(payload)?);
                Ok(at)
            }
        }
    }
}

/// The sequence number at the start of a Redis or PostgreSQL payload (`<seq>|<padding>`).
fn payload_seq(payload: &[u8]) -> Result<u64> {
    let digits = payload.split(|&b| b == b'|').next().unwrap_or_default();
    std::str::from_utf8(digits)?.parse().with_context(|| {
        format!(
            "a payload without a sequence number: {:?}",
            String::from_utf8_lossy(payload)
        )
    })
}

/// One publisher on its own connection.
pub enum Publisher {
    Eddy {
        conn: MongoConn,
        coll: String,
        pad: String,
    },
    Redis {
        conn: RedisConn,
        pad: String,
    },
    Postgres {
        conn: PgConn,
        pad: String,
    },
}

impl Publisher {
    /// Connects; `pad` bytes of padding go in each event (default: the shared event size).
    pub async fn open(ep: &Endpoint, pad: Option<usize>) -> Result<Publisher> {
        let pad = "x".repeat(pad.unwrap_or(PAD));
        Ok(match ep {
            Endpoint::Eddy { addr, coll } => Publisher::Eddy {
                conn: MongoConn::connect(*addr).await?,
                coll: coll.clone(),
                pad,
            },
            Endpoint::Redis(addr) => Publisher::Redis {
                conn: RedisConn::connect(*addr).await?,
                pad,
            },
            Endpoint::Postgres(addr) => Publisher::Postgres {
                conn: PgConn::connect(*addr).await?,
                pad,
            },
        })
    }

    /// Publishes event `seq` and waits for its acknowledgement: a durable insert for Eddy
    /// (one document, its own command) and PostgreSQL (one `INSERT`, its own transaction,
    /// committed with `synchronous_commit=on`), `PUBLISH`'s reply for Redis.
    pub async fn publish(&mut self, seq: u64) -> Result<()> {
        match self {
            Publisher::Eddy { conn, coll, pad } => {
                let doc = event_doc(seq, pad);
                conn.insert(DB, coll, std::slice::from_ref(&doc)).await
            }
            Publisher::Redis { conn, pad } => {
                let payload = format!("{seq}|{pad}");
                conn.publish(REDIS_CHANNEL, payload.as_bytes())
                    .await
                    .map(drop)
            }
            Publisher::Postgres { conn, pad } => {
                conn.query(&format!(
                    "INSERT INTO events (seq, payload) VALUES ({seq}, '{pad}')"
                ))
                .await
            }
        }
    }
}

/// An event document: `_id` an ObjectId (made by the client, as drivers do), `seq`, a
/// `tag` no idle stream's filter names, and padding.
pub fn event_doc(seq: u64, pad: &str) -> RawDocumentBuf {
    rawdoc! {
        "_id": ObjectId::new(),
        "seq": seq as i64,
        "tag": "w",
        "pad": pad,
    }
}
