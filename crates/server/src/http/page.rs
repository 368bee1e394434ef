//! The live change-stream viewer served at `GET /`: an HTML page, its script and its
//! style sheet, compiled into the binary (no build step, nothing fetched from elsewhere).
//! The page opens `/v1/watch/...` with the browser's `EventSource`, which sends
//! `Last-Event-ID` when it reconnects, so a restarted server loses none of its events.

/// One static file.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_str!("page/index.html"),
};
const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("page/viewer.js"),
};
const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("page/viewer.css"),
};

/// The page's response headers: always revalidated (the files change with the binary),
/// and a content security policy that allows nothing but this origin.
pub const HEADERS: &str = "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n\
Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n";

/// The file at a path, if it is one of the page's.
pub fn asset(path: &[&str]) -> Option<&'static Asset> {
    match path {
        [] | ["index.html"] => Some(&INDEX),
        ["viewer.js"] => Some(&SCRIPT),
        ["viewer.css"] => Some(&STYLE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_its_own_files() {
        let index = asset(&[]).expect("index");
        assert!(index.body.contains("src=\"viewer.js\""));
        assert!(index.body.contains("href=\"viewer.css\""));
        // Nothing from another origin: the content security policy would block it anyway.
        for file in [INDEX.body, SCRIPT.body, STYLE.body] {
            assert!(!file.contains("http://") && !file.contains("https://"));
        }
        assert!(SCRIPT.body.contains("EventSource"));
        assert!(asset(&["viewer.js"]).is_some());
        assert!(asset(&["other.js"]).is_none());
    }
}
