//! Child processes and limits: free ports, finding executables, stopping servers, the
//! open-files limit, a process's resident memory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::process::{Pid, Signal};

/// A port nobody listens on right now (the kernel's pick for an ephemeral bind).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `name` itself if it has a slash, else the first executable of that name in `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    })
}

pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Stops a server: `signal` to `pid` (the real server when `child` is a wrapper such as
/// `runuser`) or to the child, up to 5 s for it to exit, then SIGKILL to both.
pub fn stop_child(child: &mut Child, server_pid: Option<(i32, Signal)>) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Some((pid, sig)) = server_pid.and_then(|(pid, sig)| Some((Pid::from_raw(pid)?, sig))) {
        let _ = rustix::process::kill_process(pid, sig);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether this process runs as root (PostgreSQL refuses to).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The resident set size of a process in KiB (`VmRSS` in `/proc/<pid>/status`, Linux).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading the server's /proc status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc status")
}

/// The uid and gid of a local user, from `/etc/passwd`.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != name {
            return None;
        }
        let _password = f.next()?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

/// CPU seconds (user + system) this process has used so far, from `/proc/self/stat`
/// (Linux, 100 clock ticks a second): how much of the machine the bench's own clients
/// took while a configuration ran.
pub fn own_cpu_secs() -> f64 {
    cpu_secs("/proc/self/stat").unwrap_or(0.0)
}

/// CPU seconds another process (a server the bench started) has used so far.
pub fn cpu_secs_of(pid: u32) -> Option<f64> {
    cpu_secs(&format!("/proc/{pid}/stat"))
}

fn cpu_secs(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some((ticks(11) + ticks(12)) as f64 / 100.0)
}
