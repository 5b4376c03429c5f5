//! `spannorm theory`.

use super::{usage, ModelArgs};
use crate::config::RawConfig;
use crate::report::{self, AtomicFile, Format};
use crate::theory;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TheoryArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// JSON config file (fields as the flags, kebab-case); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write predictions here, in the same schema as `simulate` (`source: theory`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format [default: from the extension of --out, else json].
    #[arg(long, value_enum)]
    pub format: Option<super::FormatArg>,
}

/// `spannorm theory`: mean-field predictions, layer by layer.
pub fn theory(args: &TheoryArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(p) => RawConfig::from_file(p).map_err(usage)?,
        None => RawConfig::default(),
    };
    let cfgs = file
        .overlay(&args.model.to_raw())
        .resolve()
        .map_err(usage)?;
    let format = super::format(args.format, args.out.as_deref());
    let out = match &args.out {
        Some(p) => Some(AtomicFile::create(p).map_err(usage)?),
        None => None,
    };
    let mut results = Vec::new();
    for cfg in &cfgs {
        match theory::predict(cfg) {
            Ok(r) => {
                println!("{}", report::table(&r));
                results.push(r);
            }
            // One configuration: its error is the answer. Several (`--placement all`): say
            // which have no prediction and go on with the rest.
            Err(e) if cfgs.len() == 1 => return Err(usage(e)),
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    if results.is_empty() {
        return Err(usage("no configuration has a prediction"));
    }
    if let Some(file) = out {
        let bytes = match format {
            Format::Json => report::to_json(&results)?,
            Format::Csv => report::to_csv(&results),
        };
        file.commit(bytes.as_bytes()).map_err(usage)?;
    }
    Ok(())
}
