//! Syntax tree to typed program: names resolved, every value a number or a matrix, and
//! the checks that make a formula a block (defined before use, used, depends on a sublayer).
//!
//! # Mapping to operations
//! A matrix expression becomes the [`crate::block::BlockOps`] calls that
//! [`Program::run`] makes, in evaluation order (left to right, arguments first):
//! - `e1 + e2 - e3` (one chain, no parentheses) is **one** sum `add(&[e1, e2, -1·e3])`;
//!   a parenthesized sum is a sum of its own.
//! - `c * e` or `e * c` (`c` a number) is `scale(c, e)`, and `e / c` is `scale(1/c, e)`;
//!   `-e` is `scale(-1, e)`.
//! - `c * N(e)` with `N` a norm is that norm with output gain `c` (one operation, as
//!   LayerNorm Scaling's `l^(-1/2) N(x)`), **unless** the product is itself a term of a sum:
//!   there `c` scales a residual branch (`x + a*norm(attn(x))` is `norm`, then `scale(a)`).
//!   Both are the same number; the rule fixes the order of roundings.
//! - The block's *closing norm*, whose input's second moment is reported as `q_pre_norm`,
//!   is the last norm (in evaluation order) that is applied to a sum and whose output
//!   reaches the block output without passing through a sublayer.

use super::syntax::{self, BinOp, Expr, Span, Stmt as RawStmt};
use super::LangError;
use crate::normop::NormKind;

/// A number-valued variable of the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// `a`: the branch scale `α_l` of `--scale`.
    Alpha,
    /// `l`: the block index, from 1.
    Layer,
    /// `L`: the depth.
    Depth,
    /// `d`: the width.
    Width,
    /// `n`: the tokens.
    Tokens,
    /// `omega_attn`: Admin's residual weight `ω` of the block's attention sublayer.
    OmegaAttn,
    /// `omega_ffn`: Admin's `ω` of the block's feed-forward sublayer.
    OmegaFfn,
}

impl Var {
    const ALL: [(Var, &'static str); 7] = [
        (Var::Alpha, "a"),
        (Var::Layer, "l"),
        (Var::Depth, "L"),
        (Var::Width, "d"),
        (Var::Tokens, "n"),
        (Var::OmegaAttn, "omega_attn"),
        (Var::OmegaFfn, "omega_ffn"),
    ];

    fn name(self) -> &'static str {
        Var::ALL
            .iter()
            .find(|(v, _)| *v == self)
            .map_or("?", |p| p.1)
    }
}

/// A function of a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarFn {
    /// `sqrt`.
    Sqrt,
    /// `log` (natural).
    Log,
    /// `exp`.
    Exp,
    /// `floor`.
    Floor,
}

/// A sublayer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sublayer {
    /// `attn(·)`: the block's attention.
    Attn,
    /// `ffn(·)`: the block's feed-forward network (dense or mixture).
    Ffn,
}

const NORM_FNS: [(&str, NormKind); 5] = [
    ("norm", NormKind::Configured),
    ("layernorm", NormKind::Layernorm),
    ("rmsnorm", NormKind::Rmsnorm),
    ("dyt", NormKind::Dyt),
    ("l2norm", NormKind::L2),
];
const SUBLAYERS: [(&str, Sublayer); 2] = [("attn", Sublayer::Attn), ("ffn", Sublayer::Ffn)];
const SCALAR_FNS: [(&str, ScalarFn); 4] = [
    ("sqrt", ScalarFn::Sqrt),
    ("log", ScalarFn::Log),
    ("exp", ScalarFn::Exp),
    ("floor", ScalarFn::Floor),
];

/// Every function name, in the order error messages list them.
pub fn known_functions() -> String {
    NORM_FNS
        .iter()
        .map(|p| p.0)
        .chain(SUBLAYERS.iter().map(|p| p.0))
        .chain(SCALAR_FNS.iter().map(|p| p.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A number-valued expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// A literal.
    Num(f64),
    /// A variable.
    Var(Var),
    /// The number assigned by statement `i`.
    Ref(usize),
    /// `-s`.
    Neg(Box<Scalar>),
    /// `s op t` (`+ - * / ^`).
    Bin(BinOp, Box<Scalar>, Box<Scalar>),
    /// `f(s)`.
    Call(ScalarFn, Box<Scalar>),
}

/// A matrix-valued expression: what becomes block operations.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// The formula's input `x`.
    Input,
    /// The matrix assigned by statement `i`.
    Ref(usize),
    /// `gain · M(arg)`; `id` numbers the norms in evaluation order.
    Norm {
        /// Which normalization.
        kind: NormKind,
        /// Its input.
        arg: Box<Node>,
        /// The output gain (`None`: 1).
        gain: Option<Scalar>,
        /// Position among the formula's norms, in evaluation order.
        id: usize,
    },
    /// A sublayer applied to `arg`.
    Sub(Sublayer, Box<Node>),
    /// `c · e`.
    Scale(Scalar, Box<Node>),
    /// `Σ terms`, one operation.
    Sum(Vec<Node>),
}

/// A statement's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number.
    Scalar(Scalar),
    /// A matrix.
    Node(Node),
}

