//! The `rwxfs` command: parses the command line and hands each subcommand to its crate.

mod cli;

fn main() {
    let code = cli::run();
    std::process::exit(code);
}
