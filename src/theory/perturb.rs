//! Perturbations of the theory's ingredients, to measure which checks could fail.
//!
//! A check that no plausible error in the theory can fail tells nothing. `check --power`
//! ([`crate::check::power`]) recomputes every prediction with one
//! ingredient of the maps (theory.md §2) multiplied by a factor, holds the same simulations
//! to it, and lists the checks that FAIL. The ingredients are the constants a derivation
//! could get wrong:
//!
//! | ingredient | what is multiplied |
//! | --- | --- |
//! | `c_A` | attention's output kernel (forward gain and covariances, `c_A(ρ)`) |
//! | `c_F` | the feed-forward output kernel (`c_F`, dense or mixture) |
//! | `rho_A` | the token correlations of attention's output (`ρ_A`; off-diagonal entries, correlations capped at ±1) |
//! | `rho_F` | the token correlations of the feed-forward output (`ρ_F`) |
//! | `gamma_A` | attention's input-gradient kernel (`γ_A(κ)`) |
//! | `kappa_A` | the token correlations of attention's input gradient (`κ_A`) |
//! | `gamma_F` | the feed-forward input-gradient kernel (`γ_F`) |
//! | `kappa_F` | the token correlations of the feed-forward input gradient (`κ_F`; off-diagonal entries, correlations capped at 1) |
//! | `score` | the score path of softmax attention's gradient (bidirectional closed form, and the `W_q` gradient at zero-query) |
//! | `eta` | the norm-projection rule: `η → η + δ(1 − 2η)`, a shift of `δ` toward the other rule (`δ = 1` swaps `η = 0` and `η = 1`) |
//! | `router` | the router path of a mixture's input gradient (`g_r K^F ⊙ Γ ⊙ R`) |

use crate::choice::Choice;
use crate::choice_enum;

choice_enum!(
    /// An ingredient of the maps that [`Perturb`] can change.
    Ingredient, "ingredient", {
        /// Attention's output kernel.
        AttnForward => "c_A",
        /// The feed-forward output kernel.
        FfnForward => "c_F",
        /// The token correlations of attention's output.
        AttnCorrelation => "rho_A",
        /// The token correlations of the feed-forward output.
        FfnOutCorrelation => "rho_F",
        /// Attention's input-gradient kernel.
        AttnBackward => "gamma_A",
        /// The token correlations of attention's input gradient.
        AttnGradCorrelation => "kappa_A",
        /// The feed-forward input-gradient kernel.
        FfnBackward => "gamma_F",
        /// The token correlations of the feed-forward input gradient.
        FfnCorrelation => "kappa_F",
        /// The score path of softmax attention's gradient.
        ScorePath => "score",
        /// The norm-projection rule `η`.
        Eta => "eta",
        /// The router path of a mixture's input gradient.
        Router => "router",
    }
);

/// A factor on each ingredient (all 1 and `δ_η = 0`: the theory as derived).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Perturb {
    factors: [f64; 11],
}

impl Default for Perturb {
    fn default() -> Self {
        Perturb {
            factors: std::array::from_fn(|i| {
                if Ingredient::ALL[i] == Ingredient::Eta {
                    0.0
                } else {
                    1.0
                }
            }),
        }
    }
}

impl Perturb {
    /// The theory with `ingredient` changed by `value`: a factor, or for [`Ingredient::Eta`]
    /// the shift `δ` toward the other rule.
    pub fn one(ingredient: Ingredient, value: f64) -> Perturb {
        let mut p = Perturb::default();
        p.factors[ingredient.index()] = value;
        p
    }

    /// The factor on `ingredient` (for [`Ingredient::Eta`], the shift `δ`).
    pub fn get(&self, ingredient: Ingredient) -> f64 {
        self.factors[ingredient.index()]
    }

    /// `η` as the maps use it, from the rule's `eta` (0 or 1).
    pub fn eta(&self, eta: f64) -> f64 {
        eta + self.get(Ingredient::Eta) * (1.0 - 2.0 * eta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_theory_and_one_changes_one_ingredient() {
        let p = Perturb::default();
        for &i in Ingredient::ALL {
            let v = p.get(i);
            assert_eq!(v, if i == Ingredient::Eta { 0.0 } else { 1.0 });
        }
        assert_eq!(p.eta(0.0), 0.0);
        assert_eq!(p.eta(1.0), 1.0);
        let q = Perturb::one(Ingredient::Eta, 1.0);
        assert_eq!((q.eta(0.0), q.eta(1.0)), (1.0, 0.0));
        let r = Perturb::one(Ingredient::FfnForward, 1.2);
        assert_eq!(r.get(Ingredient::FfnForward), 1.2);
        assert_eq!(r.get(Ingredient::AttnForward), 1.0);
        assert_eq!(
            "kappa_F".parse::<Ingredient>().unwrap(),
            Ingredient::FfnCorrelation
        );
    }
}
