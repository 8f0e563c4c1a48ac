//! Architecture rules for the library's source, checked by reading `src/` as text.
//!
//! 1. No import cycles among the modules of `src/`. Each file holds one concept, and a module
//!    may depend only on modules "below" it, so any module can be read, tested and changed
//!    without pulling in the ones that use it. `lib.rs` is the facade and is not a node; a
//!    directory module's `mod.rs` may re-export its children, but a child must not reach back up
//!    to its parent's facade.
//! 2. No function in `src/` is longer than [`MAX_FN_LINES`] lines. The per-call engine is
//!    written as short, named phases, so each step of a call can be read (and reviewed) on one
//!    screen.
//!
//! Both checkers work on a small Rust lexer (comments and string literals are dropped, and
//! `#[cfg(test)]` items are removed) and take in-memory sources, so the last test can check
//! that they do fail on a synthetic cycle and on a synthetic long function.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The longest a function may be, from the line of its `fn` keyword to its closing brace.
const MAX_FN_LINES: usize = 80;

#[test]
fn src_modules_do_not_import_each_other_in_a_cycle() {
    let files = library_modules();
    let modules: Vec<(String, String)> = files
        .iter()
        .map(|m| (m.module.clone(), m.text.clone()))
        .collect();
    let edges = import_edges(&modules);
    let cycles = find_cycles(&edges);
    let file_of: HashMap<&str, &str> = files
        .iter()
        .map(|m| (m.module.as_str(), m.path.as_str()))
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles among the modules of src/ (a module may only use modules below it):\n\n{}",
        describe_cycles(&cycles, &edges, |module| file_of[module].to_string())
    );
}

