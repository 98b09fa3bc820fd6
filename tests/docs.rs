//! Every command the docs print runs as printed (the ones that can run offline):
//! `tests/doc_commands.py` extracts the shell blocks of README.md and
//! BENCHMARKS.md and checks each command's program, packages, binaries and flags.

use std::process::Command;

#[test]
fn every_offline_command_in_the_docs_runs_as_printed() {
    let output = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/doc_commands.py"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("python3 runs tests/doc_commands.py (the test command needs Python 3.11)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("0 failed"), "{stdout}");
}

#[test]
fn the_check_catches_a_missing_bin_target_an_unknown_flag_and_a_placeholder_in_an_aws_command() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("broken.md");
    std::fs::write(
        &doc,
        "```sh\ncargo build --release --bin serverless-websockets -p bench\ncargo run -- local --no-such-flag\naws iot-data send-direct-message --client-id x --topic allowed/<clientId> --payload hi\n```\n",
    )
    .unwrap();
    let output = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/doc_commands.py"))
        .arg(&doc)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("3 failed"), "{stdout}");
    assert!(stdout.contains("<clientId> is a placeholder"), "{stdout}");
    assert!(
        stdout.contains("no bin target serverless-websockets in ['bench']"),
        "{stdout}"
    );
}
