//! Where `scripts/setup-clients` installs the clients and brokers linecut starts from other
//! projects (`target/clients/<name>/`), and how one is found: shared by the client programs
//! (`client::programs`) and the broker programs ([`crate::brokers`]).

use std::path::{Path, PathBuf};

/// The environment variable that names the one directory to find installed clients in.
pub const CLIENTS_DIR_ENV: &str = "LINECUT_CLIENTS_DIR";

/// The environment variable naming an installed program's directory (what it loads its library
/// from), given to the program.
pub const CLIENT_HOME_ENV: &str = "LINECUT_CLIENT_HOME";

/// Where `scripts/setup-clients` installs: `$LINECUT_CLIENTS_DIR` alone when it is set;
/// otherwise `target/clients/` of the checkout linecut runs from, found from the current
/// directory and from linecut's own binary.
pub fn clients_dirs() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os(CLIENTS_DIR_ENV) {
        return vec![PathBuf::from(d)];
    }
    let mut dirs = vec![PathBuf::from("target/clients")];
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/linecut, or target/debug/deps/<test binary>.
        for up in exe.ancestors().skip(1).take(3) {
            dirs.push(up.join("clients"));
        }
    }
    dirs
}

/// The first install holding `<dir>/<file>`, or every place looked at.
pub fn find(dir: &str, file: &str) -> Result<PathBuf, Looked> {
    let candidates: Vec<PathBuf> = clients_dirs()
        .iter()
        .map(|d| d.join(dir).join(file))
        .collect();
    match candidates.iter().find(|p| p.exists()) {
        Some(p) => Ok(p.clone()),
        None => Err(Looked(candidates)),
    }
}

/// The places an install was looked for, for an error message.
#[derive(Debug)]
pub struct Looked(pub Vec<PathBuf>);

impl std::fmt::Display for Looked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<String> = self.0.iter().map(|p| p.display().to_string()).collect();
        write!(f, "looked for {}", paths.join(", "))
    }
}

/// Finds `program` as a shell would (a path if it has a slash, else on `PATH`).
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.is_file()
            && p.metadata()
                .map(|m| m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// Runs a program to its end and returns what it printed (stdout, then stderr), or the last
/// line it printed when it failed.
pub fn command_output(
    program: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
) -> Result<String, String> {
    let out = std::process::Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(text.trim().lines().last().unwrap_or("failed").to_string())
    }
}

/// A program's source written to a temporary directory of its own, to ask it `--version`
/// before the run directory exists; removed when dropped.
pub(crate) struct TempScript {
    pub path: PathBuf,
}

impl Drop for TempScript {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Writes `source` as `file` into a fresh temporary directory named for this process and `tag`.
pub(crate) fn temp_script(
    tag: &str,
    file: &str,
    source: &str,
) -> Result<TempScript, crate::RunError> {
    let dir = std::env::temp_dir().join(format!(
        "linecut-version-check-{}-{tag}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(crate::io(format!("create {}", dir.display())))?;
    let path = dir.join(file);
    std::fs::write(&path, source).map_err(crate::io(format!("write {}", path.display())))?;
    Ok(TempScript { path })
}
