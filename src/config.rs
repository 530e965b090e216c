//! Command line and environment → a validated `Config`. Flag names follow ingress-nginx where
//! it has one, so migrating users recognise them; every flag also reads `PORTICO_<NAME>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::translate;

/// Portico: a Kubernetes Ingress controller that routes HTTP by Ingress rules.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "portico",
    version,
    about,
    long_about = None,
    args_override_self = true,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// Without a command, Portico runs the controller.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Serve the Ingress, IngressClass, Service, EndpointSlice and Secret objects found in this
    /// directory (or file) of YAML/JSON manifests instead of a cluster. The directory is
    /// watched: changes apply within a second.
    #[arg(long, env = "PORTICO_MANIFESTS", value_name = "DIR")]
    pub manifests: Option<PathBuf>,

    /// Address of the plain HTTP listener (HTTP/1.1 and h2c).
    #[arg(long, env = "PORTICO_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Address of the admin listener: /healthz, /readyz, /metrics, /debug/routes,
    /// /debug/explain, /log-level.
    #[arg(long, env = "PORTICO_ADMIN_ADDR", default_value = "0.0.0.0:10254")]
    pub admin_addr: SocketAddr,

    #[command(flatten)]
    pub translate: TranslateArgs,

    /// Largest request line plus header block accepted, in bytes; larger gets 431.
    #[arg(long, env = "PORTICO_MAX_HEADER_BYTES", default_value = "32768")]
    pub max_header_bytes: usize,

    /// Time allowed to connect to an upstream endpoint (e.g. 5s, 500ms); expiry gives 504.
    #[arg(long, env = "PORTICO_UPSTREAM_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub upstream_connect_timeout: Duration,

    /// Time allowed for an upstream to send its response headers; expiry gives 504.
    #[arg(long, env = "PORTICO_UPSTREAM_RESPONSE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upstream_response_timeout: Duration,

    /// Log line format.
    #[arg(long, env = "PORTICO_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log level or tracing filter (e.g. `info`, `portico=debug,hyper=info`); can be changed
    /// at run time with `PUT /log-level` on the admin port.
    #[arg(long, env = "PORTICO_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Access log: one line per request, `json`, `text` (logfmt) or `off`. Default: the
    /// format of --log-format.
    #[arg(long, env = "PORTICO_ACCESS_LOG", value_enum)]
    pub access_log: Option<AccessLogMode>,
}

/// The settings that change what translate produces; shared by the controller, `check` and
/// `explain`, so an offline run sees the table the controller would build.
#[derive(Debug, Clone, clap::Args)]
pub struct TranslateArgs {
    /// IngressClasses whose spec.controller equals this are ours.
    #[arg(
        long,
        env = "PORTICO_CONTROLLER_NAME",
        default_value = "portico.dev/ingress-controller"
    )]
    pub controller_name: String,

    /// Value of the deprecated kubernetes.io/ingress.class annotation that we own (the names of
    /// our IngressClasses are accepted too).
    #[arg(long, env = "PORTICO_INGRESS_CLASS", default_value = "portico")]
    pub ingress_class: String,

    /// Also own Ingresses that name no class at all (no ingressClassName, no annotation).
    #[arg(
        long,
        env = "PORTICO_WATCH_INGRESS_WITHOUT_CLASS",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub watch_ingress_without_class: bool,

    /// Service (NAMESPACE/NAME, first port) that answers requests no Ingress claims, when no
    /// rule-less Ingress has a defaultBackend. Without it such requests get 404.
    #[arg(
        long,
        env = "PORTICO_DEFAULT_BACKEND_SERVICE",
        value_name = "NAMESPACE/NAME"
    )]
    pub default_backend_service: Option<String>,

    /// Route to ExternalName Services (loopback and link-local targets are always refused).
    /// `--enable-external-name=false` answers 503 for every ExternalName backend.
    #[arg(
        long,
        env = "PORTICO_ENABLE_EXTERNAL_NAME",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "true"
    )]
    pub enable_external_name: bool,
}

impl TranslateArgs {
    /// The translate options, or the flag that is wrong.
    pub fn options(self) -> Result<translate::Options, ConfigError> {
        let default_backend_service = match self.default_backend_service {
            None => None,
            Some(s) => match s.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                    Some((ns.to_string(), name.to_string()))
                }
                _ => return Err(ConfigError::DefaultBackendService(s)),
            },
        };
        Ok(translate::Options {
            controller_name: self.controller_name,
            annotation_class: self.ingress_class,
            watch_without_class: self.watch_ingress_without_class,
            default_backend_service,
            external_name: self.enable_external_name,
            ipv6: ipv6_available(),
        })
    }
}

/// Commands other than running the controller.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Validate manifests offline: print every condition, load error and a summary of the
    /// table; exit 1 when an Ingress has an error. Never contacts a cluster.
    Check(CheckArgs),
    /// Say where a request would go and why: vhost, every candidate route, backend.
    Explain(ExplainArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Directory or file of manifests; `-` reads standard input (`kubectl get ... -o yaml`).
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Same as --manifests (`portico check -`).
    #[arg(value_name = "DIR|-", conflicts_with = "manifests")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub translate: TranslateArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// Directory or file of manifests; `-` reads standard input.
    #[arg(long, value_name = "DIR")]
    pub manifests: PathBuf,
    /// The request's Host header (or authority).
    #[arg(long, default_value = "")]
    pub host: String,
    /// The request's path (a query is ignored for matching).
    #[arg(long, default_value = "/")]
    pub path: String,
    /// The TLS server name the client sends (reported; TLS is not built yet).
    #[arg(long)]
    pub sni: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub translate: TranslateArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessLogMode {
    Json,
    Text,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 5s, 500ms, 1m)"))
}

