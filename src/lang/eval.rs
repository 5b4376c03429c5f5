//! Running a checked program: numbers are computed, matrices become [`BlockOps`] calls in
//! evaluation order (see [`super::program`] for the mapping), so one formula drives the
//! simulation ([`crate::block::Tape`]) and the theory ([`crate::theory::tape::TheoryTape`]).

use super::program::{Env, Node, Program, Sublayer, Value};
use crate::block::BlockOps;
use crate::normop::NormKind;

impl Program {
    /// Records the formula on `t` with input `x`; returns its value.
    pub fn run<B: BlockOps>(&self, t: &mut B, x: B::Node, env: &Env) -> B::Node {
        let mut nums = vec![f64::NAN; self.stmts().len()];
        let mut nodes: Vec<Option<B::Node>> = vec![None; self.stmts().len()];
        for (i, (_, v)) in self.stmts().iter().enumerate() {
            match v {
                Value::Scalar(s) => nums[i] = env.eval(s, &nums),
                Value::Node(n) => nodes[i] = Some(self.node(n, t, x, env, &nums, &nodes)),
            }
        }
        nodes
            .pop()
            .flatten()
            .expect("a checked program ends with a matrix")
    }

    fn node<B: BlockOps>(
        &self,
        n: &Node,
        t: &mut B,
        x: B::Node,
        env: &Env,
        nums: &[f64],
        nodes: &[Option<B::Node>],
    ) -> B::Node {
        match n {
            Node::Input => x,
            Node::Ref(i) => nodes[*i].expect("statements run in order"),
            Node::Norm {
                kind,
                arg,
                gain,
                id,
            } => {
                let v = self.node(arg, t, x, env, nums, nodes);
                let closing = self.closing() == Some(*id);
                match (kind, gain, closing) {
                    // The forms every built-in placement uses, as their original calls.
                    (NormKind::Configured, None, true) => t.closing_norm(v),
                    (NormKind::Configured, None, false) => t.norm(v),
                    (NormKind::Configured, Some(g), false) => t.norm_gain(v, env.eval(g, nums)),
                    _ => {
                        if closing {
                            t.probe_pre_norm(v);
                        }
                        let g = gain.as_ref().map_or(1.0, |g| env.eval(g, nums));
                        t.norm_as(v, *kind, g)
                    }
                }
            }
            Node::Sub(s, arg) => {
                let v = self.node(arg, t, x, env, nums, nodes);
                match s {
                    Sublayer::Attn => t.attn(v),
                    Sublayer::Ffn => t.ffn(v),
                }
            }
            Node::Scale(c, arg) => {
                let v = self.node(arg, t, x, env, nums, nodes);
                t.scale(env.eval(c, nums), v)
            }
            Node::Sum(ts) => {
                let vs: Vec<B::Node> = ts
                    .iter()
                    .map(|m| self.node(m, t, x, env, nums, nodes))
                    .collect();
                t.add(&vs)
            }
        }
    }
}
