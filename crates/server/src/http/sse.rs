//! Server-Sent Events framing (`text/event-stream`, the WHATWG HTML standard's "Server-sent
//! events"): pure formatting, no I/O.
//!
//! An event is a block of `field: value` lines ended by a blank line. `id:` sets the
//! `EventSource`'s last event id (sent back as `Last-Event-ID` when it reconnects), also
//! for an event it does not dispatch; `event:` names the event (listeners are per name;
//! without it the event is a `message`); each line of the data is one `data:` line.

/// Appends one event to `out`. A field value that would break the framing (a line break
/// in `id` or `event`, a NUL in `id`, which the standard ignores) is left out rather than
/// sent broken; the data is split into `data:` lines at its line breaks.
pub fn event(out: &mut Vec<u8>, id: Option<&str>, name: Option<&str>, data: &str) {
    let breaks = |s: &str| s.contains(['\r', '\n']);
    if let Some(id) = id.filter(|id| !breaks(id) && !id.contains('\0')) {
        field(out, "id", id);
    }
    if let Some(name) = name.filter(|n| !n.is_empty() && !breaks(n)) {
        field(out, "event", name);
    }
    for line in data.split('\n') {
        field(out, "data", line.strip_suffix('\r').unwrap_or(line));
    }
    out.push(b'\n');
}

/// Appends the reconnection delay an `EventSource` should use, in milliseconds.
pub fn retry(out: &mut Vec<u8>, millis: u64) {
    out.extend_from_slice(format!("retry: {millis}\n\n").as_bytes());
}

/// Appends a comment line (ignored by `EventSource`; keeps proxies from timing out).
pub fn comment(out: &mut Vec<u8>, text: &str) {
    for line in text.lines() {
        out.extend_from_slice(b": ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn events_have_id_name_and_data_lines() {
        assert_eq!(
            text(|o| event(o, Some("82ab"), Some("insert"), r#"{"a":1}"#)),
            "id: 82ab\nevent: insert\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            text(|o| event(o, None, None, "one\r\ntwo\nthree")),
            "data: one\ndata: two\ndata: three\n\n"
        );
    }

    #[test]
    fn values_that_would_break_the_framing_are_left_out() {
        assert_eq!(
            text(|o| event(o, Some("a\nb"), Some("x\ry"), "d")),
            "data: d\n\n"
        );
        assert_eq!(
            text(|o| event(o, Some("a\0"), Some(""), "d")),
            "data: d\n\n"
        );
    }

    #[test]
    fn retry_and_comments() {
        assert_eq!(text(|o| retry(o, 1000)), "retry: 1000\n\n");
        assert_eq!(text(|o| comment(o, "hi\nthere")), ": hi\n: there\n\n");
    }
}
