//! The `glance-download-sidecar` binary: parses the command line and hands over to the library,
//! `serve` to the server, the other commands to the tools (built with the `tools` feature).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use glance_download_sidecar::serve::{self, ServeArgs};
#[cfg(feature = "tools")]
use glance_download_sidecar::tools::cli::ToolCommand;

#[derive(Parser)]
#[command(
    name = "glance-download-sidecar",
    version,
    about = "The glance-download image import, streamed and verified, in front of an unmodified Glance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Image API in front of an upstream Glance, handling glance-download imports.
    Serve(ServeArgs),
    #[cfg(feature = "tools")]
    #[command(flatten)]
    Tool(ToolCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    #[cfg(feature = "tools")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (glance-download-sidecar.1 and one per subcommand) into a directory.
    #[cfg(feature = "tools")]
    ManPages {
        /// The directory (it must exist).
        dir: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        #[cfg(feature = "tools")]
        Command::Tool(command) => command.run(),
        #[cfg(feature = "tools")]
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "glance-download-sidecar", &mut script);
            glance_download_sidecar::stdout::write(script);
            ExitCode::SUCCESS
        }
        #[cfg(feature = "tools")]
        Command::ManPages { dir } => {
            use clap::CommandFactory;
            match clap_mangen::generate_to(Cli::command(), &dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("man-pages: cannot write into {}: {e}", dir.display());
                    ExitCode::from(74)
                }
            }
        }
    }
}