#[test]
fn src_modules_import_by_module_path_not_through_the_crate_root() {
    let modules: Vec<(String, String)> = library_modules()
        .into_iter()
        .map(|m| (m.module, m.text))
        .collect();
    let found = root_references(&modules);
    assert!(
        found.is_empty(),
        "paths through lib.rs's re-exports hide an import from the cycle check; name the \
         module instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_function_in_src_is_longer_than_80_lines() {
    let mut offenders: Vec<(String, FnSpan)> = Vec::new();
    for path in rust_files(&src_dir()) {
        let text = fs::read_to_string(&path).unwrap();
        let display = display_path(&path);
        offenders.extend(
            long_functions(&text)
                .into_iter()
                .map(|f| (display.clone(), f)),
        );
    }
    offenders.sort_by(|a, b| b.1.lines.cmp(&a.1.lines).then_with(|| a.0.cmp(&b.0)));
    let report: Vec<String> = offenders
        .iter()
        .map(|(path, f)| format!("{path}:{} fn {}: {} lines", f.line, f.name, f.lines))
        .collect();
    assert!(
        report.is_empty(),
        "functions longer than {MAX_FN_LINES} lines (split them into named phases):\n{}",
        report.join("\n")
    );
}

#[test]
fn checkers_report_synthetic_violations() {
    let modules = |sources: &[(&str, &str)]| -> Vec<(String, String)> {
        sources
            .iter()
            .map(|(m, s)| (m.to_string(), s.to_string()))
            .collect()
    };
    // a -> b -> a, through a grouped `use` and a path in code.
    let cyclic = modules(&[
        ("a", "use crate::{b::{X, Y}, Error};\npub fn f() {}\n"),
        ("b", "pub struct X;\npub fn g() {\n    crate::a::f();\n}\n"),
    ]);
    let cycles = find_cycles(&import_edges(&cyclic));
    assert_eq!(cycles, vec![vec!["a", "b", "a"]], "{cycles:?}");

    // Comments, strings and `#[cfg(test)]` items are not imports (each would close a cycle
    // here); a facade's re-export of its own child is an edge; `super::super::` in `b/c.rs`
    // reaches the crate root.
    let a = r#"
        // use crate::b;
        /* crate::b::Z */
        const S: &str = "crate::b::Z";
        #[cfg(test)]
        mod tests {
            fn t() { if true { crate::b::c::z(); } }
        }
    "#;
    let b = "pub(crate) use self::c::Z;\nmod c;\nuse crate::a::S;\n";
    let c = "use super::super::a::S;\npub struct Z;\n";
    let acyclic = modules(&[("a", a), ("b", b), ("b::c", c)]);
    let edges = import_edges(&acyclic);
    let pairs: BTreeSet<(&str, &str)> = edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .collect();
    let expected = BTreeSet::from([("b", "b::c"), ("b", "a"), ("b::c", "a")]);
    assert_eq!(pairs, expected);
    assert!(find_cycles(&edges).is_empty());

    // One line per statement between the `fn` line and the closing brace; the body's strings,
    // chars, raw strings, comments and lifetimes hold braces that must not be counted.
    let function = |lines: usize| {
        let mut text = String::from(
            "/// Docs do not count.\n#[inline]\nfn tricky<'a>(\n    x: &'a str,\n) -> usize {\n",
        );
        let tricky = [
            "    let _ = '{';",
            "    let _ = \"}\";",
            "    let _ = r#\"}\"#;",
            "    // }",
            "    let _: &'a str = x;",
        ];
        for i in 0..lines - 4 {
            text.push_str(tricky.get(i).copied().unwrap_or("    let _ = 1;"));
            text.push('\n');
        }
        text.push_str("}\ntrait T {\n    fn declared(&self);\n}\n");
        text
    };
    let long = long_functions(&function(MAX_FN_LINES + 1));
    assert_eq!(long.len(), 1, "{long:?}");
    assert_eq!(
        (long[0].name.as_str(), long[0].line, long[0].lines),
        ("tricky", 3, 81)
    );
    assert!(long_functions(&function(MAX_FN_LINES)).is_empty());
    let through_root = modules(&[
        ("a", "use crate::Thing;\nfn f() { crate::b::g(); }"),
        ("b", "pub fn g() {}"),
    ]);
    assert_eq!(root_references(&through_root), ["a:1 crate::Thing"]);
}

// ---------------------------------------------------------------------------------------------
// Reading src/

/// One library module's file.
struct ModuleFile {
    /// `a` for `src/a.rs` or `src/a/mod.rs`, `a::b` for `src/a/b.rs`.
    module: String,
    /// `src/a/b.rs`, for messages.
    path: String,
    text: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The path relative to the crate root, e.g. `src/client.rs`.
fn display_path(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.to_string_lossy().replace('\\', "/")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The library's module files: everything under `src/` but the crate roots and `src/bin/`.
fn library_modules() -> Vec<ModuleFile> {
    let src = src_dir();
    let mut modules = Vec::new();
    for path in rust_files(&src) {
        let relative = path.strip_prefix(&src).unwrap();
        let mut parts: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let is_root = parts.len() == 1 && (parts[0] == "lib.rs" || parts[0] == "main.rs");
        if is_root || parts[0] == "bin" {
            continue;
        }
        let last = parts.pop().unwrap();
        let stem = last.strip_suffix(".rs").unwrap();
        if stem != "mod" {
            parts.push(stem.to_string());
        }
        modules.push(ModuleFile {
            module: parts.join("::"),
            path: display_path(&path),
            text: fs::read_to_string(&path).unwrap(),
        });
    }
    modules
}

// ---------------------------------------------------------------------------------------------
// Lexing: just enough of Rust's token grammar to drop comments and literals and match brackets.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Punct,
    /// A string, char or number literal; its text is not kept.
    Literal,
    Lifetime,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    /// The identifier (`r#type` for a raw one) or punctuation (`::` is one token).
    text: String,
    line: usize,
}

impl Token {
    fn is(&self, text: &str) -> bool {
        matches!(self.kind, Kind::Ident | Kind::Punct) && self.text == text
    }

    fn is_ident(&self) -> bool {
        self.kind == Kind::Ident
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The tokens of `source`, without comments; literals become `Kind::Literal` tokens.
fn tokenize(source: &str) -> Vec<Token> {
    let c: Vec<char> = source.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut tokens = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let start = i;
        let start_line = line;
        let kind = match c[i] {
            '\n' => {
                line += 1;
                i += 1;
                continue;
            }
            ch if ch.is_whitespace() => {
                i += 1;
                continue;
            }
            '/' if at(i + 1) == '/' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if at(i + 1) == '*' => {
                i = block_comment_end(&c, i);
                line += c[start..i].iter().filter(|&&ch| ch == '\n').count();
                continue;
            }
            _ => {
                if let Some(end) = literal_end(&c, i) {
                    i = end;
                    line += c[start..i].iter().filter(|&&ch| ch == '\n').count();
                    Kind::Literal
                } else if c[i] == '\'' {
                    i += 1;
                    while i < c.len() && is_ident_char(c[i]) {
                        i += 1;
                    }
                    Kind::Lifetime
                } else if c[i] == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
                    i += 2;
                    while i < c.len() && is_ident_char(c[i]) {
                        i += 1;
                    }
                    Kind::Ident
                } else if is_ident_start(c[i]) {
                    while i < c.len() && is_ident_char(c[i]) {
                        i += 1;
                    }
                    Kind::Ident
                } else {
                    i += if c[i] == ':' && at(i + 1) == ':' {
                        2
                    } else {
                        1
                    };
                    Kind::Punct
                }
            }
        };
        let text = if kind == Kind::Literal {
            String::new()
        } else {
            c[start..i].iter().collect()
        };
        tokens.push(Token {
            kind,
            text,
            line: start_line,
        });
    }
    tokens
}

/// The index just past the (possibly nested) block comment starting at `i`.
fn block_comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// If a literal (string, raw string, byte/C string, char, byte or number) starts at `i`, the
/// index just past it. A `'` that starts a lifetime or label is not a literal.
fn literal_end(c: &[char], i: usize) -> Option<usize> {
    let at = |j: usize| c.get(j).copied().unwrap_or('\0');
    let mut j = i;
    if matches!(at(j), 'b' | 'c') && matches!(at(j + 1), 'r' | '"' | '\'') {
        j += 1;
    }
    if at(j) == 'r' && matches!(at(j + 1), '"' | '#') {
        let hashes = c[j + 1..].iter().take_while(|&&ch| ch == '#').count();
        if at(j + 1 + hashes) == '"' {
            let mut k = j + 2 + hashes;
            while k < c.len() {
                if c[k] == '"'
                    && c[k + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == '#')
                        .count()
                        == hashes
                {
                    return Some(k + 1 + hashes);
                }
                k += 1;
            }
            return Some(c.len());
        }
        return None;
    }
    match at(j) {
        '"' => Some(quoted_end(c, j + 1, '"')),
        '\'' if at(j + 1) == '\\' => Some(quoted_end(c, j + 1, '\'')),
        '\'' if at(j + 2) == '\'' && at(j + 1) != '\'' => Some(j + 3),
        ch if j == i && ch.is_ascii_digit() => {
            let mut k = j;
            while k < c.len()
                && (is_ident_char(c[k]) || (c[k] == '.' && at(k + 1).is_ascii_digit()))
            {
                k += 1;
            }
            Some(k)
        }
        _ => None,
    }
}

/// The index just past the unescaped `quote` that closes a literal whose body starts at `i`.
fn quoted_end(c: &[char], mut i: usize, quote: char) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            ch if ch == quote => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

// ---------------------------------------------------------------------------------------------
// Removing `#[cfg(test)]` items

/// `tokens` without the items (and fields, arms, statements) gated on `#[cfg(test)]`, or
/// nothing if the file itself is (`#![cfg(test)]` at its top level).
fn strip_test_only(tokens: Vec<Token>) -> Vec<Token> {
    let mut kept = Vec::with_capacity(tokens.len());
    let (mut i, mut depth) = (0, 0usize);
    while i < tokens.len() {
        let Some(attr_end) = attribute_end(&tokens, i) else {
            if tokens[i].is("{") {
                depth += 1;
            } else if tokens[i].is("}") {
                depth = depth.saturating_sub(1);
            }
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        };
        if !is_test_only_cfg(&tokens[i..attr_end]) {
            kept.extend_from_slice(&tokens[i..attr_end]);
            i = attr_end;
        } else if tokens[i + 1].is("!") {
            if depth == 0 {
                return Vec::new();
            }
            i = attr_end;
        } else {
            let mut item = attr_end;
            while let Some(end) = attribute_end(&tokens, item) {
                item = end;
            }
            i = item_end(&tokens, item);
        }
    }
    kept
}

/// If an attribute (`#[...]` or `#![...]`) starts at `i`, the index just past its `]`.
fn attribute_end(t: &[Token], i: usize) -> Option<usize> {
    if !t[i].is("#") {
        return None;
    }
    let open = if t.get(i + 1)?.is("!") { i + 2 } else { i + 1 };
    if !t.get(open)?.is("[") {
        return None;
    }
    Some(matching_close(t, open) + 1)
}

/// The index of the bracket closing the one at `open` (or the last index if unbalanced).
fn matching_close(t: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, tok) in t.iter().enumerate().skip(open) {
        if tok.is("(") || tok.is("[") || tok.is("{") {
            depth += 1;
        } else if tok.is(")") || tok.is("]") || tok.is("}") {
            depth -= 1;
            if depth == 0 {
                return k;
            }
        }
    }
    t.len() - 1
}

/// Whether the attribute `#[cfg(P)]` has a `P` that holds only in test builds: `test`, or
/// `all(..)` with such a predicate among its parts.
fn is_test_only_cfg(attr: &[Token]) -> bool {
    let body: Vec<&Token> = attr.iter().filter(|t| !t.is("#") && !t.is("!")).collect();
    match body.as_slice() {
        [open, cfg, paren, predicate @ .., close_paren, close]
            if open.is("[")
                && cfg.is("cfg")
                && paren.is("(")
                && close_paren.is(")")
                && close.is("]") =>
        {
            holds_only_in_tests(predicate)
        }
        _ => false,
    }
}

fn holds_only_in_tests(predicate: &[&Token]) -> bool {
    match predicate {
        [t] => t.is("test"),
        [all, open, parts @ .., close] if all.is("all") && open.is("(") && close.is(")") => {
            let mut depth = 0usize;
            let mut start = 0;
            let mut found = false;
            for (k, tok) in parts.iter().enumerate() {
                if tok.is("(") {
                    depth += 1;
                } else if tok.is(")") {
                    depth -= 1;
                } else if tok.is(",") && depth == 0 {
                    found |= holds_only_in_tests(&parts[start..k]);
                    start = k + 1;
                }
            }
            found || holds_only_in_tests(&parts[start..])
        }
        _ => false,
    }
}

/// The index just past the item, field, arm or statement starting at `start`.
fn item_end(t: &[Token], start: usize) -> usize {
    let mut k = start;
    if t.get(k).is_some_and(|tok| tok.is("pub")) {
        k += 1;
        if t.get(k).is_some_and(|tok| tok.is("(")) {
            k = matching_close(t, k) + 1;
        }
    }
    let word = |j: usize| t.get(j).map_or("", |tok| tok.text.as_str());
    let const_fn =
        word(k) == "const" && matches!(word(k + 1), "fn" | "unsafe" | "async" | "extern");
    let ends_at_semicolon =
        matches!(word(k), "use" | "static" | "let" | "type") || (word(k) == "const" && !const_fn);
    let item_like = ends_at_semicolon
        || word(k + 1) == "!"
        || matches!(
            word(k),
            "fn" | "mod"
                | "impl"
                | "struct"
                | "enum"
                | "trait"
                | "union"
                | "extern"
                | "unsafe"
                | "async"
                | "const"
                | "default"
                | "auto"
                | "macro_rules"
        );
    let mut depth = 0usize;
    for (i, tok) in t.iter().enumerate().skip(start) {
        if tok.is("(") || tok.is("[") || tok.is("{") {
            depth += 1;
        } else if tok.is(")") || tok.is("]") || tok.is("}") {
            if depth == 0 {
                return i;
            }
            depth -= 1;
            let continues = matches!(word(i + 1), "else" | ".");
            if depth == 0 && tok.is("}") && !ends_at_semicolon && (item_like || !continues) {
                return i + 1;
            }
        } else if depth == 0 && (tok.is(";") || (tok.is(",") && !item_like)) {
            return i + 1;
        }
    }
    t.len()
}

// ---------------------------------------------------------------------------------------------
// Rule 1: the import graph

/// `from` refers to `to` on `line` of `from`'s file.
#[derive(Clone, Debug)]
struct Edge {
    from: String,
    to: String,
    line: usize,
}

/// The edges among `modules`, given as `(module path, source)` pairs: every `crate::`,
/// `super::`, `self::` or child-relative path (in `use` trees, in code, and `mod child;`),
/// resolved to the longest module path among `modules`. References to the crate root's own
/// items and to the module itself are not edges.
fn import_edges(modules: &[(String, String)]) -> Vec<Edge> {
    let nodes: BTreeSet<Vec<String>> = modules.iter().map(|(m, _)| split_path(m)).collect();
    let mut edges = Vec::new();
    for (module, source) in modules {
        let here = split_path(module);
        let tokens = strip_test_only(tokenize(source));
        for (path, scope, line) in path_references(&tokens, &here) {
            let Some(target) = resolve(&path, &scope, &nodes) else {
                continue;
            };
            if target != here {
                edges.push(Edge {
                    from: module.clone(),
                    to: target.join("::"),
                    line,
                });
            }
        }
    }
    edges
}

/// `crate::Name` paths whose `Name` is not a module: they go through `lib.rs`'s re-exports,
/// so the cycle check cannot see which module they import. As `module:line crate::Name`.
fn root_references(modules: &[(String, String)]) -> Vec<String> {
    let nodes: BTreeSet<Vec<String>> = modules.iter().map(|(m, _)| split_path(m)).collect();
    let mut found = Vec::new();
    for (module, source) in modules {
        let tokens = strip_test_only(tokenize(source));
        for (path, scope, line) in path_references(&tokens, &split_path(module)) {
            // `crate::http` is the re-exported `http` crate, not one of ours.
            let ours = path.len() >= 2 && path[0] == "crate" && path[1] != "http";
            if ours && resolve(&path, &scope, &nodes).is_none() {
                found.push(format!("{module}:{line} {}", path.join("::")));
            }
        }
    }
    found
}

fn split_path(module: &str) -> Vec<String> {
    module.split("::").map(str::to_string).collect()
}

/// The paths `tokens` mention, each with the (inline-module-aware) module it is written in and
/// its line. `use` trees are expanded to their leaves; `mod child;` is the path `child`.
fn path_references(t: &[Token], here: &[String]) -> Vec<(Vec<String>, Vec<String>, usize)> {
    let mut found = Vec::new();
    // Inline `mod name { ... }` blocks we are inside, with the brace depth of their body.
    let mut scope: Vec<(String, usize)> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let mut depth = 0;
    let mut i = 0;
    while i < t.len() {
        let current = || -> Vec<String> {
            let mut path = here.to_vec();
            path.extend(scope.iter().map(|(name, _)| name.clone()));
            path
        };
        let tok = &t[i];
        let next = t.get(i + 1);
        let after_next = t.get(i + 2);
        if tok.is("{") {
            depth += 1;
            if let Some(name) = pending_mod.take() {
                scope.push((name, depth));
            }
        } else if tok.is("}") {
            if scope.last().is_some_and(|(_, d)| *d == depth) {
                scope.pop();
            }
            depth = depth.saturating_sub(1);
        } else if tok.is("mod") && next.is_some_and(Token::is_ident) {
            let name = next.unwrap().text.clone();
            if after_next.is_some_and(|n| n.is(";")) {
                found.push((vec![name], current(), tok.line));
            } else {
                pending_mod = Some(name);
            }
            i += 2;
            continue;
        } else if tok.is("use") && !next.is_some_and(|n| n.is("<")) {
            i += 1;
            let mut leaves = Vec::new();
            expand_use_tree(t, &mut i, Vec::new(), &mut leaves);
            found.extend(
                leaves
                    .into_iter()
                    .map(|(path, line)| (path, current(), line)),
            );
            continue;
        } else if tok.is_ident()
            && next.is_some_and(|n| n.is("::"))
            && after_next.is_some_and(Token::is_ident)
            && !(i > 0 && t[i - 1].is("::"))
        {
            let mut path = vec![tok.text.clone()];
            let mut line = tok.line;
            i += 1;
            while t.get(i).is_some_and(|n| n.is("::")) && t.get(i + 1).is_some_and(Token::is_ident)
            {
                path.push(t[i + 1].text.clone());
                line = t[i + 1].line;
                i += 2;
            }
            found.push((path, current(), line));
            continue;
        }
        i += 1;
    }
    found
}

/// Expands the `use` tree starting at `*i` (`a::{b, c::{self, d as e}, f::*}`) into its leaf
/// paths, each with the line of its last segment; `*i` ends past the tree.
fn expand_use_tree(
    t: &[Token],
    i: &mut usize,
    mut path: Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) {
    let mut line = t.get(*i).map_or(0, |tok| tok.line);
    while let Some(tok) = t.get(*i) {
        *i += 1;
        if tok.is("{") {
            while t.get(*i).is_some_and(|n| !n.is("}")) {
                let before = *i;
                expand_use_tree(t, i, path.clone(), out);
                if *i == before || t.get(*i).is_some_and(|n| n.is(",")) {
                    *i += 1;
                }
            }
            *i += 1;
            return;
        } else if tok.is("$") {
            // `$crate` in a macro body.
        } else if tok.is("::") && path.is_empty() {
            path.push("::".to_string());
        } else if tok.is("*") {
            break;
        } else if tok.is_ident() {
            if !tok.is("self") || path.is_empty() {
                path.push(tok.text.clone());
            }
            line = tok.line;
            if t.get(*i).is_some_and(|n| n.is("::")) {
                *i += 1;
                continue;
            }
            if t.get(*i).is_some_and(|n| n.is("as")) {
                *i += 2;
            }
            break;
        } else {
            // `;`, `,` or `}` ends a leaf: give the token back to the caller.
            *i -= 1;
            break;
        }
    }
    if t.get(*i).is_some_and(|n| n.is(";")) {
        *i += 1;
    }
    if !path.is_empty() {
        out.push((path, line));
    }
}

/// The module `path` (written in module `scope`) refers to: the longest prefix of its absolute
/// form that is one of `nodes`, or `None` for the crate root's items and extern crates.
fn resolve(
    path: &[String],
    scope: &[String],
    nodes: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let (mut base, mut rest) = match path[0].as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (scope.to_vec(), &path[1..]),
        "::" => return None,
        _ => (scope.to_vec(), path),
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    (1..=base.len())
        .rev()
        .map(|n| base[..n].to_vec())
        .find(|prefix| nodes.contains(prefix))
}

/// The elementary cycles of the graph, each as `[a, b, .., a]` starting at its smallest
/// module: for every edge `u -> v` on a cycle, the shortest way back from `v` to `u`.
fn find_cycles(edges: &[Edge]) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for edge in edges {
        graph.entry(&edge.from).or_default().insert(&edge.to);
    }
    let mut cycles = BTreeSet::new();
    for (&from, targets) in &graph {
        for &to in targets {
            if let Some(back) = shortest_path(&graph, to, from) {
                let mut cycle: Vec<String> = std::iter::once(from)
                    .chain(back[..back.len() - 1].iter().copied())
                    .map(str::to_string)
                    .collect();
                let smallest = (0..cycle.len()).min_by_key(|&k| &cycle[k]).unwrap();
                cycle.rotate_left(smallest);
                cycle.push(cycle[0].clone());
                cycles.insert((cycle.len(), cycle));
            }
        }
    }
    cycles.into_iter().map(|(_, cycle)| cycle).collect()
}

