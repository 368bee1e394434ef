//! A minimal MongoDB client over one TCP connection, for load generation.
//!
//! It sends what a driver sends and nothing else: a `hello` when it connects, then OP_MSG
//! commands with `lsid` (and `txnNumber` on writes, as a driver with retryable writes does).
//! Frames are built with `eddy-wire`'s [`encode_msg_raw`] and cut with [`peek_header`]; a
//! reply's body is read in place as a [`RawDocument`] (the wire crate's `decode` builds a
//! `Document`, which is what the hot path must avoid: a change event is never decoded whole).

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use bson::raw::{cstr, RawArray, RawArrayBuf, RawBsonRef, RawDocument, RawDocumentBuf};
use bson::{rawdoc, Binary, Timestamp};
use eddy_wire::{encode_msg_raw, opcode, peek_header, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// OP_MSG payload before the body: flagBits (4 bytes) and the section kind (1 byte).
const BODY_OFFSET: usize = HEADER_LEN + 5;

/// One connection and its logical session.
pub struct MongoConn {
    /// Buffered for reading, as drivers read (and as the Redis and PostgreSQL clients of
    /// the bench do): a reply's header and body usually take one `recv`.
    stream: BufReader<TcpStream>,
    /// The last reply frame, header included.
    frame: Vec<u8>,
    next_request: i32,
    /// `{id: UUID}`: one session per connection, as a driver's implicit session.
    lsid: RawDocumentBuf,
    /// Increasing per session for each retryable write.
    txn_number: i64,
}

impl MongoConn {
    /// Connects and does the driver handshake (`hello`).
    pub async fn connect(addr: SocketAddr) -> Result<MongoConn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = MongoConn {
            stream: BufReader::with_capacity(4096, stream),
            frame: Vec::with_capacity(512),
            next_request: 1,
            lsid: rawdoc! {"id": Binary::from_uuid(bson::Uuid::new())},
            txn_number: 0,
        };
        conn.command(&rawdoc! {
            "hello": 1,
            "client": {"driver": {"name": "eddy-bench", "version": env!("CARGO_PKG_VERSION")}},
            "$db": "admin",
        })
        .await
        .context("hello")?;
        Ok(conn)
    }

    /// Sends one command without waiting for its reply.
    pub async fn send(&mut self, body: &RawDocument) -> Result<()> {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        let frame = encode_msg_raw(id, 0, 0, body);
        self.stream.get_mut().write_all(&frame).await?;
        Ok(())
    }

    /// Reads the next reply frame into the connection's buffer; [`MongoConn::body`] reads it.
    pub async fn recv(&mut self) -> Result<()> {
        self.frame.resize(HEADER_LEN, 0);
        self.stream
            .read_exact(&mut self.frame[..HEADER_LEN])
            .await
            .context("reading a reply (the server closed the connection?)")?;
        let header = peek_header(&self.frame)?.context("a whole header was read")?;
        if header.op_code != opcode::MSG {
            bail!("expected an OP_MSG reply, got opcode {}", header.op_code);
        }
        let len = usize::try_from(header.length)?;
        self.frame.resize(len, 0);
        self.stream
            .read_exact(&mut self.frame[HEADER_LEN..])
            .await
            .context("reading a reply body")?;
        Ok(())
    }

    /// The body of the last reply, not decoded.
    pub fn body(&self) -> Result<&RawDocument> {
        let declared = self
            .frame
            .get(BODY_OFFSET..BODY_OFFSET + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(i32::from_le_bytes)
            .context("a reply without a body")?;
        if self.frame.get(HEADER_LEN + 4) != Some(&0) {
            bail!("the reply's first section is not a body");
        }
        let end = BODY_OFFSET + usize::try_from(declared)?;
        let bytes = self
            .frame
            .get(BODY_OFFSET..end)
            .context("a reply body longer than its frame")?;
        Ok(RawDocument::from_bytes(bytes)?)
    }

    /// Sends a command, reads its reply and checks `ok: 1`.
    pub async fn command(&mut self, body: &RawDocument) -> Result<&RawDocument> {
        self.send(body).await?;
        self.recv().await?;
        let reply = self.body()?;
        check_ok(reply)?;
        Ok(reply)
    }

    /// A durable insert of `docs` (one command, awaiting its reply), as a driver sends it
    /// with retryable writes: `ordered`, `lsid` and an increasing `txnNumber`.
    pub async fn insert(&mut self, db: &str, coll: &str, docs: &[RawDocumentBuf]) -> Result<()> {
        self.txn_number += 1;
        let mut documents = RawArrayBuf::new();
        for d in docs {
            documents.push(d.clone());
        }
        let cmd = rawdoc! {
            "insert": coll,
            "documents": documents,
            "ordered": true,
            "lsid": self.lsid.clone(),
            "txnNumber": self.txn_number,
            "$db": db,
        };
        let reply = self.command(&cmd).await?;
        if let Ok(errors) = reply.get_array("writeErrors") {
            bail!("insert failed: {:?}", errors.into_iter().next());
        }
        let n = number(reply.get("n")?).context("insert reply without n")?;
        if n != docs.len() as i64 {
            bail!("insert of {} documents reported n: {n}", docs.len());
        }
        Ok(())
    }

    /// A multi-document transaction inserting `docs` one per statement (the first with
    /// `startTransaction`), then `commitTransaction`, as a driver runs one; its own
    /// `txnNumber` on the connection's session.
    pub async fn transaction(
        &mut self,
        db: &str,
        coll: &str,
        docs: &[RawDocumentBuf],
    ) -> Result<()> {
        self.txn_number += 1;
        for (i, d) in docs.iter().enumerate() {
            let mut documents = RawArrayBuf::new();
            documents.push(d.clone());
            let mut cmd = rawdoc! {
                "insert": coll,
                "documents": documents,
                "lsid": self.lsid.clone(),
                "txnNumber": self.txn_number,
                "autocommit": false,
                "$db": db,
            };
            if i == 0 {
                cmd.append(cstr!("startTransaction"), true);
            }
            let reply = self.command(&cmd).await?;
            if let Ok(errors) = reply.get_array("writeErrors") {
                bail!(
                    "insert in a transaction failed: {:?}",
                    errors.into_iter().next()
                );
            }
        }
        self.command(&rawdoc! {
            "commitTransaction": 1,
            "lsid": self.lsid.clone(),
            "txnNumber": self.txn_number,
            "autocommit": false,
            "$db": "admin",
        })
        .await
        .context("commitTransaction")?;
        Ok(())
    }

    /// Creates `db.coll` (an existing one is fine); the reply's `operationTime`.
    pub async fn create(&mut self, db: &str, coll: &str) -> Result<Option<Timestamp>> {
        self.send(&rawdoc! {"create": coll, "lsid": self.lsid.clone(), "$db": db})
            .await?;
        self.recv().await?;
        let reply = self.body()?;
        // 48: NamespaceExists, when rerunning against an external server.
        if !is_ok(reply) && number(reply.get("code")?) != Some(48) {
            check_ok(reply)?;
        }
        Ok(reply.get_timestamp("operationTime").ok())
    }

    /// Drops `db.coll` (best effort, for runs against an external server).
    pub async fn drop_collection(&mut self, db: &str, coll: &str) -> Result<()> {
        self.send(&rawdoc! {"drop": coll, "lsid": self.lsid.clone(), "$db": db})
            .await?;
        self.recv().await
    }
}

/// A change stream on its own connection, used as a driver uses one: `aggregate` with
/// `$changeStream`, then `getMore` after `getMore` on the same connection.
pub struct ChangeStream {
    conn: MongoConn,
    cursor_id: i64,
    coll: String,
    db: String,
    max_await_ms: i64,
    /// Which batch the buffered reply carries.
    field: &'static str,
}

/// What a change stream is opened with.
pub struct StreamOptions<'a> {
    pub db: &'a str,
    pub coll: &'a str,
    /// A `$match` stage's filter, after `$changeStream`.
    pub filter: Option<RawDocumentBuf>,
    pub start_at: Option<Timestamp>,
    /// `maxTimeMS` of each `getMore`: how long the server holds it when nothing matches.
    pub max_await_ms: i64,
}

