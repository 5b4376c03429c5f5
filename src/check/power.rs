//! The power of the checks: which of them FAIL when one ingredient of the theory is wrong.
//!
//! A check that passes the theory as derived says something only if a wrong theory would
//! fail it. [`power`] judges every claim again with the same simulations but predictions
//! from a perturbed theory ([`crate::theory::perturb`]: each ingredient of the maps times
//! 0.8, 0.9, 1.1 and 1.2, and the norm-projection rule `η` moved 10%, 20% and all the way
//! toward the other rule), and records which verdicts become FAIL. `check --power` prints
//! the table; `analysis/checks.md` carries the one of the `ci` preset.

use super::{Claim, Evidence, Group, Run, Status, Verdict};
use crate::choice::Choice;
use crate::config::SimConfig;
use crate::result::RunResult;
use crate::theory::{self, Ingredient, Perturb, TheoryError};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One perturbation of the theory: an ingredient and its factor (for `eta`, the shift `δ`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    /// What changes.
    pub ingredient: Ingredient,
    /// By how much.
    pub value: f64,
}

impl Change {
    /// The perturbation as the maps take it.
    pub fn perturb(self) -> Perturb {
        Perturb::one(self.ingredient, self.value)
    }

    /// Whether the change is at most 20% (for `eta`, a shift of at most 0.2).
    pub fn within_20_percent(self) -> bool {
        match self.ingredient {
            Ingredient::Eta => self.value <= 0.2 + 1e-12,
            _ => (self.value - 1.0).abs() <= 0.2 + 1e-12,
        }
    }

    /// How the table names it: `c_F×1.2`, `eta+0.1`.
    pub fn label(self) -> String {
        match self.ingredient {
            Ingredient::Eta => format!("eta+{}", self.value),
            i => format!("{i}×{}", self.value),
        }
    }
}

/// The changes of the power table: every ingredient at 0.8, 0.9, 1.1, 1.2, and `eta`
/// shifted by 0.1, 0.2 and 1 (the other rule).
pub fn standard() -> Vec<Change> {
    Ingredient::ALL
        .iter()
        .flat_map(|&ingredient| {
            let values: &[f64] = match ingredient {
                Ingredient::Eta => &[0.1, 0.2, 1.0],
                _ => &[0.8, 0.9, 1.1, 1.2],
            };
            values
                .iter()
                .map(move |&value| Change { ingredient, value })
        })
        .collect()
}

/// The evidence of `base` with predictions from a perturbed theory (memoized per
/// configuration): the simulations are `base`'s own.
pub struct Perturbed<'e> {
    base: &'e dyn Evidence,
    perturb: Perturb,
    memo: Mutex<HashMap<String, Result<RunResult, TheoryError>>>,
    asked: AtomicUsize,
}

impl<'e> Perturbed<'e> {
    /// `base` with the theory changed by `perturb`.
    pub fn new(base: &'e dyn Evidence, perturb: Perturb) -> Self {
        Perturbed {
            base,
            perturb,
            memo: Mutex::default(),
            asked: AtomicUsize::new(0),
        }
    }

    /// How many predictions were asked for.
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::Relaxed)
    }
}

impl Evidence for Perturbed<'_> {
    fn run(&self, cfg: &SimConfig) -> Arc<Run> {
        self.base.run(cfg)
    }

    fn predict(&self, cfg: &SimConfig) -> Result<RunResult, TheoryError> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        let key = cfg.canonical();
        if let Some(v) = self
            .memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return v.clone();
        }
        let p = self.perturb;
        let v = theory::predict_with(cfg, &|c| c.perturb = p);
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, v.clone());
        v
    }

    fn prepare(&self, cfgs: &[SimConfig]) {
        self.base.prepare(cfgs);
    }

    fn token_rms(&self, cfg: &SimConfig, seed: usize) -> Option<Vec<Vec<f64>>> {
        self.base.token_rms(cfg, seed)
    }
}

/// One verdict's row of the power table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The verdict's name.
    pub name: String,
    /// Its group.
    pub group: Group,
    /// Its status under the theory as derived.
    pub status: Status,
    /// Whether its claim reads a prediction of the theory (one judged on simulations alone,
    /// such as a comparison of two placements, or against a bound from closed-form gains,
    /// cannot be failed by a perturbed tape: its power is shown on perturbed evidence in
    /// `tests/checks.rs`).
    pub uses_theory: bool,
    /// Whether it is FAIL under each change (in the order of [`Power::changes`]).
    pub fails: Vec<bool>,
}

