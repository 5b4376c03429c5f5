//! `spannorm theory`.

use super::{err, out, usage, FormatArg};
use clap::Args;
use spannorm::config::RawConfig;
use spannorm::report;
use spannorm::theory;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TheoryArgs {
    #[command(flatten)]
    pub model: RawConfig,
    /// JSON config file (fields as the flags, kebab-case); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write predictions here, in the same schema as `simulate` (`source: theory`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format [default: from the extension of --out, else json].
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
}

/// `spannorm theory`: mean-field predictions, layer by layer.
pub fn theory(args: &TheoryArgs) -> anyhow::Result<()> {
    let cfgs = super::configs(args.config.as_deref(), &args.model, false)?;
    let output = super::Output::open(args.out.as_deref(), args.format, false)?;
    let mut results = Vec::new();
    let mut refused = Vec::new();
    for cfg in &cfgs {
        match theory::predict(cfg) {
            Ok(r) => results.push(r),
            Err(e) => refused.push(e),
        }
    }
    // One configuration: its error is the answer. Several (`--placement all`): say which
    // have no prediction and go on with the rest, or, when none has one, say so once.
    match (results.is_empty(), refused.first()) {
        (true, Some(e)) if cfgs.len() == 1 => return Err(usage(e)),
        (true, Some(e)) => {
            return Err(usage(format!(
                "no configuration has a prediction ({} refused; the first: {e})",
                refused.len()
            )))
        }
        _ => {}
    }
    for r in &results {
        out(&format!("{}\n", report::table(r)));
    }
    for e in &refused {
        err(&format!("warning: {e}"));
    }
    output.write(&results)
}
