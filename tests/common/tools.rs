//! Third-party tools the tests drive (moto, the AWS CLI, …). `tests/run.sh`
//! installs them into `.tools/`; a missing tool fails the test loudly.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Finds `name` in `$SW_TOOLS_BIN`, then `.tools/venv/bin`, then `$PATH`.
pub fn tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("SW_TOOLS_BIN") {
        dirs.push(dir.into());
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin"));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter().map(|dir| dir.join(name)).find(|candidate| candidate.is_file()).unwrap_or_else(|| {
        panic!("test tool `{name}` is not installed: run `tests/run.sh`, which installs the test tools into .tools/ (see README)")
    })
}

/// A `moto_server` on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Self {
        let mut child = Command::new(tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server starts");
        // Werkzeug prints "Running on http://127.0.0.1:PORT" once it listens.
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines.next().expect("moto_server exited before listening").unwrap();
            if let Some(at) = line.find("http://127.0.0.1:") {
                break line[at..].trim().to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, url }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