impl Row {
    /// Whether some change of at most 20% fails it.
    pub fn has_power(&self, changes: &[Change]) -> bool {
        self.fails
            .iter()
            .zip(changes)
            .any(|(&f, c)| f && c.within_20_percent())
    }
}

/// The power table: for each verdict, the changes that FAIL it.
#[derive(Clone, Debug)]
pub struct Power {
    /// The changes, in column order.
    pub changes: Vec<Change>,
    /// One row per verdict of the theory as derived, in table order.
    pub rows: Vec<Row>,
}

/// Judges `claims` on `base` (which should hold their simulations: call
/// [`Evidence::prepare`] first) under the theory as derived and under every change.
pub fn power(claims: &[Box<dyn Claim>], base: &dyn Evidence, changes: &[Change]) -> Power {
    let judge = |ev: &dyn Evidence| -> Vec<(Verdict, Group)> {
        claims
            .iter()
            .flat_map(|c| c.judge(ev).into_iter().map(move |v| (v, c.group())))
            .collect()
    };
    // The theory as derived, claim by claim, noting which claims ask for a prediction.
    let mut derived: Vec<(Verdict, Group, bool)> = Vec::new();
    for c in claims {
        let probe = Perturbed::new(base, Perturb::default());
        let vs = c.judge(&probe);
        let uses = probe.asked() > 0;
        derived.extend(vs.into_iter().map(|v| (v, c.group(), uses)));
    }
    let perturbed: Vec<Vec<(Verdict, Group)>> = changes
        .par_iter()
        .map(|c| judge(&Perturbed::new(base, c.perturb())))
        .collect();
    let rows = derived
        .iter()
        .enumerate()
        .map(|(i, (v, g, uses))| Row {
            name: v.name.clone(),
            group: *g,
            status: v.status,
            uses_theory: *uses,
            fails: perturbed
                .iter()
                .map(|p| {
                    p.get(i)
                        .is_some_and(|(w, _)| w.name == v.name && w.status == Status::Fail)
                })
                .collect(),
        })
        .collect();
    Power {
        changes: changes.to_vec(),
        rows,
    }
}

impl Power {
    /// The rows that read the theory and that no change of at most 20% fails.
    pub fn powerless(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.uses_theory && !r.has_power(&self.changes))
            .collect()
    }

    /// The table as Markdown: one row per verdict, one column per ingredient listing the
    /// factors that FAIL it, and whether a change of at most 20% does.
    pub fn markdown(&self) -> String {
        let ingredients: Vec<Ingredient> = Ingredient::ALL.to_vec();
        let mut s = String::from("| check | as derived |");
        for i in &ingredients {
            let _ = write!(s, " `{i}` |");
        }
        s += " fails at ≤ 20% |\n| --- | --- |";
        for _ in &ingredients {
            s += " --- |";
        }
        s += " --- |\n";
        for r in &self.rows {
            let _ = write!(s, "| {} | {} |", r.name, r.status.word());
            for &i in &ingredients {
                let hit: Vec<String> = self
                    .changes
                    .iter()
                    .zip(&r.fails)
                    .filter(|(c, &f)| f && c.ingredient == i)
                    .map(|(c, _)| match i {
                        Ingredient::Eta => format!("+{}", c.value),
                        _ => format!("×{}", c.value),
                    })
                    .collect();
                let _ = write!(
                    s,
                    " {} |",
                    if hit.is_empty() {
                        "·".to_string()
                    } else {
                        hit.join(" ")
                    }
                );
            }
            let _ = writeln!(
                s,
                " {} |",
                if !r.uses_theory {
                    "reads no prediction"
                } else if r.has_power(&self.changes) {
                    "yes"
                } else {
                    "**no**"
                }
            );
        }
        let weak = self.powerless();
        let theory = self.rows.iter().filter(|r| r.uses_theory).count();
        let _ = writeln!(
            s,
            "\n{} verdicts read a prediction; {} of them FAIL under some change of at most 20%, \
             {} do not{}",
            theory,
            theory - weak.len(),
            weak.len(),
            if weak.is_empty() {
                ".".to_string()
            } else {
                format!(
                    ": {}.",
                    weak.iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        s
    }
}
