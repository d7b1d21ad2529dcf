//! Running `ip`: arguments never pass through a shell, batches go on stdin, and a failure says
//! which command and what it printed.

use crate::NetnsError;
use std::io::Write;
use std::process::{Command, Stdio};

/// The program namespace mode drives, and the Debian package that has it.
pub const IP: (&str, &str) = ("ip", "iproute2");

fn describe(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args…` with `stdin` as its input; its stdout on success.
pub fn run(
    (program, package): (&'static str, &'static str),
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, NetnsError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetnsError::Missing {
            program,
            package,
            source,
        })?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input
            .write_all(text.as_bytes())
            .map_err(|e| NetnsError::system(format!("writing to {program}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetnsError::system(format!("waiting for {program}"), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetnsError::Command {
            command: describe(program, args),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// `ip -batch -` with one command per line: one process for a whole topology.
pub fn ip_batch(lines: &[String]) -> Result<(), NetnsError> {
    if lines.is_empty() {
        return Ok(());
    }
    run(IP, &["-batch", "-"], Some(&(lines.join("\n") + "\n"))).map(drop)
}
