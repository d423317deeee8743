//! Helpers for the `strata` command-line tests (`tests/cli.rs`, `tests/cli_data.rs`,
//! `tests/cli_group.rs`): run the binary Cargo built for this test run, assert the
//! exit-code and stderr contract (0 with the expected summary, 1 with one `error:`
//! line, 2 for a usage error), and split what it printed into table cells or JSON.

use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;

use super::{run_command, CommandOutput};

/// Runs `strata --bootstrap BOOTSTRAP ARGS...` with `stdin` as its standard input.
pub fn strata_with_input(bootstrap: &str, args: &[&str], stdin: &[u8]) -> CommandOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.arg("--bootstrap").arg(bootstrap).args(args);
    run_command(&mut command, stdin)
}

/// Runs `strata --bootstrap BOOTSTRAP ARGS...` with nothing on its standard input.
pub fn strata(bootstrap: &str, args: &[&str]) -> CommandOutput {
    strata_with_input(bootstrap, args, b"")
}

/// Asserts exit code 0 and that stderr is exactly `stderr`; returns stdout.
pub fn success_with(output: CommandOutput, stderr: &str) -> String {
    assert_eq!(output.status.code(), Some(0), "{}", output.describe());
    assert_eq!(output.stderr, stderr, "{}", output.describe());
    output.stdout
}

/// Asserts exit code 0 and nothing on stderr; returns stdout.
pub fn success(output: CommandOutput) -> String {
    success_with(output, "")
}

/// Asserts exit code 1, nothing on stdout and exactly one `error:` line on stderr
/// holding every one of `expected`.
pub fn failure(output: CommandOutput, expected: &[&str]) {
    assert_eq!(output.status.code(), Some(1), "{}", output.describe());
    assert_eq!(output.stdout, "", "{}", output.describe());
    let lines: Vec<&str> = output.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", output.describe());
    assert!(lines[0].starts_with("error: "), "{}", output.describe());
    for part in expected {
        assert!(
            lines[0].contains(part),
            "{part:?} missing: {}",
            output.describe()
        );
    }
}

/// Asserts a command-line usage error (clap's exit code 2) mentioning `expected`.
pub fn usage_error(output: CommandOutput, expected: &str) {
    assert_eq!(output.status.code(), Some(2), "{}", output.describe());
    assert_eq!(output.stdout, "", "{}", output.describe());
    let first = output.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{}", output.describe());
    assert!(output.stderr.contains(expected), "{}", output.describe());
}

/// Whitespace-separated cells of each line, for table assertions.
pub fn cells(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// One expected table row, to compare with a row of [`cells`].
pub fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Each stdout line parsed as JSON.
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// A closed port: bound a moment ago, nothing listens there now.
pub fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound address").to_string()
}
