//! One client connection: owns the socket, frames messages with the codec, runs each
//! command through the dispatcher and writes the reply.
//!
//! A frame the codec rejects is answered with mongod's error when mongod would answer
//! it (a bad section kind, invalid BSON: the codec decides, [`WireError::answer_or_close`])
//! and otherwise closes the connection; either way a line is logged and the server itself
//! is never affected. Requests on one connection are answered in order, one at a time, as
//! the protocol requires.
//!
//! A request that came as OP_COMPRESSED is answered compressed with the same compressor
//! (as mongod), unless it is one of the commands the compression spec never compresses
//! ([`NEVER_COMPRESSED`]); which compressors are accepted is the server's
//! `--networkMessageCompressors`, negotiated by `hello` (`crate::commands::hello`).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf};
use eddy_codes::{ErrorCode, MongoError};
use eddy_wire::{flags, AnswerOrClose, Compressor, Header, OpMsg, OpQuery, Request, WireError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::Socket;

use crate::command::{ConnInfo, Reply};
use crate::commands::Stream;
use crate::cursor::BatchDoc;
use crate::dispatch::{self, Outcome};
use crate::state::ServerState;

/// Request ids of the server's own messages.
static NEXT_REQUEST_ID: AtomicI32 = AtomicI32::new(1);

pub(crate) fn next_request_id() -> i32 {
    NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed)
}

/// Why a connection ended (or left this runtime).
#[derive(Debug)]
enum Closed {
    /// It waits on a change stream now: the deliveries runtime serves it from here on.
    AwaitsData,
    /// The client hung up.
    Eof,
    /// A failpoint asked for it.
    Requested,
    Io(std::io::Error),
    Protocol(WireError),
}

/// Counts an open connection, and lists it for `$currentOp`, for as long as it lives,
/// on whichever runtime.
pub struct Counted(Arc<ServerState>, i64);

impl Counted {
    /// Counts one more open connection (`serverStatus.connections.current`).
    pub fn new(state: Arc<ServerState>, conn: &Arc<ConnInfo>) -> Counted {
        state.connections_current.fetch_add(1, Ordering::Relaxed);
        state.ops.connected(conn);
        Counted(state, conn.id)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections_current.fetch_sub(1, Ordering::Relaxed);
        self.0.ops.disconnected(self.1);
    }
}

/// How a connection is secured: the server's TLS mode and acceptor (`None`: plain).
pub type Tls = Option<(crate::tls::TlsMode, tokio_rustls::TlsAcceptor)>;

/// Serves one connection until it closes, or until it waits on a change stream: a
/// plain one then moves to the deliveries runtime (`crate::deliveries`) with what it
/// has read (a TLS session stays where it was established).
pub async fn serve(
    state: Arc<ServerState>,
    stream: TcpStream,
    tls: Tls,
    conn: Arc<ConnInfo>,
    counted: Counted,
) {
    let _ = stream.set_nodelay(true);
    let (mode, acceptor) = match &tls {
        Some((mode, acceptor)) => (*mode, Some(acceptor)),
        None => (crate::tls::TlsMode::Disabled, None),
    };
    let mut socket = match crate::tls::establish(stream, mode, acceptor).await {
        Ok(socket) => socket,
        Err(e) => {
            tracing::info!(connection = conn.id, peer = %conn.peer, error = %e, "connection refused during the TLS handshake");
            return;
        }
    };
    let mut buf = Vec::new();
    let closed = match run(&state, &mut socket, &conn, &mut buf, false).await {
        Closed::AwaitsData => match socket {
            Socket::Plain(stream) => match stream.into_inner().map(TcpStream::into_std) {
                Err(_) => Closed::Io(std::io::Error::other(
                    "the socket is still shared between two requests",
                )),
                Ok(Err(e)) => Closed::Io(e),
                Ok(Ok(std)) => {
                    let deliveries = Arc::clone(&state);
                    let moved = deliveries.deliveries.spawn(async move {
                        match TcpStream::from_std(std) {
                            Ok(stream) => {
                                let mut socket = Socket::Plain(crate::tls::SharedTcp::new(stream));
                                let closed = run(&state, &mut socket, &conn, &mut buf, true).await;
                                ended(&conn, closed);
                            }
                            Err(e) => ended(&conn, Closed::Io(e)),
                        }
                        drop(counted);
                    });
                    // Without a deliveries runtime the connection goes on here.
                    if let Err(here) = moved {
                        here.await;
                    }
                    return;
                }
            },
            mut secured => run(&state, &mut secured, &conn, &mut buf, true).await,
        },
        closed => closed,
    };
    ended(&conn, closed);
}

