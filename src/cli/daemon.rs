//! `eddy serve --fork`, as mongod's: the command returns once the server is ready for
//! connections, having printed the server's pid, and the server runs on, detached.
//!
//! mongod calls fork(2) before it starts any thread. Eddy does not fork a running process
//! (the workspace forbids unsafe code, and forking after threads exist is unsound); the parent
//! re-executes its own binary with the same arguments and an environment marker naming the
//! parent's pid. The child sees the marker, becomes a session leader (setsid: no controlling
//! terminal, so no SIGHUP when the terminal goes and no Ctrl-C from it), runs the server with
//! stdin and stderr on /dev/null, and writes `ready` on its stdout (a pipe to the parent) once
//! its listeners are bound; then its stdout, too, goes to /dev/null. The parent prints what
//! mongod prints and exits 0, or, when the pipe closes without `ready`, waits for the child
//! and exits with the child's exit code.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result};

/// Set in the child's environment to the parent's pid.
const CHILD_ENV: &str = "EDDY_FORK_PARENT";
/// The line the child writes once it accepts connections.
const READY: &str = "ready";

/// Whether this process is the server child of an `eddy serve --fork` (the marker names our
/// parent, so an inherited stale marker is not mistaken for one).
pub fn is_forked_child() -> bool {
    let Some(parent) = std::env::var(CHILD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return false;
    };
    rustix::process::getppid().is_some_and(|p| p.as_raw_pid() == parent)
}

/// The parent side: starts the child and waits until it is ready or has failed.
pub fn run_parent() -> ExitCode {
    println!("about to fork child process, waiting until server is ready for connections.");
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let arg0 = if args.is_empty() {
        OsString::from("eddy")
    } else {
        args.remove(0)
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            println!("ERROR: stage 1 fork() failed: {e}");
            return ExitCode::from(14);
        }
    };
    let spawned = Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env(CHILD_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            println!("ERROR: stage 1 fork() failed: {e}");
            return ExitCode::from(14);
        }
    };
    println!("forked process: {}", child.id());
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        // EOF (an empty line) when the child exits, or closes its stdout, before it is ready.
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let code = if line.trim_end() == READY {
        0
    } else {
        match child.wait() {
            Ok(status) => status.code().unwrap_or(51),
            Err(_) => 51,
        }
    };
    if code == 0 {
        println!("child process started successfully, parent exiting");
    } else {
        println!("ERROR: child process failed, exited with {code}");
        println!(
            "To see additional information in this output, start without the \"--fork\" option."
        );
    }
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The child side, before anything else: leaves the parent's session.
pub fn detach() -> Result<()> {
    rustix::process::setsid().context("setsid")?;
    Ok(())
}

/// Tells the waiting parent that the server is ready, then points stdout at /dev/null (the
/// parent stops reading; nothing else of ours writes to stdout).
pub fn signal_ready() -> Result<()> {
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY}").context("telling the parent the server is ready")?;
        out.flush()
            .context("telling the parent the server is ready")?;
    }
    let null = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    rustix::stdio::dup2_stdout(&null).context("redirecting stdout to /dev/null")?;
    Ok(())
}
