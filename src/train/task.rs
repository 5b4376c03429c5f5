//! The training tasks: token sequences drawn deterministically from a seed, each with its
//! exact loss floor (`analysis/training.md`).
//!
//! A sequence has `n + 1` tokens `s_0 … s_n`; the model reads `s_0 … s_{n−1}` and predicts
//! `t_i = s_{i+1}` at every position, so the loss is the mean next-token cross-entropy over
//! `n` positions and its floor is the mean conditional entropy of the targets given
//! everything before them.
//!
//! - `bigram`: a Markov chain over the `V` words. Each word has [`SUCCESSORS`] successors
//!   (distinct, uniform over the vocabulary) with probabilities `e^{z_j} / Σ e^{z}`,
//!   `z_j ~ N(0, 1)`; `s_0` is uniform. The floor is
//!   `(1/n) Σ_i Σ_w p_i(w) H(P_w)` with `p_0` uniform and `p_{i+1} = p_i P`, computed exactly.
//! - `copy`: the first `h = ⌈(n + 1)/2⌉` tokens are uniform, the rest repeat them
//!   (`s_{h+j} = s_j`). The first `h − 1` targets are unpredictable (`ln V` each), the others
//!   are copies, so the floor is `(h − 1) ln V / n`.

use crate::choice_enum;
use ndarray_rand::rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

choice_enum!(
    /// What the model learns to predict.
    Task, "task", {
        /// Next word of a random sparse Markov chain.
        Bigram => "bigram",
        /// The second half of each sequence repeats the first.
        Copy => "copy",
    }
);

/// Successors of each word of the `bigram` chain (fewer when the vocabulary is smaller).
pub const SUCCESSORS: usize = 4;

/// A task's sequences for one seed: the chain (for `bigram`) and its floor.
#[derive(Clone, Debug)]
pub struct Source {
    task: Task,
    vocab: usize,
    tokens: usize,
    /// `bigram`: for each word, its successors and their cumulative probabilities.
    chain: Vec<Vec<(usize, f64)>>,
    floor: f64,
}

/// The generator of stream `stream` of `(master, seed)` for task data.
pub fn rng(master: u64, seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(master ^ 0x7472_6169_6e5f_7461);
    r.set_stream(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ stream);
    r
}

impl Source {
    /// The task's data for `(master, seed)`: `vocab` words, sequences of `tokens` inputs.
    pub fn new(task: Task, vocab: usize, tokens: usize, master: u64, seed: u64) -> Source {
        let mut chain = Vec::new();
        let floor = match task {
            Task::Copy => {
                let h = (tokens + 1).div_ceil(2);
                (h - 1) as f64 * (vocab as f64).ln() / tokens as f64
            }
            Task::Bigram => {
                let mut r = rng(master, seed, 0);
                let k = SUCCESSORS.min(vocab);
                let mut entropy = Vec::with_capacity(vocab);
                let mut dense = vec![vec![0.0; vocab]; vocab];
                for row in dense.iter_mut() {
                    let mut next: Vec<usize> = Vec::with_capacity(k);
                    while next.len() < k {
                        let c = r.random_range(0..vocab);
                        if !next.contains(&c) {
                            next.push(c);
                        }
                    }
                    let e: Vec<f64> = (0..k)
                        .map(|_| {
                            r.sample::<f64, _>(ndarray_rand::rand_distr::StandardNormal)
                                .exp()
                        })
                        .collect();
                    let z: f64 = e.iter().sum();
                    let mut cum = 0.0;
                    let mut succ = Vec::with_capacity(k);
                    let mut h = 0.0;
                    for (&c, &v) in next.iter().zip(&e) {
                        let p = v / z;
                        row[c] += p;
                        h -= p * p.ln();
                        cum += p;
                        succ.push((c, cum));
                    }
                    succ.last_mut().expect("at least one successor").1 = 1.0;
                    entropy.push(h);
                    chain.push(succ);
                }
                // Mean over positions of E_{s_i ~ p_i} H(P_{s_i}), p_0 uniform.
                let mut p = vec![1.0 / vocab as f64; vocab];
                let mut total = 0.0;
                for _ in 0..tokens {
                    total += p.iter().zip(&entropy).map(|(a, h)| a * h).sum::<f64>();
                    let mut q = vec![0.0; vocab];
                    for (w, &pw) in p.iter().enumerate() {
                        if pw > 0.0 {
                            for (c, &pc) in dense[w].iter().enumerate() {
                                q[c] += pw * pc;
                            }
                        }
                    }
                    p = q;
                }
                total / tokens as f64
            }
        };
        Source {
            task,
            vocab,
            tokens,
            chain,
            floor,
        }
    }

    /// The loss floor: the mean conditional entropy of the targets (nats).
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// One sequence of `tokens + 1` words from `r`.
    pub fn sequence(&self, r: &mut ChaCha8Rng) -> Vec<usize> {
        let len = self.tokens + 1;
        let mut s = Vec::with_capacity(len);
        match self.task {
            Task::Copy => {
                let h = len.div_ceil(2);
                for _ in 0..h {
                    s.push(r.random_range(0..self.vocab));
                }
                for j in 0..len - h {
                    s.push(s[j]);
                }
            }
            Task::Bigram => {
                s.push(r.random_range(0..self.vocab));
                for _ in 1..len {
                    let u: f64 = r.random();
                    let last = *s.last().expect("a first word");
                    let succ = &self.chain[last];
                    let next = succ
                        .iter()
                        .find(|(_, cum)| u < *cum)
                        .unwrap_or(&succ[succ.len() - 1])
                        .0;
                    s.push(next);
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_repeats_and_its_floor_counts_the_unpredictable_targets() {
        let src = Source::new(Task::Copy, 50, 7, 1, 0);
        let s = src.sequence(&mut rng(1, 0, 1));
        assert_eq!(s.len(), 8);
        assert_eq!(s[..4], s[4..]);
        // h = 4: targets s_1, s_2, s_3 are unpredictable, s_4..s_7 are copies.
        assert!((src.floor() - 3.0 * 50f64.ln() / 7.0).abs() < 1e-15);
    }

    #[test]
    fn the_bigram_floor_matches_the_empirical_conditional_entropy() {
        // Estimate the floor as the mean of −ln P(t_i | s_i) over sampled sequences: its
        // standard error is at most sd(−ln p)/√(N n); with 4 successors and
        // p ≥ e^{-3}/(e^{-3} + 3 e^{3}) ≈ 8e-4 the terms lie in [0, 7.2], so sd ≤ 3.6 and
        // 20 000 sequences of 16 targets bound it by 0.0064; 5 of those is 0.032.
        let (v, n) = (32, 16);
        let src = Source::new(Task::Bigram, v, n, 3, 1);
        let mut r = rng(3, 1, 9);
        let mut total = 0.0;
        let count = 20_000;
        for _ in 0..count {
            let s = src.sequence(&mut r);
            for i in 0..n {
                let succ = &src.chain[s[i]];
                let k = succ.iter().position(|(c, _)| *c == s[i + 1]).unwrap();
                let p = succ[k].1 - if k == 0 { 0.0 } else { succ[k - 1].1 };
                total -= p.ln();
            }
        }
        let est = total / (count * n) as f64;
        assert!(
            (est - src.floor()).abs() < 0.032,
            "{est} vs {}",
            src.floor()
        );
        assert!(src.floor() > 0.1 && src.floor() < 4f64.ln());
    }
}