fn ended(conn: &ConnInfo, closed: Closed) {
    match closed {
        Closed::AwaitsData => {}
        Closed::Eof | Closed::Requested => {
            tracing::debug!(connection = conn.id, peer = %conn.peer, "connection closed")
        }
        Closed::Io(e) => {
            tracing::debug!(connection = conn.id, peer = %conn.peer, error = %e, "connection ended")
        }
        Closed::Protocol(e) => {
            tracing::warn!(connection = conn.id, peer = %conn.peer, error = %e, "malformed message; closing the connection")
        }
    }
}

/// The most a connection reads at a time: a frame announcing more grows its buffer
/// only as its bytes arrive.
const READ_CHUNK: usize = 64 * 1024;
/// What a connection reads into when it knows nothing of the next frame.
const SMALL_READ: usize = 1024;

/// Serves requests; `delivering`: this is the deliveries runtime already.
async fn run(
    state: &Arc<ServerState>,
    stream: &mut Socket,
    conn: &Arc<ConnInfo>,
    buf: &mut Vec<u8>,
    delivering: bool,
) -> Closed {
    // Empty while the connection is idle (a client waiting for a change stream's
    // getMore holds no buffer here): memory follows the bytes in flight.
    loop {
        if !delivering && conn.awaits_data.load(Ordering::Relaxed) {
            return Closed::AwaitsData;
        }
        // Read until one whole frame is buffered.
        let header = loop {
            let wanted = match eddy_wire::peek_header(buf) {
                Ok(Some(h)) if buf.len() >= h.length as usize => break h,
                Ok(Some(h)) => (h.length as usize - buf.len()).min(READ_CHUNK),
                Ok(None) => SMALL_READ,
                Err(e) => return Closed::Protocol(e),
            };
            buf.reserve(wanted);
            match stream.read_buf(buf).await {
                Ok(0) => return Closed::Eof,
                Ok(_) => {}
                Err(e) => return Closed::Io(e),
            }
        };
        let len = header.length as usize;
        // An OP_COMPRESSED is unwrapped first, with the compressors this server has; a
        // failure there ends the connection, as mongod ends the session.
        let decoded = eddy_wire::decompress(&buf[..len], state.config.compressors).map(|u| {
            state.ops.network.read(len, u.frame.len(), u.compressor);
            let header = eddy_wire::peek_header(&u.frame).ok().flatten();
            (eddy_wire::decode(&u.frame), u.compressor, header)
        });
        buf.drain(..len);
        if buf.is_empty() {
            // Give a large request's buffer back instead of keeping it while idle.
            *buf = Vec::new();
        }
        let (request, compressor, header) = match decoded {
            Ok((request, compressor, inner)) => (request, compressor, inner.unwrap_or(header)),
            Err(e) => return Closed::Protocol(e),
        };
        let request = match request {
            Ok(r) => r,
            Err(e) if e.answer_or_close(header.op_code) == AnswerOrClose::Answer => {
                tracing::warn!(connection = conn.id, peer = %conn.peer, error = %e, "malformed message; answered with an error");
                let reply =
                    dispatch::error_reply(state, &MongoError::location(e.code(), e.to_string()));
                let bytes =
                    eddy_wire::encode_msg_raw(next_request_id(), header.request_id, 0, &reply);
                if let Err(closed) = write(state, stream, &bytes, compressor).await {
                    return closed;
                }
                continue;
            }
            Err(e) => return Closed::Protocol(e),
        };
        let result = match request {
            Request::Msg(header, msg) => on_msg(state, stream, conn, header, msg, compressor).await,
            Request::Query(header, query) => {
                on_query(state, stream, conn, header, query, compressor).await
            }
        };
        if let Err(closed) = result {
            return closed;
        }
    }
}

/// Writes a reply frame, compressed with `compressor` if the request came compressed
/// (mongod answers with the request's compressor; a reply that cannot be compressed
/// ends the connection, as in mongod).
async fn write(
    state: &ServerState,
    stream: &mut Socket,
    bytes: &[u8],
    compressor: Option<Compressor>,
) -> Result<(), Closed> {
    let compressed;
    let out = match compressor {
        None => bytes,
        Some(c) => {
            compressed = eddy_wire::compress(bytes, c).map_err(Closed::Protocol)?;
            &compressed[..]
        }
    };
    state.ops.network.wrote(bytes.len(), out.len(), compressor);
    stream.write_all(out).await.map_err(Closed::Io)
}

