"""Every shell command in the docs, checked offline.

Reads the ```sh blocks of the docs, joins continued lines, and checks each command
that can be checked without AWS or a running stack:

- `cargo run [-q] [-p PKG] -- ARGS`: the program is run with ARGS and `--help`, so
  its argument parser accepts every flag and subcommand as printed;
- `target/<profile>/<binary> ARGS`: the same, through `cargo run`;
- `cargo build …`: every `-p` package and `--bin` target exists in the workspace;
- scripts (`tests/run.sh`, `fuzz/run.sh`, `cloudformation/deploy.sh SUB`): the file
  exists and is executable, and the subcommand is one the script has.

- `aws iot-data|iot|sts|logs|cloudwatch|lambda …` (also as `.tools/…/bin/aws`): the AWS CLI v1 the
  tests install parses the command with `--generate-cli-skeleton` added, which
  checks the operation and every option without sending anything (lines for the
  CLI v2 only, with `--cli-binary-format`, are not checked).

Commands that need a running local stack, AWS or a browser (`curl`, other `aws`
commands, `node`, …) are listed as not checked. Exit status 1 if any checked
command fails.
Usage: python3 tests/doc_commands.py [DOC ...]
"""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "CONTRIBUTING.md", "BENCHMARKS.md", "bench/investigations.md", "web/README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
# Programs whose commands need the network, AWS, a running stack or a shell session.
NOT_OFFLINE = {
    "curl", "aws", "node", "python3", "sudo", "export", "cd", "echo", "cat", "kill",
    "wasm-pack", "npm", "npx", "pip", "docker",
}
DEPLOY_SUBCOMMANDS = {"build", "deploy", "smoke", "destroy"}


def shell_blocks(text):
    return re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S)


def commands(block):
    """Logical command lines: continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # `$(...)` substitutions are commands too.
        for inner in re.findall(r"\$\(([^()]*)\)", line):
            yield inner.strip(), inner.strip()
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            yield line, line
            continue
        # Leading VAR=value assignments only set the environment.
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words.pop(0)
        if words:
            yield shlex.join(words), line


def workspace():
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    )
    packages = {}
    for package in metadata["packages"]:
        packages[package["name"]] = {t["name"] for t in package["targets"] if "bin" in t["kind"]}
    return packages


def run_help(package, args):
    command = ["cargo", "run", "-q", "--offline"]
    if package:
        command += ["-p", package]
    command += ["--"] + args + ["--help"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        return f"`{shlex.join(command)}` exited {result.returncode}: {result.stderr.strip()[-400:]}"
    return None


def aws_cli():
    """The AWS CLI v1 the tests install; a missing one fails loudly."""
    for directory in (os.environ.get("SW_TOOLS_BIN"), str(ROOT / ".tools/venv/bin")):
        if directory and os.access(os.path.join(directory, "aws"), os.X_OK):
            return os.path.join(directory, "aws")
    raise SystemExit("doc_commands: the AWS CLI is not installed: run tests/run.sh, which installs it into .tools/venv")


def check_aws(words):
    """Parses an `aws SERVICE OPERATION …` line with the real CLI, offline."""
    if "--cli-binary-format" in words:
        return ("skip", "an AWS CLI v2 command")
    if len(words) < 3 or words[1] not in ("iot-data", "iot", "sts", "logs", "cloudwatch", "lambda"):
        return ("skip", "aws: needs a running stack or AWS")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    result = subprocess.run([aws_cli()] + words[1:] + ["--generate-cli-skeleton"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=env)
    if result.returncode != 0:
        return f"the AWS CLI does not accept it: {result.stderr.strip()[-300:]}"
    return None


def placeholder(line):
    """An unquoted `<name>`: the shell reads it as a redirection, not a value."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    tokens = list(lexer)
    for before, name, after in zip(tokens, tokens[1:], tokens[2:]):
        if before == "<" and after.startswith(">") and re.match(r"^[\w .-]+$", name):
            return f"<{name}> is a placeholder the shell reads as a redirection: use a variable"
    return None


def check(line, packages, raw=None):
    """None if fine, a string if not, or ("skip", reason)."""
    words = shlex.split(line)
    program = words[0]
    # Every command, checked or not: a <placeholder> never runs as printed.
    problem = placeholder(raw or line)
    if problem:
        return problem
    if program == "aws" or re.match(r"^\.tools/[\w-]+/bin/aws$", program):
        return check_aws(words)
    if program == "cargo" and len(words) > 1 and words[1] == "run":
        args = words[2:]
        package, rest = None, []
        while args and args[0] != "--":
            word = args.pop(0)
            if word == "-p":
                package = args.pop(0)
            elif word in ("-q", "--release", "--locked"):
                pass
            else:
                rest.append(word)
        if rest:
            return f"unexpected cargo flags {rest}"
        if package and package not in packages:
            return f"no package {package}"
        return run_help(package, args[1:])
    if program == "cargo" and len(words) > 1 and words[1] == "build":
        args = words[2:]
        selected = []
        bins = []
        while args:
            word = args.pop(0)
            if word == "-p":
                selected.append(args.pop(0))
            elif word == "--bin":
                bins.append(args.pop(0))
        for package in selected:
            if package not in packages:
                return f"no package {package}"
        for name in bins:
            owners = selected or ["serverless-websockets"]
            if not any(name in packages.get(p, set()) for p in owners):
                return f"no bin target {name} in {owners}"
        return None
    if program == "cargo":
        return ("skip", "cargo subcommand")
    match = re.match(r"^(?:\$\{CARGO_TARGET_DIR:-target\}|target)/(release|debug|deploy)/([\w-]+)$", program)
    if match:
        binary = match.group(2)
        owner = next((p for p, b in packages.items() if binary in b), None)
        if owner is None:
            return f"no binary {binary} in the workspace"
        return run_help(owner, words[1:])
    if program.startswith(".tools/"):
        return ("skip", f"{program} is installed by a documented step")
    if program.endswith(".sh") or "/" in program:
        path = ROOT / program
        if not path.is_file() or not os.access(path, os.X_OK):
            return f"{program} is not an executable file in the repository"
        if program.endswith("deploy.sh") and (len(words) < 2 or words[1] not in DEPLOY_SUBCOMMANDS):
            return f"deploy.sh has no subcommand {words[1:2]}"
        return None
    if program in NOT_OFFLINE:
        return ("skip", f"{program} needs a running stack, AWS or a session")
    return ("skip", f"{program}: not checked")


def main():
    docs = sys.argv[1:] or DOCS
    packages = workspace()
    failures, checked, skipped = [], 0, 0
    for doc in docs:
        for block in shell_blocks((ROOT / doc).read_text()):
            for line, raw in commands(block):
                outcome = check(line, packages, raw)
                if isinstance(outcome, tuple):
                    skipped += 1
                    continue
                checked += 1
                if outcome:
                    failures.append(f"{doc}: `{line}`: {outcome}")
    print(f"doc pages: {' '.join(docs)}")
    print(f"doc commands: {checked} checked, {skipped} need a stack or AWS, {len(failures)} failed")
    for failure in failures:
        print("  " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
