//! Child processes: a guard that stops a long-running process by pid when it
//! is dropped, and `run`, which runs a command to completion with a deadline.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Owns a started child process. Dropping it sends SIGKILL to the pid and
/// reaps the child, so a panicking test never leaks it.
pub struct Proc {
    name: String,
    child: Option<Child>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd`; panics (naming `name`) if it cannot be started.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            status: None,
        }
    }

    /// Takes ownership of an already spawned child.
    pub fn from_child(name: &str, child: Child) -> Proc {
        Proc {
            name: name.to_string(),
            child: Some(child),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Gives access to the child, e.g. to take its stdout pipe.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// The exit status if the process has exited (reaping it), else `None`.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.status = Some(status);
                }
            }
        }
        self.status
    }

    /// SIGKILL by pid, then wait for the child. Safe to call more than once.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        if let Some(mut child) = self.child.take() {
            // std does not signal a child it has already reaped, so the pid
            // cannot belong to another process here.
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                self.status.get_or_insert(status);
            }
        }
        self.status
    }

    /// SIGTERM by pid; waits up to `grace` for the process to exit, then
    /// SIGKILL. Returns the exit status and whether it exited on SIGTERM.
    pub fn terminate(&mut self, grace: Duration) -> (Option<ExitStatus>, bool) {
        if self.try_exit_status().is_some() {
            return (self.kill9(), true);
        }
        let pid = self.pid() as libc::pid_t;
        if pid > 0 {
            // SAFETY: kill(2) with a pid we own and have not reaped (checked
            // just above); it touches no memory.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.try_exit_status().is_some() {
                return (self.kill9(), true);
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{} (pid {pid}) did not exit within {grace:?} of SIGTERM; sending SIGKILL",
            self.name
        );
        (self.kill9(), false)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `cmd` to completion with stdin closed and stdout/stderr captured. If
/// it runs longer than `timeout` it is killed by pid and the test panics.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    run_to_end(cmd, None, timeout)
}

/// Like [`run`], but writes `input` to the command's stdin (then closes it)
/// instead of giving it a closed stdin, e.g. for `--password-stdin`.
pub fn run_with_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> Output {
    run_to_end(cmd, Some(input), timeout)
}

/// [`run`] (`input` is `None`) or [`run_with_input`].
fn run_to_end(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    use std::io::Write;
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut proc = Proc::spawn(&what, cmd);
    let child = proc.child_mut().expect("just spawned");
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        // A writer thread, so a command that does not read cannot block us.
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }

    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = proc.try_exit_status() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    proc.kill9();
    // A grandchild could keep a pipe open; do not wait for it forever.
    let stdout = stdout
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    let stderr = stderr
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "command did not finish within {timeout:?} and was killed: {what}\n\
             --- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Like [`run`], but panics with the command's output unless it exits 0.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let out = run(cmd, timeout);
    if !out.status.success() {
        panic!(
            "command failed ({}): {what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// A command's exit status, stdout and stderr, for failure messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Only for external
/// programs that cannot bind port 0 and report it; callers must retry if the
/// port is taken by the time the program binds it.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}
