//! Every command the docs print runs as printed (the ones that can run offline):
//! `tests/doc_commands.py` extracts the shell blocks of README.md, every page of
//! docs/, CONTRIBUTING.md and BENCHMARKS.md and checks each command's program,
//! packages, binaries and flags.

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
    let checked = stdout
        .lines()
        .find_map(|l| l.strip_prefix("doc pages: "))
        .unwrap_or_default();
    let manual = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/docs")).unwrap();
    for page in manual {
        let name = page.unwrap().file_name().into_string().unwrap();
        assert!(
            checked.split(' ').any(|doc| doc == format!("docs/{name}")),
            "docs/{name} is not checked: {stdout}"
        );
    }
    for doc in ["README.md", "CONTRIBUTING.md", "BENCHMARKS.md"] {
        assert!(checked.split(' ').any(|d| d == doc), "{doc} is not checked: {stdout}");
    }
}

#[test]
fn the_readme_is_a_front_door_and_every_relative_link_in_the_docs_resolves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 300,
        "README.md has {} lines",
        readme.lines().count()
    );
    let mut pages = vec![
        root.join("README.md"),
        root.join("CONTRIBUTING.md"),
        root.join("BENCHMARKS.md"),
    ];
    pages.extend(std::fs::read_dir(root.join("docs")).unwrap().map(|e| e.unwrap().path()));
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in relative_links(&text) {
            let (file, _anchor) = link.split_once('#').unwrap_or((link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            assert!(target.exists(), "{}: link to {link} goes nowhere", page.display());
        }
    }
}

/// The targets of `[text](target)` links that are not URLs.
fn relative_links(markdown: &str) -> Vec<&str> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target))
        .filter(|target| !target.contains("://") && !target.starts_with("mailto:") && !target.contains(' '))
        .collect()
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