/// What a formula is checked as: which names and functions it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A block: input `x`, every variable, sublayers; must depend on a sublayer.
    Block,
    /// The stack's output map: input `x` (= `x_L`), `L`, `d`, `n`, norms only.
    Final,
    /// A number (a range bound, an init gain): `l`, `L`, `d`, `n` and numbers only.
    Number,
}

impl Role {
    fn allows(self, v: Var) -> bool {
        match self {
            Role::Block => true,
            Role::Final => matches!(v, Var::Depth | Var::Width | Var::Tokens),
            Role::Number => matches!(v, Var::Layer | Var::Depth | Var::Width | Var::Tokens),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Role::Block => "a block formula",
            Role::Final => "the final formula",
            Role::Number => "a number formula",
        }
    }
}

/// Which values reach the output, by kind of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uses {
    /// `attn` is called.
    pub attn: bool,
    /// `ffn` is called.
    pub ffn: bool,
    /// `a` is read.
    pub alpha: bool,
    /// `omega_attn` or `omega_ffn` is read.
    pub omega: bool,
    /// `dyt` is called.
    pub dyt: bool,
}

/// A checked formula: statements, which one is the output, and what analysis found.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    stmts: Vec<(String, Value)>,
    text: String,
    closing: Option<usize>,
    uses: Uses,
    invariant: bool,
}

/// How a matrix depends on the input under `x ↦ c x`, `c > 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Degree {
    /// Unchanged (scale-invariant, or independent of `x`).
    Zero,
    /// Multiplied by `c` (attention and the feed-forward network counted as homogeneous,
    /// as in `analysis/theory.md` §2.2).
    One,
    /// Neither.
    Other,
}

struct Checker<'a> {
    what: &'a str,
    role: Role,
    /// `(name, where, value)` of the statements checked so far.
    defined: Vec<(String, Span, Value)>,
    /// Every statement's name, to tell "used before it is defined" from "unknown".
    all: Vec<(String, Span)>,
    used: Vec<bool>,
    norms: usize,
}

fn err(what: &str, span: Span, msg: impl Into<String>) -> LangError {
    LangError::at(what, span, msg)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Scalar(_) => "a number",
        Value::Node(_) => "a matrix",
    }
}

