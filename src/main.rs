//! The `gopack` executable: everything happens in [`cli::main`].

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