/// Where objects come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    Manifests(PathBuf),
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: SourceConfig,
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub translate: translate::Options,
    pub max_header_bytes: usize,
    pub upstream_connect_timeout: Duration,
    pub upstream_response_timeout: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    /// `None`: no access log.
    pub access_log: Option<crate::access_log::Format>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--manifests is required: reading from the Kubernetes API is not built yet")]
    NoSource,
    #[error("--default-backend-service must be NAMESPACE/NAME, got {0:?}")]
    DefaultBackendService(String),
    #[error("--max-header-bytes must be between 1024 and 1048576, got {0}")]
    MaxHeaderBytes(usize),
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
}

impl Args {
    /// Checks the arguments and builds the `Config`.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let source = match self.manifests {
            Some(dir) => SourceConfig::Manifests(dir),
            None => return Err(ConfigError::NoSource),
        };
        let translate = self.translate.options()?;
        if !(1024..=1 << 20).contains(&self.max_header_bytes) {
            return Err(ConfigError::MaxHeaderBytes(self.max_header_bytes));
        }
        if self.upstream_connect_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("--upstream-connect-timeout"));
        }
        if self.upstream_response_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("--upstream-response-timeout"));
        }
        Ok(Config {
            source,
            http_addr: self.http_addr,
            admin_addr: self.admin_addr,
            translate,
            max_header_bytes: self.max_header_bytes,
            upstream_connect_timeout: self.upstream_connect_timeout,
            upstream_response_timeout: self.upstream_response_timeout,
            access_log: match self.access_log {
                None => Some(match self.log_format {
                    LogFormat::Text => crate::access_log::Format::Text,
                    LogFormat::Json => crate::access_log::Format::Json,
                }),
                Some(AccessLogMode::Text) => Some(crate::access_log::Format::Text),
                Some(AccessLogMode::Json) => Some(crate::access_log::Format::Json),
                Some(AccessLogMode::Off) => None,
            },
            log_format: self.log_format,
            log_level: self.log_level,
        })
    }
}

/// Whether this host has an IPv6 stack (spec §4.2 step 2: IPv6 endpoints only then). Binding
/// the IPv6 loopback is the cheapest check that needs no outside address.
fn ipv6_available() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Args::try_parse_from(std::iter::once("portico").chain(args.iter().copied()))
            .expect("arguments parse")
            .validate()
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = parse(&["--manifests", "x"]).unwrap();
        assert_eq!(c.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.admin_addr, "0.0.0.0:10254".parse().unwrap());
        assert_eq!(
            c.translate.controller_name,
            "portico.dev/ingress-controller"
        );
        assert!(!c.translate.watch_without_class);
        assert!(c.translate.external_name);
        assert_eq!(c.upstream_connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn boolean_flags_take_bare_and_explicit_forms() {
        let c = parse(&["--manifests", "x", "--watch-ingress-without-class"]).unwrap();
        assert!(c.translate.watch_without_class);
        let c = parse(&["--manifests", "x", "--enable-external-name=false"]).unwrap();
        assert!(!c.translate.external_name);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        assert_eq!(parse(&[]).unwrap_err(), ConfigError::NoSource);
        assert!(matches!(
            parse(&["--manifests", "x", "--default-backend-service", "nope"]),
            Err(ConfigError::DefaultBackendService(_))
        ));
        assert!(matches!(
            parse(&["--manifests", "x", "--max-header-bytes", "10"]),
            Err(ConfigError::MaxHeaderBytes(10))
        ));
        assert!(Args::try_parse_from(["portico", "--upstream-connect-timeout", "soon"]).is_err());
    }

    #[test]
    fn access_log_follows_log_format_unless_set() {
        use crate::access_log::Format;
        let c = parse(&["--manifests", "x"]).unwrap();
        assert_eq!(c.access_log, Some(Format::Text));
        let c = parse(&["--manifests", "x", "--log-format", "json"]).unwrap();
        assert_eq!(c.access_log, Some(Format::Json));
        let c = parse(&["--manifests", "x", "--access-log", "off"]).unwrap();
        assert_eq!(c.access_log, None);
        let c = parse(&[
            "--manifests",
            "x",
            "--log-format",
            "json",
            "--access-log=text",
        ])
        .unwrap();
        assert_eq!(c.access_log, Some(Format::Text));
    }

    #[test]
    fn subcommands_take_their_own_flags_and_the_controller_needs_none() {
        let args = Args::try_parse_from(["portico", "--manifests", "x"]).unwrap();
        assert!(args.command.is_none());
        let args = Args::try_parse_from(["portico", "check", "-"]).unwrap();
        let Some(Command::Check(check)) = args.command else {
            panic!("check")
        };
        assert_eq!(check.input.as_deref(), Some(std::path::Path::new("-")));
        let args = Args::try_parse_from([
            "portico",
            "explain",
            "--manifests",
            "d",
            "--host",
            "a.example",
            "--sni",
            "a.example",
            "--watch-ingress-without-class",
        ])
        .unwrap();
        let Some(Command::Explain(explain)) = args.command else {
            panic!("explain")
        };
        assert_eq!(explain.path, "/");
        assert!(explain.translate.options().unwrap().watch_without_class);
        assert!(Args::try_parse_from(["portico", "--manifests", "x", "check", "-"]).is_err());
    }
}
