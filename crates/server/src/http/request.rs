//! A request head, as the HTTP port reads it: method, path segments, query parameters
//! (percent-decoded) and the few headers it acts on. Parsing is pure ([`Head::parse`]);
//! [`read_head`] gathers the bytes from the socket.

use std::time::Duration;

use percent_encoding::percent_decode_str;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest request head accepted (431 past it).
pub const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no request head could be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// Larger than [`MAX_HEAD`]: answered 431.
    #[error("request head larger than {MAX_HEAD} bytes")]
    TooLarge,
    /// Not HTTP/1.x, or a path or query that does not decode: answered 400.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The client went away or took too long: nothing to answer.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What the server acts on in a request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Head {
    pub method: String,
    /// The path's segments, percent-decoded (`/v1/watch/a%20b` is `["v1", "watch", "a b"]`;
    /// `/` is `[]`).
    pub segments: Vec<String>,
    /// The query's parameters in order, decoded as a form (`+` is a space).
    pub query: Vec<(String, String)>,
    /// `Authorization`.
    pub authorization: Option<String>,
    /// `Last-Event-ID`: what an `EventSource` sends when it reconnects.
    pub last_event_id: Option<String>,
}

impl Head {
    /// Parses a complete request head.
    pub fn parse(req: &httparse::Request<'_, '_>) -> Result<Head, HeadError> {
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(|v| v.trim().to_owned())
        };
        let target = req.path.unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if !path.starts_with('/') {
            return Err(HeadError::Malformed("the request target is not a path"));
        }
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| decode(s, false))
            .collect::<Result<Vec<_>, _>>()?;
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((decode(k, true)?, decode(v, true)?))
            })
            .collect::<Result<Vec<_>, HeadError>>()?;
        Ok(Head {
            method: req.method.unwrap_or_default().to_owned(),
            segments,
            query,
            authorization: header("authorization"),
            last_event_id: header("last-event-id").filter(|v| !v.is_empty()),
        })
    }

    /// The value of query parameter `name`, if given (the first, if given twice).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the path is exactly these segments.
    pub fn path_is(&self, path: &[&str]) -> bool {
        self.segments.len() == path.len() && self.segments.iter().zip(path).all(|(a, b)| a == b)
    }
}

/// Percent-decodes one path segment or query component (`form`: `+` is a space).
fn decode(raw: &str, form: bool) -> Result<String, HeadError> {
    let spaced;
    let raw = if form && raw.contains('+') {
        spaced = raw.replace('+', " ");
        spaced.as_str()
    } else {
        raw
    };
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| HeadError::Malformed("a path or query part is not UTF-8 once decoded"))
}

/// Reads a request head (bytes after it, a pipelined request's, are not read on purpose:
/// every response closes the connection).
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Head, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => return Head::parse(&req),
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(HeadError::Malformed("not an HTTP/1.x request head")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Head, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(raw.as_bytes()) {
            Ok(httparse::Status::Complete(_)) => Head::parse(&req),
            other => panic!("not a complete head: {other:?}"),
        }
    }

    #[test]
    fn segments_and_query_are_decoded() {
        let head = parse(
            "GET /v1/watch/my%20db/a.b%2Fc?match=%7B%22a%22%3A+1%7D&fullDocument=updateLookup&flag HTTP/1.1\r\n\
             Host: x\r\nLast-Event-ID:  8264ab \r\nAuthorization: Basic eDp5\r\n\r\n",
        )
        .expect("parses");
        assert_eq!(head.method, "GET");
        assert_eq!(head.segments, ["v1", "watch", "my db", "a.b/c"]);
        assert_eq!(head.param("match"), Some(r#"{"a": 1}"#));
        assert_eq!(head.param("fullDocument"), Some("updateLookup"));
        assert_eq!(head.param("flag"), Some(""));
        assert_eq!(head.param("pipeline"), None);
        assert_eq!(head.last_event_id.as_deref(), Some("8264ab"));
        assert_eq!(head.authorization.as_deref(), Some("Basic eDp5"));
        assert!(head.path_is(&["v1", "watch", "my db", "a.b/c"]));
    }

    #[test]
    fn the_root_has_no_segments() {
        let head = parse("GET / HTTP/1.1\r\n\r\n").expect("parses");
        assert!(head.segments.is_empty());
        assert!(head.path_is(&[]));
        let head = parse("GET /?a=1 HTTP/1.1\r\nLast-Event-ID: \r\n\r\n").expect("parses");
        assert!(head.path_is(&[]));
        assert_eq!(head.last_event_id, None);
    }

    #[test]
    fn undecodable_parts_are_refused() {
        assert!(matches!(
            parse("GET /v1/%ff HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("GET /?a=%c3%28 HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("GET * HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn heads_are_bounded() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let mut reader = &big[..];
        assert!(matches!(
            read_head(&mut reader).await,
            Err(HeadError::TooLarge)
        ));
        let mut reader = &b"GET / HTTP/1.1\r\n"[..];
        assert!(matches!(
            read_head(&mut reader).await,
            Err(HeadError::Io(_))
        ));
        let mut reader = &b"NOT HTTP\r\n\r\n"[..];
        assert!(matches!(
            read_head(&mut reader).await,
            Err(HeadError::Malformed(_))
        ));
    }
}
