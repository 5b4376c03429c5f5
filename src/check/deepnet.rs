//! Wang et al. 2022 (*DeepNet: Scaling Transformers to 1,000 Layers*): with DeepNorm's
//! constants, PostNorm's end-to-end gradient ratio stays at its bounded mean-field value as
//! depth grows (checked like C3b, [`super::c3::GradientRatio`]).

use super::c3::GradientRatio;
use super::{Claim, Group, Sizes};
use crate::error::ConfigError;
use crate::placement::Placement;

/// The DeepNet 2022 claims of a preset: one verdict per depth of the depth sweep.
pub fn claims(s: &Sizes) -> Result<Vec<Box<dyn Claim>>, ConfigError> {
    Ok(vec![Box::new(GradientRatio::new(
        s,
        Placement::Deepnorm,
        Group::Deepnet,
        "DeepNet 2022: deepnorm gradient ratio",
        "with DeepNorm's constants PostNorm's log10(grad_0/grad_L) stays at its bounded mean-field value (→ 0) as depth grows",
        "deepnorm = post with α_eff = β²/w = (8L)^{-1/2}(2L)^{-1/4}",
    )?)])
}