/// The shortest path `[from, .., to]` in `graph`, by breadth-first search.
fn shortest_path<'a>(
    graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    from: &'a str,
    to: &'a str,
) -> Option<Vec<&'a str>> {
    let mut previous: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to];
            while let Some(&p) = previous.get(path.last().unwrap()) {
                path.push(p);
            }
            path.reverse();
            return Some(path);
        }
        for &next in graph.get(node).into_iter().flatten() {
            if next != from && !previous.contains_key(next) {
                previous.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// One paragraph per cycle: the cycle, then each of its edges with the lines that make it.
fn describe_cycles(
    cycles: &[Vec<String>],
    edges: &[Edge],
    file_of: impl Fn(&str) -> String,
) -> String {
    let mut lines_of: BTreeMap<(&str, &str), BTreeSet<usize>> = BTreeMap::new();
    for edge in edges {
        lines_of
            .entry((&edge.from, &edge.to))
            .or_default()
            .insert(edge.line);
    }
    let mut out = String::new();
    for cycle in cycles {
        writeln!(out, "{}", cycle.join(" -> ")).unwrap();
        for pair in cycle.windows(2) {
            let lines: Vec<String> = lines_of[&(pair[0].as_str(), pair[1].as_str())]
                .iter()
                .map(usize::to_string)
                .collect();
            let edge = format!("{} -> {}", pair[0], pair[1]);
            writeln!(
                out,
                "    {edge:<24} {}:{}",
                file_of(&pair[0]),
                lines.join(", ")
            )
            .unwrap();
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Rule 2: function length

/// A function with a body, outside `#[cfg(test)]` items.
#[derive(Clone, Debug)]
struct FnSpan {
    /// `name`, `Type::name` in an `impl` or `trait`, `outer::name` when nested in a function.
    name: String,
    /// The line of the `fn` keyword.
    line: usize,
    /// Lines from the `fn` keyword to the closing brace, both included.
    lines: usize,
}

/// The functions of `source` longer than [`MAX_FN_LINES`].
fn long_functions(source: &str) -> Vec<FnSpan> {
    let mut spans = function_spans(source);
    spans.retain(|f| f.lines > MAX_FN_LINES);
    spans
}

/// Every function with a body in `source` (free, associated, trait-provided and nested).
fn function_spans(source: &str) -> Vec<FnSpan> {
    let t = strip_test_only(tokenize(source));
    let mut spans = Vec::new();
    // Enclosing `impl`/`trait`/`fn` names, with the brace depth of their bodies.
    let mut names: Vec<(String, usize)> = Vec::new();
    // Names to push when the brace at that index opens a body.
    let mut bodies: HashMap<usize, String> = HashMap::new();
    let mut depth = 0;
    for i in 0..t.len() {
        let tok = &t[i];
        if tok.is("{") {
            depth += 1;
            if let Some(name) = bodies.remove(&i) {
                names.push((name, depth));
            }
        } else if tok.is("}") {
            if names.last().is_some_and(|(_, d)| *d == depth) {
                names.pop();
            }
            depth = depth.saturating_sub(1);
        } else if tok.is("fn") && t.get(i + 1).is_some_and(Token::is_ident) {
            let Some(open) = body_start(&t, i + 2) else {
                continue;
            };
            let close = matching_close(&t, open);
            let name = &t[i + 1].text;
            let qualified: Vec<&str> = names
                .iter()
                .map(|(n, _)| n.as_str())
                .chain([name.as_str()])
                .collect();
            spans.push(FnSpan {
                name: qualified.join("::"),
                line: tok.line,
                lines: t[close].line - tok.line + 1,
            });
            bodies.insert(open, name.clone());
        } else if (tok.is("impl") && at_item_start(&t, i)) || tok.is("trait") {
            if let Some(open) = body_start(&t, i + 1) {
                bodies.insert(open, block_type_name(&t[i + 1..open]));
            }
        }
    }
    spans
}

/// The index of the `{` opening the body of the item whose header continues at `from`, or
/// `None` if a `;` ends the item first (a declaration without a body).
fn body_start(t: &[Token], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, tok) in t.iter().enumerate().skip(from) {
        if tok.is("(") || tok.is("[") {
            depth += 1;
        } else if tok.is(")") || tok.is("]") {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && tok.is("{") {
            return Some(k);
        } else if depth == 0 && (tok.is(";") || tok.is("}")) {
            return None;
        }
    }
    None
}

/// Whether the `impl` at `i` starts an item (rather than being `impl Trait` in a type).
fn at_item_start(t: &[Token], i: usize) -> bool {
    i == 0
        || ["{", "}", ";", "]", "unsafe", "default"]
            .iter()
            .any(|s| t[i - 1].is(s))
}

/// The type an `impl` or `trait` header (the tokens after the keyword) is about: `Name` for
/// `Name`, `trait Name<T>: Bound`, `impl<T> Name<T>` and `impl<T> path::Trait for Name<T>`.
fn block_type_name(header: &[Token]) -> String {
    let mut angle = 0usize;
    let mut name = String::new();
    for (k, tok) in header.iter().enumerate() {
        if tok.is("<") {
            angle += 1;
        } else if tok.is(">") && !(k > 0 && header[k - 1].is("-")) {
            angle = angle.saturating_sub(1);
        } else if angle == 0 && (tok.is("where") || tok.is(":")) && !name.is_empty() {
            break;
        } else if angle == 0 && tok.is("for") {
            name.clear();
        } else if angle == 0
            && tok.is_ident()
            && !matches!(tok.text.as_str(), "dyn" | "mut" | "const" | "unsafe")
        {
            name = tok.text.clone();
        }
    }
    name
}
