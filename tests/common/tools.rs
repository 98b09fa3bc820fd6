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

/// `node_modules` with the Node test clients (MQTT.js), from `$SW_NODE_MODULES` or `.tools/node`.
pub fn node_modules() -> PathBuf {
    let dir = std::env::var_os("SW_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/node/node_modules"));
    assert!(
        dir.join("mqtt").is_dir(),
        "MQTT.js is not installed in {}: run `tests/run.sh`, which installs the test clients (see README)",
        dir.display()
    );
    dir
}

/// Runs the headless-Chromium script `tests/clients/<script>` with the
/// stack's ready file and `args` (in the modules [`browser_modules`] checks,
/// with the AWS CLI on hand), and returns the JSON summary its last line
/// prints; a failed script fails the test with its output.
pub async fn run_browser_script(
    stack: &serverless_websockets_local::stack::LocalStack,
    script: &str,
    args: &[&std::ffi::OsStr],
) -> serde_json::Value {
    let modules = browser_modules();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    stack.write_ready_file(&ready).unwrap();
    let mut command = Command::new(tool("node"));
    command
        .arg(format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR")))
        .arg(&ready)
        .args(args)
        .env("NODE_PATH", modules)
        .env("SW_TOOLS_BIN", tool("aws").parent().unwrap());
    // On a blocking thread: the stack serves on the test's runtime meanwhile.
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

/// The Node modules for the headless-Chromium scripts, after checking that
/// Debian's chromium and playwright-core are installed (fails loudly if not).
pub fn browser_modules() -> PathBuf {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    assert!(
        chromium.is_file(),
        "Debian's chromium is not installed: run `tests/run.sh`, which installs it (apt-get install chromium)"
    );
    let modules = node_modules();
    assert!(
        modules.join("playwright-core").is_dir(),
        "playwright-core is not installed in {}: run `tests/run.sh`",
        modules.display()
    );
    modules
}

/// A script whose stdout lines arrive on a channel; killed on drop.
pub struct Script {
    child: Option<Child>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Script {
    pub fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the script starts");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        Self {
            child: Some(child),
            lines,
            stderr,
        }
    }

    /// The next line that starts with `prefix`; panics with the script's stderr if
    /// it ends first or a `REFUSED` line comes.
    pub async fn expect_line(&mut self, prefix: &str) -> String {
        loop {
            let line = tokio::time::timeout(std::time::Duration::from_secs(20), self.lines.recv()).await;
            match line {
                Ok(Some(line)) if line.starts_with(prefix) => return line,
                Ok(Some(line)) if line.starts_with("REFUSED") => {
                    panic!("script refused: {line}\n{}", self.stderr.lock().unwrap())
                }
                Ok(Some(_)) => continue,
                Ok(None) => panic!("script ended before {prefix:?}:\n{}", self.stderr.lock().unwrap()),
                Err(_) => panic!("no {prefix:?} within 20 s:\n{}", self.stderr.lock().unwrap()),
            }
        }
    }

    /// Waits for the script to exit without blocking the async runtime, which
    /// may be serving the other end of the script's connections.
    pub async fn wait(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Points an AWS CLI (or any AWS SDK) process at explicit credentials only: no
/// profile files, no session token unless given.
pub fn aws_env<'c>(
    command: &'c mut Command,
    key: &str,
    secret: &str,
    token: Option<&str>,
    region: &str,
) -> &'c mut Command {
    command
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", region)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    match token {
        Some(token) => command.env("AWS_SESSION_TOKEN", token),
        None => command.env_remove("AWS_SESSION_TOKEN"),
    }
}

