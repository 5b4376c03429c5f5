//! Text to syntax tree: a hand-written lexer and recursive-descent parser.
//!
//! ```text
//! program := sep* stmt (sep+ stmt)* sep*          sep := ';' | newline
//! stmt    := name '=' expr | expr                 (a bare expression only last)
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/') unary)*
//! unary   := '-' unary | power
//! power   := atom ('^' unary)?                    (right-associative: 2^-1, a^b^c)
//! atom    := number | name | name '(' expr ')' | '(' expr ')'
//! ```
//!
//! Every node keeps the line and column (1-based, in characters) where it starts, so the
//! type checker ([`super::program`]) can point at it.

use super::LangError;

/// A position in a formula: line and column, both 1-based, in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `^`.
    Pow,
}

impl BinOp {
    fn symbol(self) -> char {
        match self {
            BinOp::Add => '+',
            BinOp::Sub => '-',
            BinOp::Mul => '*',
            BinOp::Div => '/',
            BinOp::Pow => '^',
        }
    }
}

/// An expression as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number literal.
    Num(f64, Span),
    /// A name: the input `x`, a scalar (`a`, `l`, `L`, `d`, `n`) or an earlier assignment.
    Name(String, Span),
    /// `f(arg)`.
    Call(String, Span, Box<Expr>),
    /// `-e`, at the minus sign.
    Neg(Box<Expr>, Span),
    /// `lhs op rhs`, at the operator.
    Bin(BinOp, Box<Expr>, Box<Expr>, Span),
    /// `(e)`: grouping, which also stops a sum from being merged into an enclosing one.
    Paren(Box<Expr>, Span),
}

impl Expr {
    /// Where the expression starts.
    pub fn span(&self) -> Span {
        match self {
            Expr::Num(_, s) | Expr::Name(_, s) | Expr::Call(_, s, _) | Expr::Neg(_, s) => *s,
            Expr::Paren(_, s) => *s,
            Expr::Bin(_, lhs, _, _) => lhs.span(),
        }
    }
}

/// One statement: `name = expr`, or a bare expression (the last statement only).
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// The assigned name and where it is written.
    pub name: Option<(String, Span)>,
    /// The value.
    pub expr: Expr,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(char),
    LParen,
    RParen,
    Eq,
    Sep,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Num(v) => format!("the number {v}"),
            Tok::Name(n) => format!("'{n}'"),
            Tok::Op(c) => format!("'{c}'"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Eq => "'='".into(),
            Tok::Sep => "the end of the statement".into(),
            Tok::End => "the end of the formula".into(),
        }
    }
}

/// Splits `text` into tokens with their positions.
fn lex(text: &str, what: &str) -> Result<Vec<(Tok, Span)>, LangError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0, 1, 1);
    while i < chars.len() {
        let c = chars[i];
        let span = Span { line, col };
        let err = |msg: String| LangError::at(what, span, msg);
        if c == '\n' {
            out.push((Tok::Sep, span));
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            col += 1;
            continue;
        }
        if c == '#' {
            // A comment runs to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
                col += 1;
            }
            continue;
        }
        let start = i;
        let tok = if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let s: String = chars[start..i].iter().collect();
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Tok::Num(v),
                _ => return Err(err(format!("'{s}' is not a number"))),
            }
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            Tok::Name(chars[start..i].iter().collect())
        } else {
            i += 1;
            match c {
                '+' | '-' | '*' | '/' | '^' => Tok::Op(c),
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                '=' => Tok::Eq,
                ';' => Tok::Sep,
                other => {
                    return Err(err(format!(
                        "unexpected character '{other}' (expected a name, a number, an \
                         operator + - * / ^, parentheses, '=' or ';')"
                    )))
                }
            }
        };
        col += i - start;
        out.push((tok, span));
    }
    out.push((Tok::End, Span { line, col }));
    Ok(out)
}

