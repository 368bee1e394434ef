//! The `eddy` command line: `serve`, `watch`, `demo`.
//!
//! Each subcommand lives in its own module; shared pieces are the Extended JSON printer
//! (`output`), the checkpoint file (`checkpoint`), reconnect backoff (`backoff`), signal
//! handling (`signal`), log output (`logging`) and `serve --fork` (`daemon`).

pub mod backoff;
pub mod checkpoint;
pub mod daemon;
pub mod demo;
pub mod logging;
pub mod output;
pub mod serve;
pub mod signal;
pub mod watch;