/// The commands whose messages the compression spec says are never compressed: the
/// handshake and authentication. A client compresses none of them; should one arrive
/// compressed anyway, its reply still goes out plain.
const NEVER_COMPRESSED: [&str; 12] = [
    "hello",
    "isMaster",
    "ismaster",
    "saslStart",
    "saslContinue",
    "getnonce",
    "authenticate",
    "createUser",
    "updateUser",
    "copydbSaslStart",
    "copydbgetnonce",
    "copydb",
];

/// The compressor of the reply to `command`, which came with `compressor`.
fn reply_compressor(compressor: Option<Compressor>, command: &str) -> Option<Compressor> {
    compressor.filter(|_| !NEVER_COMPRESSED.contains(&command))
}

/// The cursor id and batch length of a `getMore` reply, for exhaust streaming.
fn cursor_progress(reply: &Reply) -> Option<(i64, usize)> {
    let cursor = reply.cursor.as_ref()?;
    (cursor.batch_field == "nextBatch").then(|| (cursor.id(), cursor.docs.len()))
}

/// The frame of a reply; a cursor's documents are spliced in as they are.
fn frame(request_id: i32, response_to: i32, flags: u32, reply: &Reply) -> Vec<u8> {
    match &reply.cursor {
        None => eddy_wire::encode_msg_raw(request_id, response_to, flags, &reply.body),
        Some(cursor) => splice(
            request_id,
            response_to,
            flags,
            cursor.batch_field,
            &cursor.docs,
            &cursor.tail,
            &reply.body,
        ),
    }
}

/// The frame of a cursor reply, its documents spliced in as they are; also written by
/// a thread that answers for the connection (`crate::answer`).
pub(crate) fn splice(
    request_id: i32,
    response_to: i32,
    flags: u32,
    batch_field: &str,
    docs: &[BatchDoc],
    tail: &bson::RawDocument,
    body: &bson::RawDocument,
) -> Vec<u8> {
    let docs: Vec<&bson::RawDocument> = docs.iter().map(BatchDoc::raw).collect();
    let splice = eddy_wire::CursorSplice {
        batch_field,
        docs: &docs,
        tail,
    };
    eddy_wire::encode_msg_cursor(request_id, response_to, flags, &splice, body)
}

async fn on_msg(
    state: &Arc<ServerState>,
    stream: &mut Socket,
    conn: &Arc<ConnInfo>,
    header: Header,
    msg: OpMsg,
    compressor: Option<Compressor>,
) -> Result<(), Closed> {
    let more_to_come = msg.more_to_come();
    let exhaust = msg.exhaust_allowed();
    let cmd = match msg.into_command() {
        Ok(cmd) => cmd,
        Err(e) => {
            let err = MongoError::location(e.code(), e.to_string());
            if !more_to_come {
                let reply = dispatch::error_reply(state, &err);
                write(
                    state,
                    stream,
                    &eddy_wire::encode_msg_raw(next_request_id(), header.request_id, 0, &reply),
                    compressor,
                )
                .await?;
            }
            return Ok(());
        }
    };
    let compressor = reply_compressor(
        compressor,
        cmd.keys().next().map(String::as_str).unwrap_or_default(),
    );
    // Only a request flagged `exhaustAllowed` may be answered more than once: what the
    // command does then is an attribute of its table entry.
    let streaming = match exhaust {
        true => {
            let name = cmd.keys().next().map(String::as_str).unwrap_or_default();
            crate::commands::lookup(name, state.config.enable_test_commands)
                .map_or(Stream::No, |entry| entry.stream)
        }
        false => Stream::No,
    };
    let streams_batches = streaming == Stream::CursorBatches;
    // An awaitable hello with `exhaustAllowed` is answered again after each
    // `maxAwaitTimeMS`, without further requests (the streaming monitoring protocol).
    let streams_hello =
        streaming == Stream::AwaitableHello && crate::commands::hello::is_awaitable(&cmd);
    let mut response_to = header.request_id;
    // Only an exhaust stream runs its command more than once: keep a copy for it alone
    // (an insert's documents are not copied for nothing).
    let again = streams_batches || streams_hello;
    // A plain getMore answered once may be answered by the thread that wakes its change
    // stream (`crate::answer`).
    let answerable = match stream.shared() {
        Some(socket)
            if !again && !more_to_come && cmd.keys().next().is_some_and(|k| k == "getMore") =>
        {
            conn.answer
                .open(response_to, Arc::clone(socket), compressor);
            true
        }
        _ => false,
    };
    let mut cmd = Some(cmd);
    loop {
        let Some(this) = (if again { cmd.clone() } else { cmd.take() }) else {
            return Ok(());
        };
        let Outcome { reply, close } = dispatch::execute(state, conn, this, None).await;
        if answerable {
            if let Some(rest) = conn.answer.close().await {
                // Answered already: only what the socket did not take is left to write.
                stream.write_all(&rest).await.map_err(Closed::Io)?;
                return if close {
                    Err(Closed::Requested)
                } else {
                    Ok(())
                };
            }
        }
        if close {
            return Err(Closed::Requested);
        }
        if more_to_come {
            // The client asked for no answer (unacknowledged writes, Node's endSessions).
            return Ok(());
        }
        // Exhaust getMore: keep sending batches, each flagged moreToCome, until the cursor
        // is exhausted (or a batch comes back empty: an awaitData cursor would spin).
        // Exhaust hello: keep answering until an answer is an error or the client is gone
        // (the write fails).
        let stream_more = (streams_batches
            && cursor_progress(&reply).is_some_and(|(id, n)| id != 0 && n > 0))
            || (streams_hello && reply_ok(&reply.body));
        let request_id = next_request_id();
        let flag = if stream_more { flags::MORE_TO_COME } else { 0 };
        write(
            state,
            stream,
            &frame(request_id, response_to, flag, &reply),
            compressor,
        )
        .await?;
        if !stream_more {
            return Ok(());
        }
        response_to = request_id;
    }
}

