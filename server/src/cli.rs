//! The `berth` command line. Flags are the last configuration layer (see `config.rs`), so
//! they default to "not given" here rather than to values.

use crate::admin::input::{self, PackageRef, RegistryPath, Scopes};
use clap::{ArgGroup, Args, Parser, Subcommand};
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
        /// URL clients reach the registry at, for the token realm in challenges
        /// [default: http://<Host header>]
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
        /// Reverse proxies whose X-Forwarded-For names the client (addresses or CIDR blocks,
        /// comma-separated) [default: none]
        #[arg(long, value_name = "LIST")]
        trusted_proxies: Option<String>,
        /// Keep the metadata in PostgreSQL (postgres://USER@HOST[:PORT]/DB), shared by every
        /// node [default: DATA/meta.redb]
        #[arg(long, value_name = "URL")]
        metadata: Option<String>,
        /// Keep blob bytes in S3-compatible object storage
        /// (s3://BUCKET?endpoint=URL&region=R) [default: DATA/packs]
        #[arg(long, value_name = "URL")]
        blobs: Option<String>,
        /// Make data-directory entries other local users may read owner-only (0700/0600)
        /// instead of only warning about them
        #[arg(long)]
        fix_permissions: bool,
    },
    /// Verify the store; exits 1 if it finds problems.
    Check {
        /// Data directory [default: ./berth-data]
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// TOML configuration file
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Check structure only, without re-hashing every stored blob (fast on large stores)
        #[arg(long)]
        quick: bool,
        /// The metadata's PostgreSQL URL, if it is not in DATA/meta.redb
        #[arg(long, value_name = "URL")]
        metadata: Option<String>,
    },
    /// Create or upgrade the store's metadata schema (in DATA/meta.redb or PostgreSQL) and
    /// exit; `serve` does the same at start. A schema newer than this berth is refused.
    Migrate {
        /// Data directory [default: ./berth-data]
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// TOML configuration file
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The metadata's PostgreSQL URL [default: DATA/meta.redb]
        #[arg(long, value_name = "URL")]
        metadata: Option<String>,
    },
    /// Print every setting with its default and the reason for it, as a TOML file.
    Defaults,
    /// Revoke every admin token and write a new one to DATA/admin-token (stop the server
    /// first: it holds the data directory).
    ResetAdminToken {
        /// Data directory [default: ./berth-data]
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// TOML configuration file
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The metadata's PostgreSQL URL, if it is not in DATA/meta.redb
        #[arg(long, value_name = "URL")]
        metadata: Option<String>,
    },
    /// Manage organisations on a running server.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Manage an organisation's registries on a running server.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Create, list and revoke access tokens on a running server.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Reclaim the space of deleted blobs and expired uploads on a running server (admin
    /// token). The server also does this every `gc_interval`.
    Gc {
        /// Only report what would be reclaimed
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Browse what images hold and download them, on a running server (anonymous for public
    /// registries when there is no token).
    Package {
        #[command(subcommand)]
        command: PackageCommand,
    },
    /// Find an organisation's images by name, or by a file path inside them.
    Search {
        /// Organisation slug, like acme
        #[arg(value_parser = input::org)]
        org: String,
        /// Part of an image's name
        name: Option<String>,
        /// A file inside the images: a whole path (/usr/bin/curl) or a file name (libssl.so.3)
        #[arg(long, value_name = "PATH")]
        path: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show an organisation's audit log, newest first (to an organisation token, only the
    /// entries about registries it may pull).
    Audit {
        /// Organisation slug, like acme
        #[arg(value_parser = input::org)]
        org: String,
        /// Show at most N entries, 1 to 1000 [default: 100]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: Option<u32>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// How the management commands reach the server and prove who they are. The token comes from
/// BERTH_TOKEN, else from DIR/admin-token, so it never appears in a process listing.
#[derive(Debug, Args)]
#[command(after_help = "The token comes from BERTH_TOKEN, else from DIR/admin-token.")]
pub struct ApiArgs {
    /// URL of the Berth server
    #[arg(
        long,
        value_name = "URL",
        env = "BERTH_SERVER",
        hide_env_values = true,
        default_value = "http://127.0.0.1:5000"
    )]
    pub server: String,
    /// Data directory whose admin-token is used when BERTH_TOKEN is unset
    #[arg(
        long,
        value_name = "DIR",
        env = "BERTH_DATA",
        hide_env_values = true,
        default_value = "./berth-data"
    )]
    pub data: PathBuf,
    /// Print the API's JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// List a registry's images, newest push first.
    List {
        /// Registry as ORG/SLUG, like acme/web
        #[arg(value_name = "ORG/REGISTRY", value_parser = input::registry_path)]
        registry: RegistryPath,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a version's details: what it is, where it came from, its size, downloads and the
    /// checksums of its Download.
    Show {
        /// ORG/REGISTRY/IMAGE:TAG or ORG/REGISTRY/IMAGE@DIGEST
        #[arg(value_name = "REF", value_parser = input::package_ref)]
        reference: PackageRef,
        /// For a multi-platform image: the platform's image, like linux/amd64
        #[arg(long, value_name = "OS/ARCH", value_parser = input::platform)]
        platform: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List a directory of a version's file system (all layers applied).
    Files {
        /// ORG/REGISTRY/IMAGE:TAG or ORG/REGISTRY/IMAGE@DIGEST
        #[arg(value_name = "REF", value_parser = input::package_ref)]
        reference: PackageRef,
        /// The directory [default: /]
        path: Option<String>,
        /// Every file below the directory, not only its own entries
        #[arg(long)]
        recursive: bool,
        /// For a multi-platform image: the platform's image, like linux/amd64
        #[arg(long, value_name = "OS/ARCH", value_parser = input::platform)]
        platform: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Download a version as one tar that docker load, podman load and skopeo load; resumes
    /// FILE.part when a download broke off.
    Download {
        /// ORG/REGISTRY/IMAGE:TAG or ORG/REGISTRY/IMAGE@DIGEST
        #[arg(value_name = "REF", value_parser = input::package_ref)]
        reference: PackageRef,
        /// For a multi-platform image: the platform's image, like linux/amd64
        #[arg(long, value_name = "OS/ARCH", value_parser = input::platform)]
        platform: Option<String>,
        /// Where to write the archive
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation (admin token).
    Create {
        /// Organisation slug, like acme
        #[arg(value_parser = input::org)]
        org: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List organisations.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Create a registry; its slug is derived from NAME ("Web Services" -> web-services).
    Create {
        /// Organisation slug, like acme
        #[arg(value_parser = input::org)]
        org: String,
        /// Display name, like "Web Services"
        #[arg(value_parser = input::registry_name)]
        name: String,
        /// Anyone may pull without a token (default: private)
        #[arg(long)]
        public: bool,
        /// Free text shown in listings
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List an organisation's registries.
    List {
        /// Organisation slug, like acme
        #[arg(value_parser = input::org)]
        org: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one registry.
    Show {
        /// Registry as ORG/SLUG, like acme/web
        #[arg(value_name = "ORG/REGISTRY", value_parser = input::registry_path)]
        registry: RegistryPath,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change a registry's visibility and description.
    #[command(group(ArgGroup::new("visibility").args(["public", "private"]).required(true)))]
    Set {
        /// Registry as ORG/SLUG, like acme/web
        #[arg(value_name = "ORG/REGISTRY", value_parser = input::registry_path)]
        registry: RegistryPath,
        /// Anyone may pull without a token
        #[arg(long)]
        public: bool,
        /// Only tokens of the organisation may pull
        #[arg(long)]
        private: bool,
        /// Free text shown in listings
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a registry that holds no images.
    Delete {
        /// Registry as ORG/SLUG, like acme/web
        #[arg(value_name = "ORG/REGISTRY", value_parser = input::registry_path)]
        registry: RegistryPath,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an organisation token; prints the secret alone on the last line.
    Create {
        /// Organisation slug, like acme
        #[arg(value_parser = input::org)]
        org: String,
        /// read_packages, write_packages, or read_packages,write_packages
        #[arg(long, value_name = "SCOPES", value_parser = input::scopes)]
        scopes: Scopes,
        /// Limit the token to this registry (repeatable; default: all of the organisation's)
        #[arg(long = "registry", value_name = "SLUG", value_parser = input::registry_slug)]
        registries: Vec<String>,
        /// Lifetime like 30d, 12h, 90m or 3600s (default: no expiry)
        #[arg(long, value_name = "DURATION", value_parser = input::duration)]
        expires_in: Option<u64>,
        /// Free text shown in listings
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Create a read-only token for one registry; prints the secret alone on the last line.
    CreateRegistry {
        /// Registry as ORG/SLUG, like acme/web
        #[arg(value_name = "ORG/REGISTRY", value_parser = input::registry_path)]
        registry: RegistryPath,
        /// Lifetime like 30d, 12h, 90m or 3600s (default: no expiry)
        #[arg(long, value_name = "DURATION", value_parser = input::duration)]
        expires_in: Option<u64>,
        /// Free text shown in listings
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List an organisation's tokens (never their secrets; admin token).
    List {
        /// Organisation slug, like acme
        #[arg(value_parser = input::org)]
        org: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a token at once, by the id `berth token list` shows.
    Revoke {
        /// Token id (tok_…), as `berth token list` shows it
        #[arg(value_parser = input::token_id)]
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
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
                config: None,
                public_url: None,
                trusted_proxies: None,
                metadata: None,
                blobs: None,
                fix_permissions: false,
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

    #[test]
    fn management_commands_parse_and_bad_values_are_usage_errors() {
        let ok = |args: &[&str]| {
            let mut v = vec!["berth"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v).map(|_| ()).map_err(|e| e.kind())
        };
        assert_eq!(ok(&["org", "create", "acme", "--json"]), Ok(()));
        assert_eq!(
            ok(&["registry", "create", "acme", "Web Services", "--public"]),
            Ok(())
        );
        assert_eq!(ok(&["registry", "set", "acme/web", "--public"]), Ok(()));
        assert_eq!(
            ok(&[
                "token",
                "create",
                "acme",
                "--scopes",
                "read_packages",
                "--registry",
                "a",
                "--registry",
                "b"
            ]),
            Ok(())
        );
        assert_eq!(
            ok(&[
                "token",
                "create-registry",
                "acme/web",
                "--expires-in",
                "12h"
            ]),
            Ok(())
        );
        assert_eq!(ok(&["audit", "acme", "--limit", "5"]), Ok(()));
        use clap::error::ErrorKind::*;
        assert_eq!(
            ok(&["registry", "set", "acme/web"]),
            Err(MissingRequiredArgument)
        );
        assert_eq!(
            ok(&["registry", "set", "acme/web", "--public", "--private"]),
            Err(ArgumentConflict)
        );
        assert_eq!(
            ok(&["token", "create", "acme"]),
            Err(MissingRequiredArgument)
        );
        assert_eq!(
            ok(&["token", "create", "acme", "--scopes", "all"]),
            Err(ValueValidation)
        );
        assert_eq!(ok(&["org", "create", "Acme"]), Err(ValueValidation));
        assert_eq!(ok(&["registry", "show", "acme"]), Err(ValueValidation));
        assert_eq!(ok(&["audit", "acme", "--limit", "0"]), Err(ValueValidation));
    }

    #[test]
    fn management_commands_default_to_the_local_server_and_data_directory() {
        let c = Cli::try_parse_from(["berth", "org", "list"]).unwrap();
        match c.command {
            Command::Org {
                command: OrgCommand::List { api },
            } => {
                assert_eq!(api.server, "http://127.0.0.1:5000");
                assert_eq!(api.data, PathBuf::from("./berth-data"));
                assert!(!api.json);
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
