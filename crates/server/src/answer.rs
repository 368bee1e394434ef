//! Answers written from outside the connection's task: a waiting change stream's
//! `getMore` answered by the thread that woke the stream.
//!
//! An event that concerns a thousand waiting streams has a thousand replies to write.
//! Waking each stream's task to read its batch, build its reply and write it runs
//! every connection's request machinery before the next reply can go; instead, the
//! stream waits by handing itself to the hub's dispatcher
//! (`crate::commands::change_stream`), and whoever wakes it reads its batch and writes
//! the reply straight to the socket, one stream after the other, as a pub/sub server
//! writes a message to each subscriber. The connection's task does the rest of the
//! request (the cursor's bookkeeping, the next read) afterwards.
//!
//! The connection decides which requests may be answered this way: before running one
//! it opens its [`Answer`] with the request's id and the socket; after the command it
//! closes it, and if a writer claimed it meanwhile, it writes nothing of its own (only
//! what the socket did not take from the writer). A writer that finds the answer
//! closed (a TLS connection, an exhaust or HTTP gateway request) gives its batch back
//! and the connection answers as always.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use eddy_wire::Compressor;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::command::ConnInfo;
use crate::cursor::{Batch, CursorBatch};
use crate::state::ServerState;

/// Replies written by the thread that woke their stream
/// (`serverStatus.metrics.changeStreams.answeredOnWake`).
pub static ANSWERED_ON_WAKE: AtomicU64 = AtomicU64::new(0);

/// The answer to a connection's current request, when another thread may write it.
#[derive(Default)]
pub struct Answer {
    slot: Mutex<Slot>,
    /// A claimed answer was written.
    written: Notify,
}

#[derive(Default)]
enum Slot {
    /// Only the connection answers.
    #[default]
    Closed,
    /// Another thread may answer the request `response_to` on `socket`.
    Open {
        response_to: i32,
        socket: Arc<TcpStream>,
        compressor: Option<Compressor>,
    },
    /// A writer is writing the answer.
    Claimed,
    /// The answer was written but for these bytes, which the socket did not take.
    Written(Vec<u8>),
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").finish_non_exhaustive()
    }
}

impl Answer {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection: the request `response_to` may be answered by another thread,
    /// on `socket`, compressed with `compressor`.
    pub fn open(&self, response_to: i32, socket: Arc<TcpStream>, compressor: Option<Compressor>) {
        *self.slot() = Slot::Open {
            response_to,
            socket,
            compressor,
        };
    }

    /// The connection, once the command returned: `None` if nobody answered for it (it
    /// writes its own reply), else the bytes of the written answer the socket did not
    /// take (the connection writes them and nothing else). Waits for a writer that is
    /// still writing.
    pub async fn close(&self) -> Option<Vec<u8>> {
        loop {
            let written = self.written.notified();
            {
                let mut slot = self.slot();
                match std::mem::take(&mut *slot) {
                    Slot::Closed | Slot::Open { .. } => return None,
                    Slot::Written(rest) => return Some(rest),
                    Slot::Claimed => *slot = Slot::Claimed,
                }
            }
            written.await;
        }
    }

    /// A writer: writes the frame `frame(response_to)` as the answer, if the answer is
    /// open; false otherwise (the connection answers). Never waits: what the socket
    /// does not take now is left to the connection.
    fn write(&self, state: &ServerState, frame: impl FnOnce(i32) -> Vec<u8>) -> bool {
        let (response_to, compressor) = match &*self.slot() {
            Slot::Open {
                response_to,
                compressor,
                ..
            } => (*response_to, *compressor),
            _ => return false,
        };
        let plain = frame(response_to);
        let plain_len = plain.len();
        let mut out = match compressor {
            None => plain,
            Some(c) => match eddy_wire::compress(&plain, c) {
                Ok(compressed) => compressed,
                // The connection's own write of this reply fails the same way and ends
                // the connection, as it should.
                Err(_) => return false,
            },
        };
        // Claimed only if still open for the same request (the connection may have
        // closed it: its command ended another way, e.g. killed).
        let socket = {
            let mut slot = self.slot();
            match &*slot {
                Slot::Open {
                    response_to: open,
                    socket,
                    ..
                } if *open == response_to => {
                    let socket = Arc::clone(socket);
                    *slot = Slot::Claimed;
                    socket
                }
                _ => return false,
            }
        };
        ANSWERED_ON_WAKE.fetch_add(1, Ordering::Relaxed);
        state.ops.network.wrote(plain_len, out.len(), compressor);
        let mut sent = 0;
        while sent < out.len() {
            match socket.try_write(&out[sent..]) {
                Ok(n) if n > 0 => sent += n,
                // Full, closed or failed: the connection writes the rest and learns why.
                _ => break,
            }
        }
        drop(socket);
        out.drain(..sent);
        *self.slot() = Slot::Written(out);
        self.written.notify_one();
        true
    }
}

/// Where a cursor's batch may be answered from outside the connection's task: the
/// connection and the cursor of the `getMore` that waits.
#[derive(Clone)]
pub struct ReplyTo {
    pub state: Arc<ServerState>,
    pub conn: Arc<ConnInfo>,
    pub cursor_id: i64,
    pub ns: String,
}

impl std::fmt::Debug for ReplyTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyTo")
            .field("connection", &self.conn.id)
            .field("cursor", &self.cursor_id)
            .finish_non_exhaustive()
    }
}

impl ReplyTo {
    /// Writes `batch` as the `getMore`'s reply, the same bytes the connection would
    /// write, if the connection lets another thread answer; false otherwise.
    pub fn send(&self, batch: &Batch) -> bool {
        self.conn.answer.write(&self.state, |response_to| {
            self.state.cursors.answered_early(self.cursor_id);
            let id = if batch.exhausted { 0 } else { self.cursor_id };
            let tail = CursorBatch::tail(batch.post_batch_resume_token.as_deref(), id, &self.ns);
            crate::dispatch::with_ok_body(&self.state, |body| {
                let request_id = crate::connection::next_request_id();
                crate::connection::splice(
                    request_id,
                    response_to,
                    0,
                    "nextBatch",
                    &batch.docs,
                    &tail,
                    body,
                )
            })
        })
    }
}
