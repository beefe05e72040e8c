//! The `regproxy` binary: parse the command line, run, map errors to exit codes.

fn main() -> std::process::ExitCode {
    regproxy::cli::main()
}