impl ChangeStream {
    /// Connects and opens the stream; its first batch is then in [`ChangeStream::batch`].
    pub async fn open(addr: SocketAddr, opts: StreamOptions<'_>) -> Result<ChangeStream> {
        let mut conn = MongoConn::connect(addr).await?;
        let mut change_stream = RawDocumentBuf::new();
        if let Some(t) = opts.start_at {
            change_stream.append(cstr!("startAtOperationTime"), t);
        }
        let mut pipeline = RawArrayBuf::new();
        pipeline.push(rawdoc! {"$changeStream": change_stream});
        if let Some(filter) = opts.filter {
            pipeline.push(rawdoc! {"$match": filter});
        }
        let cmd = rawdoc! {
            "aggregate": opts.coll,
            "pipeline": pipeline,
            "cursor": {},
            "lsid": conn.lsid.clone(),
            "$db": opts.db,
        };
        let reply = conn
            .command(&cmd)
            .await
            .context("opening a change stream")?;
        let cursor_id = reply.get_document("cursor")?.get_i64("id")?;
        if cursor_id == 0 {
            bail!("the change stream's cursor closed at once");
        }
        Ok(ChangeStream {
            conn,
            cursor_id,
            coll: opts.coll.to_owned(),
            db: opts.db.to_owned(),
            max_await_ms: opts.max_await_ms,
            field: "firstBatch",
        })
    }