impl Checker<'_> {
    fn name(&mut self, n: &str, span: Span) -> Result<Value, LangError> {
        if n == "x" {
            return Ok(Value::Node(Node::Input));
        }
        if let Some(&(v, _)) = Var::ALL.iter().find(|(_, s)| *s == n) {
            if !self.role.allows(v) {
                return Err(err(
                    self.what,
                    span,
                    format!("'{n}' is not available in {}", self.role.describe()),
                ));
            }
            return Ok(Value::Scalar(Scalar::Var(v)));
        }
        if let Some(i) = self.defined.iter().position(|d| d.0 == n) {
            self.used[i] = true;
            return Ok(match &self.defined[i].2 {
                Value::Scalar(_) => Value::Scalar(Scalar::Ref(i)),
                Value::Node(_) => Value::Node(Node::Ref(i)),
            });
        }
        if let Some((_, at)) = self.all.iter().find(|d| d.0 == n) {
            return Err(err(
                self.what,
                span,
                format!(
                    "'{n}' is used before it is defined (at {}:{})",
                    at.line, at.col
                ),
            ));
        }
        let mut names: Vec<&str> = vec!["x"];
        names.extend(
            Var::ALL
                .iter()
                .filter(|(v, _)| self.role.allows(*v))
                .map(|p| p.1),
        );
        names.extend(self.defined.iter().map(|d| d.0.as_str()));
        Err(err(
            self.what,
            span,
            format!("unknown name '{n}' (known here: {})", names.join(", ")),
        ))
    }

    /// Checks `e`; `term` says whether `e` is directly a term of a sum.
    fn expr(&mut self, e: &Expr, term: bool) -> Result<Value, LangError> {
        match e {
            Expr::Num(v, _) => Ok(Value::Scalar(Scalar::Num(*v))),
            Expr::Name(n, span) => self.name(n, *span),
            Expr::Paren(inner, _) => self.expr(inner, term),
            Expr::Neg(inner, _) => Ok(match self.expr(inner, false)? {
                Value::Scalar(s) => Value::Scalar(Scalar::Neg(Box::new(s))),
                Value::Node(n) => Value::Node(Node::Scale(Scalar::Num(-1.0), Box::new(n))),
            }),
            Expr::Call(f, span, arg) => self.call(f, *span, arg),
            Expr::Bin(op @ (BinOp::Add | BinOp::Sub), ..) => self.sum(e, *op),
            Expr::Bin(op, lhs, rhs, span) => {
                let a = self.expr(lhs, false)?;
                let b = self.expr(rhs, false)?;
                self.product(*op, a, b, *span, term)
            }
        }
    }

    fn product(
        &mut self,
        op: BinOp,
        a: Value,
        b: Value,
        span: Span,
        term: bool,
    ) -> Result<Value, LangError> {
        let scale = |c: Scalar, n: Node| -> Value {
            match n {
                // `c · N(e)` outside a sum is the norm's gain.
                Node::Norm {
                    kind,
                    arg,
                    gain: None,
                    id,
                } if !term => Value::Node(Node::Norm {
                    kind,
                    arg,
                    gain: Some(c),
                    id,
                }),
                n => Value::Node(Node::Scale(c, Box::new(n))),
            }
        };
        match (op, a, b) {
            (_, Value::Scalar(x), Value::Scalar(y)) => {
                Ok(Value::Scalar(Scalar::Bin(op, Box::new(x), Box::new(y))))
            }
            (BinOp::Mul, Value::Scalar(c), Value::Node(n))
            | (BinOp::Mul, Value::Node(n), Value::Scalar(c)) => Ok(scale(c, n)),
            (BinOp::Div, Value::Node(n), Value::Scalar(c)) => Ok(scale(
                Scalar::Bin(BinOp::Div, Box::new(Scalar::Num(1.0)), Box::new(c)),
                n,
            )),
            (BinOp::Mul, Value::Node(_), Value::Node(_)) => Err(err(
                self.what,
                span,
                "cannot multiply two matrices (a number times a matrix is allowed)",
            )),
            (BinOp::Div, _, Value::Node(_)) => Err(err(
                self.what,
                span,
                "cannot divide by a matrix (divide a matrix by a number)",
            )),
            (_, a, b) => Err(err(
                self.what,
                span,
                format!(
                    "'^' needs a number on both sides, not {} and {}",
                    kind_of(&a),
                    kind_of(&b)
                ),
            )),
        }
    }

    /// A chain `t1 ± t2 ± …` (without parentheses) as one sum of matrices, or arithmetic.
    fn sum(&mut self, e: &Expr, _op: BinOp) -> Result<Value, LangError> {
        // Collect the chain's terms with their signs and operator positions.
        let mut terms: Vec<(bool, &Expr, Option<Span>)> = Vec::new();
        let mut cur = e;
        while let Expr::Bin(op @ (BinOp::Add | BinOp::Sub), lhs, rhs, span) = cur {
            terms.push((*op == BinOp::Sub, rhs, Some(*span)));
            cur = lhs;
        }
        terms.push((false, cur, None));
        terms.reverse();
        let mut values = Vec::with_capacity(terms.len());
        for (neg, t, _) in &terms {
            let v = self.expr(t, true)?;
            values.push((*neg, v));
        }
        let scalars = values
            .iter()
            .filter(|(_, v)| matches!(v, Value::Scalar(_)))
            .count();
        if scalars == values.len() {
            let mut it = values.into_iter();
            let Some((_, Value::Scalar(mut acc))) = it.next() else {
                unreachable!("a chain has a first term")
            };
            for (neg, v) in it {
                let Value::Scalar(s) = v else { unreachable!() };
                let op = if neg { BinOp::Sub } else { BinOp::Add };
                acc = Scalar::Bin(op, Box::new(acc), Box::new(s));
            }
            return Ok(Value::Scalar(acc));
        }
        if scalars > 0 {
            // Point at the first operator joining a number and a matrix.
            let mut at = terms[1].2.unwrap_or_else(|| e.span());
            for k in 1..values.len() {
                if kind_of(&values[k].1) != kind_of(&values[k - 1].1) {
                    at = terms[k].2.unwrap_or(at);
                    break;
                }
            }
            return Err(err(
                self.what,
                at,
                "cannot add a number and a matrix (scale the matrix instead: c*x)",
            ));
        }
        let nodes = values
            .into_iter()
            .map(|(neg, v)| {
                let Value::Node(n) = v else { unreachable!() };
                if neg {
                    Node::Scale(Scalar::Num(-1.0), Box::new(n))
                } else {
                    n
                }
            })
            .collect();
        Ok(Value::Node(Node::Sum(nodes)))
    }

    fn call(&mut self, f: &str, span: Span, arg: &Expr) -> Result<Value, LangError> {
        let v = self.expr(arg, false)?;
        let wants = |kind: &str| {
            err(
                self.what,
                span,
                format!("{f}(…) takes {kind}, not {}", kind_of(&v)),
            )
        };
        if let Some(&(_, kind)) = NORM_FNS.iter().find(|p| p.0 == f) {
            let Value::Node(n) = v else {
                return Err(wants("a matrix"));
            };
            let id = self.norms;
            self.norms += 1;
            return Ok(Value::Node(Node::Norm {
                kind,
                arg: Box::new(n),
                gain: None,
                id,
            }));
        }
        if let Some(&(_, sub)) = SUBLAYERS.iter().find(|p| p.0 == f) {
            if self.role != Role::Block {
                return Err(err(
                    self.what,
                    span,
                    format!(
                        "{f}(…) is not available in {} (only blocks have sublayers)",
                        self.role.describe()
                    ),
                ));
            }
            let Value::Node(n) = v else {
                return Err(wants("a matrix"));
            };
            return Ok(Value::Node(Node::Sub(sub, Box::new(n))));
        }
        if let Some(&(_, sf)) = SCALAR_FNS.iter().find(|p| p.0 == f) {
            let Value::Scalar(s) = v else {
                return Err(wants("a number"));
            };
            return Ok(Value::Scalar(Scalar::Call(sf, Box::new(s))));
        }
        let mut msg = format!("unknown function '{f}' (known: {})", known_functions());
        if let Some(close) = closest(f) {
            msg += &format!("; did you mean '{close}'?");
        }
        Err(err(self.what, span, msg))
    }
}