/// `aws secretsmanager ARGS` against moto; the JSON answer.
pub fn secretsmanager(moto: &Moto, args: &[&str]) -> serde_json::Value {
    let mut command = Command::new(tool("aws"));
    aws_env(&mut command, "AKIATESTTESTTESTTEST", "test", None, "us-east-1");
    let output = command
        .arg("secretsmanager")
        .args(args)
        .args(["--endpoint-url", &moto.url, "--output", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

/// `serverless-websockets serve` on a free port with AWS at moto and the given
/// settings; its log collected until [`ServeProcess::stop`].
pub struct ServeProcess {
    child: Child,
    pub url: String,
    start_up: String,
    log: std::thread::JoinHandle<String>,
}

impl ServeProcess {
    pub fn start(moto: &Moto, settings: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_serverless-websockets"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .env("AWS_ENDPOINT_URL_STS", &moto.url)
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto.url)
            // The ban policy (iam:GetRolePolicy): moto has no such role, so no bans.
            .env("AWS_ENDPOINT_URL_IAM", &moto.url)
            .env("AWS_ACCESS_KEY_ID", "AKIATESTTESTTESTTEST")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:role/ClientRole")
            .env("IOT_ENDPOINT", "abc-ats.iot.us-east-1.amazonaws.com")
            .envs(settings.iter().copied())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut start_up = String::new();
        let url = loop {
            let line = lines.next().expect("serve exited before listening").unwrap();
            start_up.push_str(&line);
            start_up.push('\n');
            if let Some(at) = line.find("http://") {
                break line[at..].trim().to_owned();
            }
        };
        let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
        Self {
            child,
            url,
            start_up,
            log,
        }
    }

    /// SIGTERM, wait for the graceful exit (status 0), and the whole log.
    pub fn stop(mut self) -> String {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        let log = self.start_up + &self.log.join().unwrap();
        assert!(status.success(), "graceful shutdown exits 0, got {status}: {log}");
        log
    }
}

/// `cargo lambda watch` serving a crate's functions behind the real Lambda
/// Invoke API; killed on drop. Its log (its own and the functions') is kept and
/// printed if the test is failing, so a lost invocation says why.
pub struct Watch {
    child: Child,
    log: Log,
}

/// A child's output, appended to by the threads that drain its pipes.
type Log = std::sync::Arc<std::sync::Mutex<String>>;

fn append(log: &Log, line: &str) {
    let mut log = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    log.push_str(line);
    log.push('\n');
}

fn text(log: &Log) -> String {
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- cargo lambda watch's log ---\n{}--- end of its log ---",
                text(&self.log)
            );
        }
    }
}

/// Sends the local stack's warnings (or what `RUST_LOG` asks for) to the test's
/// output, which the harness prints when the test fails: a failed rule action
/// says why there. Once per test binary; later calls do nothing.
pub fn log_to_test_output() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_test_writer()
        .try_init();
}

/// Appends each line of `lines` to `log` on a thread of its own, to the end.
fn keep_lines(lines: impl Iterator<Item = std::io::Result<String>> + Send + 'static, log: &Log) {
    let log = log.clone();
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| append(&log, &line)));
}

/// A port nobody listens on now. `cargo lambda watch` takes `-P 0` as its
/// default 9000, so the port is picked here (released just before it binds).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Builds a crate's binaries as `cargo lambda watch` runs them (`cargo run`),
/// so the first invocation does not wait for a compile.
pub fn build_bins(package: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "-p", package, "--bins"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "{package} builds");
}

impl Watch {
    /// Starts `cargo lambda watch -p PACKAGE` on `port` with `env` (and no AWS
    /// profile files); returns once it serves.
    pub fn start(package: &str, port: u16, env: &[(&str, &str)]) -> Self {
        log_to_test_output();
        let mut command = Command::new(tool("cargo-lambda"));
        command
            .args([
                "lambda",
                "watch",
                "-p",
                package,
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .envs(env.iter().copied())
            // Its log and the functions' are on stdout; cargo's build output on stderr.
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("cargo lambda watch starts");
        let log = Log::default();
        // Both pipes are drained to the end, so it never blocks on a full one.
        keep_lines(BufReader::new(child.stderr.take().expect("piped")).lines(), &log);
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("starting Runtime server") => break,
                Some(Ok(line)) => append(&log, &line),
                _ => panic!("cargo lambda watch ended before serving:\n{}", text(&log)),
            }
        }
        keep_lines(lines, &log);
        Self { child, log }
    }
}

/// `command` with the stack admin's AWS credentials and region (and no profile files).
pub fn as_admin<'c>(
    command: &'c mut Command,
    stack: &serverless_websockets_local::stack::LocalStack,
) -> &'c mut Command {
    let info = stack.info();
    aws_env(
        command,
        &info.admin.access_key_id,
        &info.admin.secret_access_key,
        None,
        &info.region,
    )
}

/// `aws iot ARGS --endpoint-url <control plane>` as the stack's admin: exit
/// status, stdout as JSON (`null` when it is not), stderr.
pub fn aws_iot(
    stack: &serverless_websockets_local::stack::LocalStack,
    args: &[&str],
) -> (bool, serde_json::Value, String) {
    aws_admin(stack, "iot", &stack.info().iot_control_endpoint, args)
}

/// `aws SERVICE ARGS --endpoint-url ENDPOINT` as the stack's admin (trusting
/// the stack's CA with `--tls`): exit status, stdout as JSON, stderr.
pub fn aws_admin(
    stack: &serverless_websockets_local::stack::LocalStack,
    service: &str,
    endpoint: &str,
    args: &[&str],
) -> (bool, serde_json::Value, String) {
    let info = stack.info();
    let mut command = Command::new(tool("aws"));
    command.arg(service).args(args).args(["--endpoint-url", endpoint]);
    if let Some(ca) = &info.ca_cert {
        command.args(["--ca-bundle", ca]);
    }
    let output = as_admin(&mut command, stack).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    (
        output.status.success(),
        serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
