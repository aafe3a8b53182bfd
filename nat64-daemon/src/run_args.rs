//! What `nat64d run` is given: its command-line arguments, and the configuration they make
//! with the file (the same path at start and at every reload).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use nat64_daemon::{
    Config,
    config::{Interface, LogFormat, Pool6},
};

#[derive(Args)]
pub(crate) struct RunArgs {
    /// TOML configuration file; without it the built-in defaults apply.
    #[arg(short, long, env = "NAT64D_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Override pool6: an RFC 6052 prefix, or "off".
    #[arg(long, value_name = "PREFIX")]
    pub(crate) pool6: Option<Pool6>,
    /// Override the interfaces (repeat for several): NAME or NAME:native or NAME:generic.
    #[arg(long = "interface", short = 'i', value_name = "NAME[:MODE]")]
    pub(crate) interfaces: Vec<Interface>,
    /// Override the log format.
    #[arg(long, value_enum, env = "NAT64D_LOG_FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
    /// Override the interval, in seconds, of counter summaries in the log (0: only at exit).
    #[arg(long)]
    pub(crate) stats_interval_secs: Option<u64>,
}

pub(crate) fn effective_config(args: &RunArgs) -> anyhow::Result<Config> {
    let cfg = configured(args)?;
    cfg.check_interfaces_exist()?;
    cfg.check_own_addresses()?;
    Ok(cfg)
}

/// [`effective_config`] without the checks against the host as it is now (the interfaces,
/// the node's own addresses), which a reload makes on its own: an interface that is absent
/// for a moment is worth waiting for, a malformed file is not.
pub(crate) fn configured(args: &RunArgs) -> anyhow::Result<Config> {
    let mut cfg = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(p) = args.pool6 {
        cfg.pool6 = p;
    }
    if !args.interfaces.is_empty() {
        cfg.interfaces = args.interfaces.clone();
    }
    if let Some(f) = args.log_format {
        cfg.log_format = f;
    }
    if let Some(s) = args.stats_interval_secs {
        cfg.stats_interval_secs = s;
    }
    // Overrides go through the same validation as the file.
    cfg.validate()
        .context("configuration after command-line overrides")?;
    if cfg.interfaces.is_empty() && cfg.translator_link.0.is_none() {
        anyhow::bail!(
            "interfaces: no interface configured and translator_link is off, so nothing would be translated; give an interface with --interface or in the file"
        );
    }
    Ok(cfg)
}