/// The deepest nesting a formula may have (parentheses, unary minus, powers): a formula is a
/// few lines, so this only stops a hostile input from exhausting the stack.
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    toks: Vec<(Tok, Span)>,
    pos: usize,
    what: &'a str,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }

    fn span(&self) -> Span {
        self.toks[self.pos].1
    }

    fn bump(&mut self) -> (Tok, Span) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error(&self, expected: &str) -> LangError {
        LangError::at(
            self.what,
            self.span(),
            format!("expected {expected}, found {}", self.peek().describe()),
        )
    }

    fn deeper(&mut self) -> Result<(), LangError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(LangError::at(
                self.what,
                self.span(),
                format!("the formula nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn program(&mut self) -> Result<Vec<Stmt>, LangError> {
        let mut stmts: Vec<Stmt> = Vec::new();
        loop {
            while *self.peek() == Tok::Sep {
                self.bump();
            }
            if *self.peek() == Tok::End {
                break;
            }
            if let Some(last) = stmts.last() {
                if last.name.is_none() {
                    return Err(LangError::at(
                        self.what,
                        last.expr.span(),
                        "only the last statement may be a bare expression (write 'name = …')",
                    ));
                }
            }
            stmts.push(self.stmt()?);
            match self.peek() {
                Tok::Sep | Tok::End => {}
                _ => return Err(self.error("';', a new line or an operator")),
            }
        }
        if stmts.is_empty() {
            return Err(LangError::at(
                self.what,
                self.span(),
                "empty formula (expected statements like 'h = x + a*attn(norm(x))')",
            ));
        }
        Ok(stmts)
    }

    fn stmt(&mut self) -> Result<Stmt, LangError> {
        if let (Tok::Name(n), Tok::Eq) = (self.peek().clone(), &self.toks[self.pos + 1].0) {
            let span = self.span();
            self.bump();
            self.bump();
            let expr = self.expr()?;
            return Ok(Stmt {
                name: Some((n, span)),
                expr,
            });
        }
        Ok(Stmt {
            name: None,
            expr: self.expr()?,
        })
    }

    fn expr(&mut self) -> Result<Expr, LangError> {
        let mut lhs = self.term()?;
        while let Tok::Op(c @ ('+' | '-')) = *self.peek() {
            let (_, span) = self.bump();
            let op = if c == '+' { BinOp::Add } else { BinOp::Sub };
            let rhs = self.term()?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs), span);
        }
        Ok(lhs)
    }

    fn term(&mut self) -> Result<Expr, LangError> {
        let mut lhs = self.unary()?;
        while let Tok::Op(c @ ('*' | '/')) = *self.peek() {
            let (_, span) = self.bump();
            let op = if c == '*' { BinOp::Mul } else { BinOp::Div };
            let rhs = self.unary()?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs), span);
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, LangError> {
        self.deeper()?;
        let e = if *self.peek() == Tok::Op('-') {
            let (_, span) = self.bump();
            Expr::Neg(Box::new(self.unary()?), span)
        } else {
            self.power()?
        };
        self.depth -= 1;
        Ok(e)
    }

    fn power(&mut self) -> Result<Expr, LangError> {
        let base = self.atom()?;
        if *self.peek() == Tok::Op('^') {
            let (_, span) = self.bump();
            let exp = self.unary()?;
            return Ok(Expr::Bin(BinOp::Pow, Box::new(base), Box::new(exp), span));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Expr, LangError> {
        let span = self.span();
        match self.peek().clone() {
            Tok::Num(v) => {
                self.bump();
                Ok(Expr::Num(v, span))
            }
            Tok::Name(n) => {
                self.bump();
                if *self.peek() == Tok::LParen {
                    self.bump();
                    self.deeper()?;
                    let arg = self.expr()?;
                    self.depth -= 1;
                    if *self.peek() != Tok::RParen {
                        return Err(self.error(&format!("')' closing {n}(…)")));
                    }
                    self.bump();
                    return Ok(Expr::Call(n, span, Box::new(arg)));
                }
                Ok(Expr::Name(n, span))
            }
            Tok::LParen => {
                self.bump();
                self.deeper()?;
                let e = self.expr()?;
                self.depth -= 1;
                if *self.peek() != Tok::RParen {
                    return Err(self.error("')'"));
                }
                self.bump();
                Ok(Expr::Paren(Box::new(e), span))
            }
            Tok::Op(c) => Err(LangError::at(
                self.what,
                span,
                format!("expected a value before '{c}' (a name, a number or '(')"),
            )),
            _ => Err(self.error("a value (a name, a number or '(')")),
        }
    }
}

/// Parses `text` into statements; `what` names the formula in errors (`block`, `final`).
pub fn parse(text: &str, what: &str) -> Result<Vec<Stmt>, LangError> {
    let toks = lex(text, what)?;
    let mut p = Parser {
        toks,
        pos: 0,
        what,
        depth: 0,
    };
    p.program()
}

/// `e` written back as text (fully parenthesized where precedence needs it), for messages.
pub fn show(e: &Expr) -> String {
    match e {
        Expr::Num(v, _) => format!("{v}"),
        Expr::Name(n, _) => n.clone(),
        Expr::Call(f, _, a) => format!("{f}({})", show(a)),
        Expr::Neg(a, _) => format!("-{}", show(a)),
        Expr::Bin(op, a, b, _) => format!("{} {} {}", show(a), op.symbol(), show(b)),
        Expr::Paren(a, _) => format!("({})", show(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_associativity() {
        let s = parse("y = -a^2 + b*c/d - e", "t").unwrap();
        assert_eq!(show(&s[0].expr), "-a ^ 2 + b * c / d - e");
        let Expr::Bin(BinOp::Sub, lhs, _, _) = &s[0].expr else {
            panic!()
        };
        let Expr::Bin(BinOp::Add, neg, _, _) = &**lhs else {
            panic!()
        };
        // Unary minus applies to the power: -(a^2).
        assert!(matches!(&**neg, Expr::Neg(p, _) if matches!(**p, Expr::Bin(BinOp::Pow, ..))));
        // Exponents may be negative and associate to the right.
        let s = parse("l^-1/2", "t").unwrap();
        assert!(matches!(s[0].expr, Expr::Bin(BinOp::Div, ..)));
        let s = parse("2^3^2", "t").unwrap();
        let Expr::Bin(BinOp::Pow, _, r, _) = &s[0].expr else {
            panic!()
        };
        assert!(matches!(**r, Expr::Bin(BinOp::Pow, ..)));
    }

    #[test]
    fn statements_separate_by_semicolons_or_lines_with_comments() {
        let s = parse("\n h = x # the input\n;; y = h\n", "t").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].name.as_ref().unwrap().1, Span { line: 3, col: 4 });
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let e = parse("h = x +\ny = h", "block").unwrap_err().to_string();
        assert_eq!(
            e,
            "block:1:8: expected a value (a name, a number or '('), found the end of the statement"
        );
        let e = parse("h = attn(x", "block").unwrap_err().to_string();
        assert!(
            e.starts_with("block:1:11: expected ')' closing attn(…)"),
            "{e}"
        );
        let e = parse("h = x $ 2", "final").unwrap_err().to_string();
        assert!(e.starts_with("final:1:7: unexpected character '$'"), "{e}");
        let e = parse("x + 1; y = x", "block").unwrap_err().to_string();
        assert!(e.starts_with("block:1:1: only the last statement"), "{e}");
        let e = parse("   ", "block").unwrap_err().to_string();
        assert!(e.starts_with("block:1:4: empty formula"), "{e}");
        let e = parse("y = 1e999", "block").unwrap_err().to_string();
        assert!(e.starts_with("block:1:5: '1e999' is not a number"), "{e}");
        let deep = format!("y = {}x{}", "(".repeat(100), ")".repeat(100));
        let e = parse(&deep, "block").unwrap_err().to_string();
        assert!(e.contains("nests deeper"), "{e}");
        let e = parse("y = x x", "block").unwrap_err().to_string();
        assert!(e.starts_with("block:1:7: expected ';'"), "{e}");
    }
}
