//! Process limits shared by `eddy serve` and `eddy bench`.

use rustix::process::{Resource, Rlimit};

/// The open-files limit after raising the soft limit to the hard one: `(soft, hard)`.
/// Every connection is a file; children (the servers the bench starts) inherit the
/// raised limit.
pub fn raise_open_files_limit() -> (u64, Option<u64>) {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let _ = rustix::process::setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
    let now = rustix::process::getrlimit(Resource::Nofile);
    (now.current.unwrap_or(u64::MAX), now.maximum)
}
