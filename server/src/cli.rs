//! The `berth` command line. Flags are the last configuration layer (see `config.rs`), so
//! they default to "not given" here rather than to values.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: a self-hosted OCI container registry",
    after_help = "Settings also come from a TOML file (--config or BERTH_CONFIG) and BERTH_* environment variables; flags win."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry.
    Serve {
        /// Address to listen on [default: 127.0.0.1:5000]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Data directory [default: ./berth-data]
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// TOML configuration file
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Verify the store; exits 1 if it finds problems.
    Check {
        /// Data directory [default: ./berth-data]
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// TOML configuration file
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print every setting with its default and the reason for it, as a TOML file.
    Defaults,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_are_optional_and_parsed() {
        let c = Cli::try_parse_from(["berth", "serve"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Serve {
                listen: None,
                data: None,
                config: None
            }
        ));
        let c = Cli::try_parse_from(["berth", "serve", "--listen", "0.0.0.0:1", "--data", "d"])
            .unwrap();
        match c.command {
            Command::Serve { listen, data, .. } => {
                assert_eq!(listen.as_deref(), Some("0.0.0.0:1"));
                assert_eq!(data, Some(PathBuf::from("d")));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["berth", "check", "--data", "d"]).is_ok());
        assert!(Cli::try_parse_from(["berth", "serve", "--bogus"]).is_err());
    }
}