/// Whether a reply says `ok: 1`.
fn reply_ok(reply: &RawDocumentBuf) -> bool {
    match reply.get("ok") {
        Ok(Some(bson::RawBsonRef::Double(ok))) => ok == 1.0,
        Ok(Some(bson::RawBsonRef::Int32(ok))) => ok == 1,
        _ => false,
    }
}

/// The legacy OP_QUERY: mongod 6.0+ answers only the handshake through it.
async fn on_query(
    state: &Arc<ServerState>,
    stream: &mut Socket,
    conn: &Arc<ConnInfo>,
    header: Header,
    query: OpQuery,
    compressor: Option<Compressor>,
) -> Result<(), Closed> {
    let name = match query
        .query
        .get("$query")
        .or_else(|| query.query.get("query"))
    {
        Some(Bson::Document(inner)) => inner.keys().next(),
        _ => query.query.keys().next(),
    };
    let compressor = reply_compressor(compressor, name.map(String::as_str).unwrap_or_default());
    let reply_doc = match legacy_command(&query) {
        Ok((db, cmd)) => {
            let Outcome { reply, close } = dispatch::execute(state, conn, cmd, Some(&db)).await;
            if close {
                return Err(Closed::Requested);
            }
            Document::try_from(reply.to_raw()).unwrap_or_default()
        }
        Err(err) => {
            let mut d = bson::doc! {"$err": err.message.clone(), "code": err.code};
            d.insert("ok", 0.0);
            d
        }
    };
    let bytes = eddy_wire::encode_reply(next_request_id(), header.request_id, 0, &[reply_doc])
        .map_err(Closed::Protocol)?;
    write(state, stream, &bytes, compressor).await
}

/// The database and command of an OP_QUERY on `<db>.$cmd`, unwrapping `$query`.
fn legacy_command(query: &OpQuery) -> Result<(String, Document), MongoError> {
    let unsupported = |what: &str| {
        MongoError::new(
            ErrorCode::UnsupportedOpQueryCommand,
            format!("Unsupported OP_QUERY command: {what}. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal"),
        )
    };
    let Some(db) = query.full_collection_name.strip_suffix(".$cmd") else {
        return Err(unsupported("find"));
    };
    let cmd = match query
        .query
        .get("$query")
        .or_else(|| query.query.get("query"))
    {
        Some(Bson::Document(inner)) => inner.clone(),
        _ => query.query.clone(),
    };
    let name = cmd.keys().next().cloned().unwrap_or_default();
    // Test commands are never answered here: whether they are enabled does not matter.
    if !crate::commands::lookup(&name, false).is_some_and(|entry| entry.op_query) {
        return Err(unsupported(&name));
    }
    Ok((db.to_owned(), cmd))
}
