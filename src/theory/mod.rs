//! Mean-field predictions of every per-layer quantity, in the same [`RunResult`] layout as a
//! simulation (`source: theory`), so one plot call overlays both. Derivations:
//! `analysis/theory.md`.

use crate::config::SimConfig;
use crate::simulate::RunResult;

/// Why a prediction is not available for a configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TheoryError {
    /// The derivation's assumptions do not hold for this configuration.
    #[error("no prediction for {what}: {reason}")]
    Unsupported { what: String, reason: String },
}

/// The mean-field prediction for `cfg`, layer by layer.
pub fn predict(cfg: &SimConfig) -> Result<RunResult, TheoryError> {
    Err(TheoryError::Unsupported {
        what: cfg.model.placement.to_string(),
        reason: "the mean-field recursions are not implemented yet".into(),
    })
}