    /// Sends the next `getMore` (the server holds it up to `maxTimeMS` when nothing matches).
    pub async fn request(&mut self) -> Result<()> {
        let cmd = rawdoc! {
            "getMore": self.cursor_id,
            "collection": self.coll.as_str(),
            "maxTimeMS": self.max_await_ms,
            "lsid": self.conn.lsid.clone(),
            "$db": self.db.as_str(),
        };
        self.conn.send(&cmd).await
    }

    /// Reads the reply to the `getMore` sent by [`ChangeStream::request`].
    pub async fn read(&mut self) -> Result<()> {
        self.conn.recv().await?;
        let reply = self.conn.body()?;
        check_ok(reply).context("getMore on a change stream")?;
        let id = reply.get_document("cursor")?.get_i64("id")?;
        if id == 0 {
            bail!("the change stream ended (cursor id 0)");
        }
        self.cursor_id = id;
        self.field = "nextBatch";
        Ok(())
    }

    /// Bytes of the last reply frame.
    pub fn reply_len(&self) -> usize {
        self.conn.frame.len()
    }

    /// The events of the last reply, not decoded.
    pub fn batch(&self) -> Result<&RawArray> {
        Ok(self
            .conn
            .body()?
            .get_document("cursor")?
            .get_array(self.field)?)
    }
}

/// Whether a reply says `ok: 1` (a double, as mongod sends, or an integer).
pub fn is_ok(reply: &RawDocument) -> bool {
    match reply.get("ok") {
        Ok(Some(RawBsonRef::Double(f))) => f == 1.0,
        Ok(Some(v)) => number(Some(v)) == Some(1),
        _ => false,
    }
}

/// An error for a reply that is not `ok: 1`, with the server's code and message.
fn check_ok(reply: &RawDocument) -> Result<()> {
    if is_ok(reply) {
        return Ok(());
    }
    let code = number(reply.get("code").ok().flatten());
    let msg = reply.get_str("errmsg").unwrap_or("no errmsg");
    bail!("the server answered ok: 0 (code {code:?}): {msg}")
}

/// An integer field of any BSON number type.
pub fn number(v: Option<RawBsonRef<'_>>) -> Option<i64> {
    match v? {
        RawBsonRef::Int32(n) => Some(i64::from(n)),
        RawBsonRef::Int64(n) => Some(n),
        RawBsonRef::Double(f) if f.fract() == 0.0 => Some(f as i64),
        _ => None,
    }
}

/// The `seq` of an insert event's `fullDocument` (how the latency clients match an event
/// to the moment its write was sent), without decoding the rest of the event.
pub fn event_seq(event: RawBsonRef<'_>) -> Option<u64> {
    let RawBsonRef::Document(event) = event else {
        return None;
    };
    let full = event.get_document("fullDocument").ok()?;
    number(full.get("seq").ok()?).and_then(|n| u64::try_from(n).ok())
}