/// The known function nearest to `f` by edit distance, if it is within 2 edits.
fn closest(f: &str) -> Option<&'static str> {
    fn dist(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for i in 1..=a.len() {
            let mut cur = vec![i; b.len() + 1];
            for j in 1..=b.len() {
                let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
                cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    NORM_FNS
        .iter()
        .map(|p| p.0)
        .chain(SUBLAYERS.iter().map(|p| p.0))
        .chain(SCALAR_FNS.iter().map(|p| p.0))
        .map(|k| (dist(f, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl Program {
    /// Parses and checks `text` as a formula of `role`; `what` names it in errors.
    pub fn parse(text: &str, role: Role, what: &str) -> Result<Program, LangError> {
        let raw = syntax::parse(text, what)?;
        Program::check(&raw, text, role, what)
    }

    fn check(raw: &[RawStmt], text: &str, role: Role, what: &str) -> Result<Program, LangError> {
        let reserved = |n: &str| {
            n == "x"
                || Var::ALL.iter().any(|(_, s)| *s == n)
                || NORM_FNS.iter().any(|p| p.0 == n)
                || SUBLAYERS.iter().any(|p| p.0 == n)
                || SCALAR_FNS.iter().any(|p| p.0 == n)
        };
        let mut c = Checker {
            what,
            role,
            defined: Vec::new(),
            all: Vec::new(),
            used: Vec::new(),
            norms: 0,
        };
        for (k, s) in raw.iter().enumerate() {
            let name = match &s.name {
                Some((n, span)) => {
                    if reserved(n) {
                        return Err(err(
                            what,
                            *span,
                            format!("cannot assign to '{n}': it is a built-in name"),
                        ));
                    }
                    if let Some((_, at)) = c.all.iter().find(|d| d.0 == *n) {
                        return Err(err(
                            what,
                            *span,
                            format!("'{n}' is already defined (at {}:{})", at.line, at.col),
                        ));
                    }
                    (n.clone(), *span)
                }
                None => (format!("#{k}"), s.expr.span()),
            };
            c.all.push(name);
        }
        for (k, s) in raw.iter().enumerate() {
            let v = c.expr(&s.expr, false)?;
            let (name, span) = c.all[k].clone();
            c.defined.push((name, span, v));
            c.used.push(false);
        }
        let last = c.defined.len() - 1;
        for (i, used) in c.used.iter().enumerate().take(last) {
            if !used {
                let (name, span, _) = &c.defined[i];
                return Err(err(
                    what,
                    *span,
                    format!("'{name}' is defined but never used"),
                ));
            }
        }
        let out_span = c.defined[last].1;
        let out_is_number = matches!(c.defined[last].2, Value::Scalar(_));
        if role != Role::Number && out_is_number {
            return Err(err(
                what,
                out_span,
                "the formula's value (its last statement) is a number; it must be a matrix",
            ));
        }
        if role == Role::Number && !out_is_number {
            return Err(err(
                what,
                out_span,
                "this formula must give a number, not a matrix",
            ));
        }
        let stmts: Vec<(String, Value)> = c.defined.into_iter().map(|(n, _, v)| (n, v)).collect();
        let mut p = Program {
            stmts,
            text: text.to_string(),
            closing: None,
            uses: Uses::default(),
            invariant: false,
        };
        if role == Role::Number {
            return Ok(p);
        }
        p.uses = p.find_uses();
        if role == Role::Block && !(p.uses.attn || p.uses.ffn) {
            return Err(err(
                what,
                out_span,
                "the block's output never depends on attn(…) or ffn(…): every block would be a \
                 fixed map of its input",
            ));
        }
        p.closing = p.find_closing();
        p.invariant = p.degree_of_stmt(last) == Degree::Zero;
        Ok(p)
    }

    /// The formula as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What reaches the output.
    pub fn uses(&self) -> Uses {
        self.uses
    }

    /// Whether the output is unchanged when the input is scaled by `c > 0` (attention and
    /// the feed-forward network counted as homogeneous, `analysis/theory.md` §2.2).
    pub fn scale_invariant(&self) -> bool {
        self.invariant
    }

    /// Whether the formula is the identity `x`.
    pub fn is_identity(&self) -> bool {
        self.stmts.len() == 1 && self.stmts[0].1 == Value::Node(Node::Input)
    }

    /// Whether the formula is exactly `norm(x)`: the configured norm, gain 1, of the input.
    pub fn is_plain_norm(&self) -> bool {
        matches!(
            &self.stmts[..],
            [(_, Value::Node(Node::Norm { kind: NormKind::Configured, arg, gain: None, .. }))]
                if **arg == Node::Input
        )
    }

    /// The statements, in order.
    pub fn stmts(&self) -> &[(String, Value)] {
        &self.stmts
    }

    /// The id of the closing norm, if any.
    pub fn closing(&self) -> Option<usize> {
        self.closing
    }

    fn out(&self) -> &Value {
        &self.stmts[self.stmts.len() - 1].1
    }

    /// What the formula uses. Every statement is used (checked), so every statement
    /// reaches the output.
    fn find_uses(&self) -> Uses {
        fn scalar(s: &Scalar, u: &mut Uses) {
            match s {
                Scalar::Var(Var::Alpha) => u.alpha = true,
                Scalar::Var(Var::OmegaAttn | Var::OmegaFfn) => u.omega = true,
                Scalar::Neg(a) | Scalar::Call(_, a) => scalar(a, u),
                Scalar::Bin(_, a, b) => {
                    scalar(a, u);
                    scalar(b, u);
                }
                Scalar::Num(_) | Scalar::Var(_) | Scalar::Ref(_) => {}
            }
        }
        fn node(n: &Node, u: &mut Uses) {
            match n {
                Node::Input | Node::Ref(_) => {}
                Node::Norm {
                    kind, arg, gain, ..
                } => {
                    u.dyt |= *kind == NormKind::Dyt;
                    if let Some(g) = gain {
                        scalar(g, u);
                    }
                    node(arg, u);
                }
                Node::Sub(s, arg) => {
                    match s {
                        Sublayer::Attn => u.attn = true,
                        Sublayer::Ffn => u.ffn = true,
                    }
                    node(arg, u);
                }
                Node::Scale(c, arg) => {
                    scalar(c, u);
                    node(arg, u);
                }
                Node::Sum(ts) => ts.iter().for_each(|t| node(t, u)),
            }
        }
        let mut u = Uses::default();
        for (_, v) in &self.stmts {
            match v {
                Value::Scalar(s) => scalar(s, &mut u),
                Value::Node(n) => node(n, &mut u),
            }
        }
        u
    }

    /// The node that `n` stands for, following references.
    fn resolve<'a>(&'a self, n: &'a Node) -> &'a Node {
        match n {
            Node::Ref(i) => match &self.stmts[*i].1 {
                Value::Node(m) => self.resolve(m),
                Value::Scalar(_) => n,
            },
            _ => n,
        }
    }

    fn find_closing(&self) -> Option<usize> {
        // Norms whose output reaches the output through sums, scales and norms only.
        fn walk(p: &Program, n: &Node, out: &mut Vec<usize>, depth: usize) {
            if depth > 10_000 {
                return;
            }
            match n {
                Node::Ref(i) => {
                    if let Value::Node(m) = &p.stmts[*i].1 {
                        walk(p, m, out, depth + 1);
                    }
                }
                Node::Norm { arg, id, .. } => {
                    if matches!(p.resolve(arg), Node::Sum(_)) {
                        out.push(*id);
                    }
                    walk(p, arg, out, depth + 1);
                }
                Node::Scale(_, arg) => walk(p, arg, out, depth + 1),
                Node::Sum(ts) => ts.iter().for_each(|t| walk(p, t, out, depth + 1)),
                Node::Input | Node::Sub(..) => {}
            }
        }
        let Value::Node(n) = self.out() else {
            return None;
        };
        let mut ids = Vec::new();
        walk(self, n, &mut ids, 0);
        ids.into_iter().max()
    }

    fn degree_of_stmt(&self, i: usize) -> Degree {
        match &self.stmts[i].1 {
            Value::Node(n) => self.degree(n),
            Value::Scalar(_) => Degree::Zero,
        }
    }

    fn degree(&self, n: &Node) -> Degree {
        match n {
            Node::Input => Degree::One,
            Node::Ref(i) => self.degree_of_stmt(*i),
            Node::Norm { kind, arg, .. } => match (kind, self.degree(arg)) {
                (_, Degree::Zero) => Degree::Zero,
                (NormKind::Dyt, _) => Degree::Other,
                (_, Degree::One) => Degree::Zero,
                (_, Degree::Other) => Degree::Other,
            },
            Node::Sub(_, arg) => self.degree(arg),
            Node::Scale(_, arg) => self.degree(arg),
            Node::Sum(ts) => {
                let ds: Vec<Degree> = ts.iter().map(|t| self.degree(t)).collect();
                if ds.iter().all(|&d| d == ds[0]) {
                    ds[0]
                } else {
                    Degree::Other
                }
            }
        }
    }

    /// The value of a number formula (a [`Role::Number`] program) at block `l` of `depth`.
    pub fn number(&self, l: usize, depth: usize, width: usize, tokens: usize) -> f64 {
        let env = Env {
            alpha: f64::NAN,
            l,
            depth,
            width,
            tokens,
            omega: [f64::NAN; 2],
        };
        let mut vals = vec![f64::NAN; self.stmts.len()];
        for (i, (_, v)) in self.stmts.iter().enumerate() {
            if let Value::Scalar(s) = v {
                vals[i] = env.eval(s, &vals);
            }
        }
        vals[self.stmts.len() - 1]
    }

    /// Whether the formula, evaluated at `env`, is exactly its input: every other term is
    /// scaled by 0 (sublayers and norms map 0 to 0: no biases). ReZero with `α = 0`.
    pub fn is_identity_at(&self, env: &Env) -> bool {
        #[derive(Clone, Copy, PartialEq)]
        enum V {
            Input,
            Zero,
            Other,
        }
        let mut nums = vec![f64::NAN; self.stmts.len()];
        let mut vals = vec![V::Other; self.stmts.len()];
        fn node(n: &Node, env: &Env, nums: &[f64], vals: &[V]) -> V {
            match n {
                Node::Input => V::Input,
                Node::Ref(i) => vals[*i],
                Node::Norm { arg, .. } | Node::Sub(_, arg) => match node(arg, env, nums, vals) {
                    V::Zero => V::Zero,
                    _ => V::Other,
                },
                Node::Scale(c, arg) => {
                    let c = env.eval(c, nums);
                    let v = node(arg, env, nums, vals);
                    if c == 0.0 || v == V::Zero {
                        V::Zero
                    } else if c == 1.0 {
                        v
                    } else {
                        V::Other
                    }
                }
                Node::Sum(ts) => {
                    let vs: Vec<V> = ts.iter().map(|t| node(t, env, nums, vals)).collect();
                    let inputs = vs.iter().filter(|&&v| v == V::Input).count();
                    let zeros = vs.iter().filter(|&&v| v == V::Zero).count();
                    match (inputs, zeros) {
                        (0, z) if z == vs.len() => V::Zero,
                        (1, z) if z + 1 == vs.len() => V::Input,
                        _ => V::Other,
                    }
                }
            }
        }
        for (i, (_, v)) in self.stmts.iter().enumerate() {
            match v {
                Value::Scalar(s) => nums[i] = env.eval(s, &nums),
                Value::Node(n) => vals[i] = node(n, env, &nums, &vals),
            }
        }
        vals[self.stmts.len() - 1] == V::Input
    }

    /// Whether any number of the formula reads variable `v`.
    pub fn reads(&self, v: Var) -> bool {
        fn scalar(s: &Scalar, v: Var) -> bool {
            match s {
                Scalar::Var(w) => *w == v,
                Scalar::Neg(a) | Scalar::Call(_, a) => scalar(a, v),
                Scalar::Bin(_, a, b) => scalar(a, v) || scalar(b, v),
                Scalar::Num(_) | Scalar::Ref(_) => false,
            }
        }
        let mut inline = Vec::new();
        let mut found = false;
        for (_, val) in &self.stmts {
            match val {
                Value::Scalar(s) => found |= scalar(s, v),
                Value::Node(n) => collect_scalars(n, &mut inline),
            }
        }
        found || inline.iter().any(|s| scalar(s, v))
    }

    /// The first number the formula computes at `env` that is not finite, as
    /// `(expression, value)`: every number statement and every scale and gain.
    pub fn non_finite(&self, env: &Env) -> Option<(String, f64)> {
        let mut vals = vec![f64::NAN; self.stmts.len()];
        let mut inline: Vec<Scalar> = Vec::new();
        for (i, (name, v)) in self.stmts.iter().enumerate() {
            match v {
                Value::Scalar(s) => {
                    vals[i] = env.eval(s, &vals);
                    if !vals[i].is_finite() {
                        return Some((name.clone(), vals[i]));
                    }
                }
                Value::Node(n) => collect_scalars(n, &mut inline),
            }
        }
        inline
            .iter()
            .map(|s| (show_scalar(s, &self.stmts), env.eval(s, &vals)))
            .find(|(_, v)| !v.is_finite())
    }
}

fn collect_scalars(n: &Node, out: &mut Vec<Scalar>) {
    match n {
        Node::Norm { arg, gain, .. } => {
            out.extend(gain.iter().cloned());
            collect_scalars(arg, out);
        }
        Node::Scale(c, arg) => {
            out.push(c.clone());
            collect_scalars(arg, out);
        }
        Node::Sub(_, arg) => collect_scalars(arg, out),
        Node::Sum(ts) => ts.iter().for_each(|t| collect_scalars(t, out)),
        Node::Input | Node::Ref(_) => {}
    }
}

/// A number expression as text (for messages), parenthesized where nested.
pub fn show_scalar(s: &Scalar, stmts: &[(String, Value)]) -> String {
    fn inner(s: &Scalar, stmts: &[(String, Value)]) -> String {
        match s {
            Scalar::Bin(..) => format!("({})", show_scalar(s, stmts)),
            _ => show_scalar(s, stmts),
        }
    }
    match s {
        Scalar::Num(v) => format!("{v}"),
        Scalar::Var(v) => v.name().to_string(),
        Scalar::Ref(i) => stmts[*i].0.clone(),
        Scalar::Neg(a) => format!("-{}", inner(a, stmts)),
        Scalar::Bin(op, a, b) => {
            let sym = match op {
                BinOp::Add => "+",
                BinOp::Sub => "-",
                BinOp::Mul => "*",
                BinOp::Div => "/",
                BinOp::Pow => "^",
            };
            format!("{} {sym} {}", inner(a, stmts), inner(b, stmts))
        }
        Scalar::Call(f, a) => {
            let name = SCALAR_FNS.iter().find(|p| p.1 == *f).map_or("?", |p| p.0);
            format!("{name}({})", show_scalar(a, stmts))
        }
    }
}

/// The values of the variables where a formula is evaluated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Env {
    /// `a`.
    pub alpha: f64,
    /// `l`.
    pub l: usize,
    /// `L`.
    pub depth: usize,
    /// `d`.
    pub width: usize,
    /// `n`.
    pub tokens: usize,
    /// `omega_attn`, `omega_ffn`.
    pub omega: [f64; 2],
}

impl Env {
    fn var(&self, v: Var) -> f64 {
        match v {
            Var::Alpha => self.alpha,
            Var::Layer => self.l as f64,
            Var::Depth => self.depth as f64,
            Var::Width => self.width as f64,
            Var::Tokens => self.tokens as f64,
            Var::OmegaAttn => self.omega[0],
            Var::OmegaFfn => self.omega[1],
        }
    }

    /// The value of `s`, with `vals[i]` the number of statement `i`.
    pub fn eval(&self, s: &Scalar, vals: &[f64]) -> f64 {
        match s {
            Scalar::Num(v) => *v,
            Scalar::Var(v) => self.var(*v),
            Scalar::Ref(i) => vals[*i],
            Scalar::Neg(a) => -self.eval(a, vals),
            Scalar::Bin(op, a, b) => {
                let (x, y) = (self.eval(a, vals), self.eval(b, vals));
                match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    BinOp::Pow => x.powf(y),
                }
            }
            Scalar::Call(f, a) => {
                let x = self.eval(a, vals);
                match f {
                    ScalarFn::Sqrt => x.sqrt(),
                    ScalarFn::Log => x.ln(),
                    ScalarFn::Exp => x.exp(),
                    ScalarFn::Floor => x.floor(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Placement;

    fn block(text: &str) -> Result<Program, String> {
        Program::parse(text, Role::Block, "block").map_err(|e| e.to_string())
    }

    #[test]
    fn a_norm_times_a_number_is_a_gain_except_as_a_term_of_a_sum() {
        let p = block("y = x + a*attn(l^(-1/2)*norm(x))").unwrap();
        let Value::Node(Node::Sum(ts)) = &p.stmts()[0].1 else {
            panic!()
        };
        let Node::Scale(_, attn) = &ts[1] else {
            panic!("{:?}", ts[1])
        };
        let Node::Sub(Sublayer::Attn, arg) = &**attn else {
            panic!()
        };
        assert!(matches!(**arg, Node::Norm { gain: Some(_), .. }));
        let p = block("y = x + a*norm(attn(x))").unwrap();
        let Value::Node(Node::Sum(ts)) = &p.stmts()[0].1 else {
            panic!()
        };
        assert!(
            matches!(&ts[1], Node::Scale(_, n) if matches!(**n, Node::Norm { gain: None, .. }))
        );
    }

    #[test]
    fn sums_are_one_operation_per_chain() {
        let p = block("y = x + attn(x) - x + (x + ffn(x))").unwrap();
        let Value::Node(Node::Sum(ts)) = &p.stmts()[0].1 else {
            panic!()
        };
        assert_eq!(ts.len(), 4);
        assert!(matches!(&ts[2], Node::Scale(Scalar::Num(v), _) if *v == -1.0));
        assert!(matches!(&ts[3], Node::Sum(inner) if inner.len() == 2));
    }

    #[test]
    fn closing_norms_and_scale_invariance_match_the_built_in_placements() {
        // (placement, has a closing norm, scale-invariant)
        let expect = [
            (Placement::Pre, false, false),
            (Placement::Post, true, true),
            (Placement::Span, true, true),
            (Placement::SpanOuter, true, false),
            (Placement::Deepnorm, true, true),
            (Placement::B2t, true, false),
            (Placement::Peri, false, false),
            (Placement::Lns, false, false),
            (Placement::AttnOnly, false, false),
            (Placement::AttnSkip, false, false),
        ];
        for (p, closing, invariant) in expect {
            let prog = p.definition().unwrap().programs().next().unwrap();
            assert_eq!(prog.closing().is_some(), closing, "{p}");
            assert_eq!(prog.scale_invariant(), invariant, "{p}");
        }
        // span with --inner-norm: A(N(x)) is not homogeneous.
        let inner = Placement::Span
            .definition()
            .unwrap()
            .programs()
            .nth(1)
            .unwrap();
        assert!(!inner.scale_invariant());
        // span-outer closes `b`, its second norm (id 1), not the first.
        let so = Placement::SpanOuter
            .definition()
            .unwrap()
            .programs()
            .next()
            .unwrap();
        assert_eq!(so.closing(), Some(1));
    }

    #[test]
    fn formulas_that_are_not_blocks_are_refused_with_a_reason() {
        let cases = [
            (
                "h = x + a*attn(nrom(x)); y = h",
                "block:1:16: unknown function 'nrom' (known: norm, layernorm, rmsnorm, dyt, \
                 l2norm, attn, ffn, sqrt, log, exp, floor); did you mean 'norm'?",
            ),
            (
                "y = h + attn(x); h = x",
                "block:1:5: 'h' is used before it is defined (at 1:18)",
            ),
            (
                "y = norm(x)",
                "block:1:1: the block's output never depends on attn(…) or ffn(…)",
            ),
            (
                "h = attn(x); y = x",
                "block:1:1: 'h' is defined but never used",
            ),
            ("y = x + 1", "block:1:7: cannot add a number and a matrix"),
            (
                "y = attn(x) * ffn(x)",
                "block:1:13: cannot multiply two matrices",
            ),
            (
                "y = attn(x)^2",
                "block:1:12: '^' needs a number on both sides",
            ),
            (
                "y = sqrt(attn(x))",
                "block:1:5: sqrt(…) takes a number, not a matrix",
            ),
            (
                "y = attn(2)",
                "block:1:5: attn(…) takes a matrix, not a number",
            ),
            ("x = attn(x)", "block:1:1: cannot assign to 'x'"),
            (
                "h = attn(x); h = ffn(h)",
                "block:1:14: 'h' is already defined (at 1:1)",
            ),
            (
                "y = attn(x) + q",
                "block:1:15: unknown name 'q' (known here: x, a, l, L, d, n",
            ),
            (
                "w = 2; y = w",
                "block:1:8: the formula's value (its last statement) is a number",
            ),
        ];
        for (text, want) in cases {
            let e = block(text).unwrap_err();
            assert!(e.starts_with(want), "{text}:\n  got  {e}\n  want {want}");
        }
        let fin = |t: &str| {
            Program::parse(t, Role::Final, "final")
                .unwrap_err()
                .to_string()
        };
        assert!(
            fin("attn(x)").starts_with("final:1:1: attn(…) is not available in the final formula")
        );
        assert!(
            fin("a*norm(x)").starts_with("final:1:1: 'a' is not available in the final formula")
        );
        assert!(Program::parse("norm(x)", Role::Final, "final")
            .unwrap()
            .is_plain_norm());
        assert!(Program::parse("x", Role::Final, "final")
            .unwrap()
            .is_identity());
    }

    #[test]
    fn numbers_follow_ieee_arithmetic_in_order() {
        let p = Program::parse("(8*L)^(-1/4)", Role::Number, "gain").unwrap();
        assert_eq!(
            p.number(1, 6, 8, 4).to_bits(),
            (8.0 * 6.0f64).powf(-0.25).to_bits()
        );
        let p = Program::parse("floor(L/4)", Role::Number, "until").unwrap();
        assert_eq!(p.number(1, 7, 8, 4), 1.0);
        let p = Program::parse("sqrt(log(2*L))", Role::Number, "gain").unwrap();
        assert_eq!(p.number(1, 8, 8, 4), (16f64).ln().sqrt());
        assert!(p.reads(Var::Depth) && !p.reads(Var::Layer));
    }
}
