//! CRD validation rules (`x-kubernetes-validations`), as apiextensions-apiserver runs
//! them: written in CEL, checked and compiled when a CRD is written ([`check`],
//! [`Rules::compile`]), evaluated on every write of a custom resource after pruning and
//! defaulting ([`Rules::validate`]), with `self` bound to the value of the schema node
//! that carries the rule and `oldSelf` to its value before an update (transition rules).
//!
//! The `cel` crate parses and evaluates; it has no type checker, so a rule is checked
//! here for the functions and variables it names, and type mismatches surface when the
//! rule runs, as upstream reports runtime errors. Kubernetes' list library (`isSorted`,
//! `sum`, `min`, `max`, `indexOf`, `lastIndexOf`) and `isIP` are added on top of the
//! crate's standard library (with `duration` and `timestamp`) and its strings and lists
//! extensions.

use super::{cause, duplicate, forbidden, invalid, not_supported, required};
use crate::status::Cause;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::types::{CelOptional, DYN_TYPE, LIST_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// The reasons a rule may give its failures (upstream's `FieldValueErrorReason`).
const REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// Functions and methods a rule may call: the crate's standard library (with `duration`
/// and `timestamp`) and its strings and lists extensions, and the Kubernetes functions
/// registered in [`ENV`] (the list library and `isIP`).
/// Anything else is refused when the CRD is written, naming the function; so is
/// `lists.range`, whose lists would escape the bound of [`COST_LIMIT`].
const FUNCTIONS: [&str; 54] = [
    "bool",
    "bytes",
    "charAt",
    "contains",
    "distinct",
    "double",
    "duration",
    "dyn",
    "endsWith",
    "flatten",
    "format",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    "hasValue",
    "indexOf",
    "int",
    "isIP",
    "isSorted",
    "join",
    "lastIndexOf",
    "lowerAscii",
    "matches",
    "max",
    "min",
    "optional.none",
    "optional.of",
    "optional.ofNonZeroValue",
    "or",
    "orValue",
    "replace",
    "reverse",
    "size",
    "slice",
    "sort",
    "split",
    "startsWith",
    "string",
    "strings.quote",
    "substring",
    "sum",
    "timestamp",
    "trim",
    "type",
    "uint",
    "upperAscii",
    "value",
];

/// The most iterations one rule may do (upstream's per-call cost limit), bounded before
/// it runs as the longest list or object it sees to the power of its comprehensions'
/// nesting: the `cel` crate cannot stop a rule midway, and a tenant's rule must not stall
/// the process.
const COST_LIMIT: u64 = 1_000_000;

/// Names that are types, not variables: `type(self) == string`.
const TYPE_NAMES: [&str; 10] = [
    "bool",
    "bytes",
    "double",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// The namespaces of namespaced functions (`optional.none()`), with Kubernetes' `cel` and
/// `format` so that their functions are refused by name (`format.dns1123Label`).
const NAMESPACES: [&str; 5] = ["cel", "format", "lists", "optional", "strings"];

/// The rule environment, shared by every control plane: built once per process.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .and_then(|()| env.add_extension(cel::extensions::lists))
        .and_then(|()| env.add_extension(kubernetes_lists))
        .and_then(|()| env.add_overload("isIP", "is_ip_string", vec![STRING_TYPE], is_ip))
        .expect("the rule library declares each overload once");
    Arc::new(env)
});

/// Kubernetes' list library on any list: `isSorted()`, `sum()`, `min()`, `max()`,
/// `indexOf(x)` and `lastIndexOf(x)`.
fn kubernetes_lists(env: &mut Env) -> Result<(), cel::DeclarationError> {
    env.add_member_overload("isSorted", "list_is_sorted", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], max)?;
    env.add_member_overload(
        "indexOf",
        "list_index_of",
        LIST_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list_last_index_of",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )
}

/// The receiver list and the other arguments of a list method, as values.
fn list_args(
    function: &str,
    args: &[CowVal<'_, '_>],
) -> Result<(Vec<CelValue>, Vec<CelValue>), ExecutionError> {
    let mut values = args
        .iter()
        .map(|a| CelValue::try_from(a.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    if values.is_empty() {
        return Err(ExecutionError::missing_argument_or_target());
    }
    match values.remove(0) {
        CelValue::List(items) => Ok((items.as_ref().clone(), values)),
        other => Err(ExecutionError::no_such_member_overload(
            function,
            vec![format!("{:?}", other.type_of())],
        )),
    }
}

fn owned<'b, 'v>(value: CelValue) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let boxed: Box<dyn Val> = value.try_into()?;
    Ok(CowVal::from(boxed))
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (items, _) = list_args("isSorted", &args)?;
    let mut sorted = true;
    for pair in items.windows(2) {
        match pair[0].partial_cmp(&pair[1]) {
            Some(std::cmp::Ordering::Greater) => sorted = false,
            Some(_) => {}
            None => return Err(not_comparable(&pair[0], &pair[1])),
        }
    }
    owned(CelValue::Bool(sorted))
}

fn not_comparable(a: &CelValue, b: &CelValue) -> ExecutionError {
    ExecutionError::ValuesNotComparable(a.clone(), b.clone())
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (items, _) = list_args("sum", &args)?;
    let mut total = match items.first() {
        None | Some(CelValue::Int(_)) => CelValue::Int(0),
        Some(CelValue::UInt(_)) => CelValue::UInt(0),
        Some(CelValue::Float(_)) => CelValue::Float(0.0),
        Some(other) => {
            return Err(ExecutionError::no_such_member_overload(
                "sum",
                vec![format!("list({:?})", other.type_of())],
            ))
        }
    };
    for item in items {
        total = match (&total, &item) {
            (CelValue::Int(a), CelValue::Int(b)) => a
                .checked_add(*b)
                .map(CelValue::Int)
                .ok_or_else(|| ExecutionError::Overflow("sum", total.clone(), item.clone()))?,
            (CelValue::UInt(a), CelValue::UInt(b)) => a
                .checked_add(*b)
                .map(CelValue::UInt)
                .ok_or_else(|| ExecutionError::Overflow("sum", total.clone(), item.clone()))?,
            (CelValue::Float(a), CelValue::Float(b)) => CelValue::Float(a + b),
            _ => {
                return Err(ExecutionError::UnsupportedBinaryOperator(
                    "sum", total, item,
                ))
            }
        };
    }
    owned(total)
}

/// The least (`greater` false) or greatest item of a list; an empty list is an error,
/// as upstream's `min()`/`max()`.
fn extreme(
    function: &str,
    args: &[CowVal<'_, '_>],
    greater: bool,
) -> Result<CelValue, ExecutionError> {
    let (items, _) = list_args(function, args)?;
    let mut best: Option<CelValue> = None;
    for item in items {
        best = Some(match best {
            None => item,
            Some(current) => match item.partial_cmp(&current) {
                Some(std::cmp::Ordering::Greater) if greater => item,
                Some(std::cmp::Ordering::Less) if !greater => item,
                Some(_) => current,
                None => return Err(not_comparable(&item, &current)),
            },
        });
    }
    best.ok_or_else(|| {
        ExecutionError::function_error(function, format!("{function} called on empty list"))
    })
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    owned(extreme("min", &args, false)?)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    owned(extreme("max", &args, true)?)
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (items, rest) = list_args("indexOf", &args)?;
    let needle = rest
        .first()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    let found = items.iter().position(|i| i == needle);
    owned(CelValue::Int(found.map_or(-1, |i| i as i64)))
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (items, rest) = list_args("lastIndexOf", &args)?;
    let needle = rest
        .first()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    let found = items.iter().rposition(|i| i == needle);
    owned(CelValue::Int(found.map_or(-1, |i| i as i64)))
}

/// Kubernetes' `isIP(string)`: an IPv4 or IPv6 address, without a zone, leading zeros
/// or an IPv4-mapped IPv6 form, as the Kubernetes IP library parses them.
fn is_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let Some(CelValue::String(text)) = args
        .first()
        .map(|a| CelValue::try_from(a.as_ref()))
        .transpose()?
    else {
        return Err(ExecutionError::invalid_argument_count(1, args.len()));
    };
    let valid = match text.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().is_none(),
        Ok(std::net::IpAddr::V4(_)) => true,
        Err(_) => false,
    };
    owned(CelValue::Bool(valid))
}

/// One rule, compiled.
#[derive(Debug)]
struct Rule {
    /// `rule` as written.
    source: String,
    /// `message`, trimmed; empty when not given.
    message: String,
    program: Program,
    message_expression: Option<Program>,
    reason: Option<String>,
    /// `fieldPath` as a field path below the node (`replicas`, `labels[app]`).
    field_path: Option<String>,
    uses_old_self: bool,
    optional_old_self: bool,
    /// How deeply the rule's comprehensions (`all`, `exists`, `map`, ...) nest.
    nesting: u32,
}

impl Rule {
    /// What upstream's messages name the rule by: its message, else its source.
    fn name(&self) -> &str {
        if self.message.is_empty() {
            self.source.trim()
        } else {
            &self.message
        }
    }
}

/// The rules of one schema node and of the nodes below it that have any.
#[derive(Debug, Default)]
struct Node {
    /// The node's `type`, which errors print as the invalid value (`"integer"`).
    kind: String,
    rules: Vec<Rule>,
    /// Why each rule that does not compile does not (a CRD stored before this server
    /// checked rules): every write of an object is refused for it, as upstream does.
    broken: Vec<String>,
    properties: Vec<(String, Node)>,
    additional_properties: Option<Box<Node>>,
    items: Option<Box<Node>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.broken.is_empty()
            && self.properties.is_empty()
            && self.additional_properties.is_none()
            && self.items.is_none()
    }
}

/// The compiled validation rules of a version's schema, built once when the CRD is
/// registered and shared by every request.
#[derive(Clone, Debug, Default)]
pub struct Rules(Option<Arc<Node>>);

/// Rules are compiled from the version's schema, which [`super::CustomResource`]
/// compares already: two compilations are the same when both have no rules or are one
/// compilation.
impl PartialEq for Rules {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Rules {}

impl Rules {
    /// The rules of `schema` (a version's `openAPIV3Schema`), compiled. [`check`] refuses
    /// a CRD whose rules do not compile; one stored before (by an older server) keeps
    /// its broken rules, which refuse every write of its objects.
    pub fn compile(schema: &Value) -> Rules {
        let node = compile_node(schema);
        Rules((!node.is_empty()).then(|| Arc::new(node)))
    }

    /// Every rule failure of a custom resource (`old` on an update), with upstream's
    /// causes.
    pub fn validate(&self, schema: &Value, object: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        if let Some(node) = &self.0 {
            let root = Place {
                path: String::new(),
                resource_root: true,
                unchanged: false,
            };
            walk(node, schema, object, old, root, &mut causes);
        }
        causes
    }
}

fn compile_node(schema: &Value) -> Node {
    let mut node = Node {
        kind: text(schema, "type").to_owned(),
        ..Default::default()
    };
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match compile_rule(rule, schema) {
            Ok(compiled) => node.rules.push(compiled),
            Err(causes) => node.broken.push(match compile(text(rule, "rule")) {
                Err(detail) => format!("compilation failed: {detail}"),
                Ok(_) => causes
                    .iter()
                    .map(|c| format!("{}: {}", c.field, c.message))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
    for (name, child) in schema["properties"].as_object().into_iter().flatten() {
        let child = compile_node(child);
        if !child.is_empty() {
            node.properties.push((name.clone(), child));
        }
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        let child = compile_node(additional);
        if !child.is_empty() {
            node.additional_properties = Some(Box::new(child));
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        let child = compile_node(items);
        if !child.is_empty() {
            node.items = Some(Box::new(child));
        }
    }
    node
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Compiles one rule of `schema`, or says why it cannot be (the causes' fields are
/// relative: `rule`, `messageExpression`, ...).
fn compile_rule(rule: &Value, schema: &Value) -> Result<Rule, Vec<Cause>> {
    let mut refusals = Vec::new();
    let mut refuse = |cause: Cause| refusals.push(cause);
    let source = text(rule, "rule");
    let message = text(rule, "message");
    let message_expression = text(rule, "messageExpression");
    let field_path = text(rule, "fieldPath");
    if source.trim().is_empty() {
        refuse(required("rule", "rule is not specified"));
    } else if !message.is_empty() && message.trim().is_empty() {
        refuse(invalid(
            "message",
            &json!(message),
            "message must be non-empty if specified",
        ));
    } else if message.trim().contains('\n') {
        refuse(invalid(
            "message",
            &json!(message),
            "message must not contain line breaks",
        ));
    } else if source.trim().contains('\n') && message.trim().is_empty() {
        refuse(required(
            "message",
            "message must be specified if rule contains line breaks",
        ));
    }
    if !message_expression.is_empty() && message_expression.trim().is_empty() {
        refuse(required(
            "messageExpression",
            "messageExpression must be non-empty if specified",
        ));
    }
    let reason = rule.get("reason").and_then(Value::as_str);
    if let Some(reason) = reason.filter(|r| !REASONS.contains(r)) {
        refuse(not_supported(
            "reason",
            &json!(reason),
            &REASONS.map(|r| json!(r)),
        ));
    }
    let mut normalized_path = None;
    if !field_path.is_empty() {
        if field_path.trim().is_empty() {
            refuse(invalid(
                "fieldPath",
                &json!(field_path),
                "fieldPath must be non-empty if specified",
            ));
        } else if field_path.contains('\n') {
            refuse(invalid(
                "fieldPath",
                &json!(field_path),
                "fieldPath must not contain line breaks",
            ));
        } else {
            match normalize_field_path(field_path.trim(), schema) {
                Ok(path) => normalized_path = Some(path),
                Err(detail) => refuse(invalid(
                    "fieldPath",
                    &json!(field_path),
                    &format!("fieldPath must be a valid path: {detail}"),
                )),
            }
        }
    }
    let mut program = None;
    if !source.trim().is_empty() {
        match compile(source) {
            Ok(p) => program = Some(p),
            Err(detail) => refuse(invalid(
                "rule",
                rule,
                &format!("compilation failed: {detail}"),
            )),
        }
    }
    let mut message_program = None;
    if !message_expression.trim().is_empty() {
        match compile(message_expression) {
            Ok(p) => message_program = Some(p),
            Err(detail) => refuse(invalid(
                "messageExpression",
                rule,
                &format!("messageExpression compilation failed: {detail}"),
            )),
        }
    }
    let optional_old_self = rule.get("optionalOldSelf").and_then(Value::as_bool);
    let uses_old_self = program
        .as_ref()
        .is_some_and(|p: &Program| p.references().has_variable("oldSelf"));
    if program.is_some() && !uses_old_self && optional_old_self.is_some() {
        refuse(invalid(
            "optionalOldSelf",
            &json!(optional_old_self),
            "may not be set if oldSelf is not used in rule",
        ));
    }
    match program {
        Some(program) if refusals.is_empty() => Ok(Rule {
            nesting: nesting(program.expression()),
            source: source.to_owned(),
            message: message.trim().to_owned(),
            program,
            message_expression: message_program,
            reason: reason.map(str::to_owned),
            field_path: normalized_path,
            uses_old_self,
            optional_old_self: optional_old_self == Some(true),
        }),
        _ => Err(refusals),
    }
}

/// Parses `source` and checks that every function and variable it names exists, as
/// cel-go's checker does for names (not for types, which the `cel` crate leaves to
/// evaluation). Errors read as cel-go's: `ERROR: <input>:1:6: ...`.
fn compile(source: &str) -> Result<Program, String> {
    compile_expression(source, &["self", "oldSelf"])
}

/// Compiles an expression of the rule environment with `variables` in scope, checking
/// the names it uses as rules are checked ([`compile`]): for other CEL users of the
/// process (JWT authenticators' claim mappings), so that they share one environment.
pub(crate) fn compile_expression(source: &str, variables: &[&str]) -> Result<Program, String> {
    let program = ENV.compile(source).map_err(|e| e.to_string())?;
    let mut scope: Vec<String> = variables.iter().map(|v| (*v).to_owned()).collect();
    let mut problems = Vec::new();
    check_names(program.expression(), &mut scope, &mut problems);
    if let Some((id, problem)) = problems.into_iter().next() {
        let (line, column) = program
            .source_info()
            .offset_for(id)
            .map(|(start, _)| position(source, start as usize))
            .unwrap_or((1, 1));
        return Err(format!("ERROR: <input>:{line}:{column}: {problem}"));
    }
    Ok(program)
}

/// The 1-based line and column of character offset `offset` in `source`.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before: Vec<char> = source.chars().take(offset).collect();
    let line = before.iter().filter(|c| **c == '\n').count() + 1;
    let column = before.iter().rev().take_while(|c| **c != '\n').count() + 1;
    (line, column)
}

/// The qualified name `expr` spells (`optional`, `a.b`), if it is one.
fn qualified_name(expr: &IdedExpr) -> Option<String> {
    match &expr.expr {
        Expr::Ident(name) => Some(name.clone()),
        Expr::Select(select) if !select.test => {
            qualified_name(&select.operand).map(|base| format!("{base}.{}", select.field))
        }
        _ => None,
    }
}

fn check_names(expr: &IdedExpr, scope: &mut Vec<String>, problems: &mut Vec<(u64, String)>) {
    match &expr.expr {
        Expr::Ident(name) => {
            if !name.starts_with('@')
                && !scope.contains(name)
                && !TYPE_NAMES.contains(&name.as_str())
            {
                problems.push((
                    expr.id,
                    format!("undeclared reference to '{name}' (in container '')"),
                ));
            }
        }
        Expr::Call(call) => {
            let name = call.func_name.as_str();
            let mut target = call.target.as_deref();
            let mut function = name.to_owned();
            if let Some(namespace) = target
                .and_then(qualified_name)
                .filter(|n| NAMESPACES.contains(&n.as_str()) && !scope.contains(n))
            {
                function = format!("{namespace}.{name}");
                target = None;
            }
            if let Some(target) = target {
                check_names(target, scope, problems);
            }
            for arg in &call.args {
                check_names(arg, scope, problems);
            }
            let operator = !name.starts_with(|c: char| c.is_ascii_alphabetic());
            if !operator && !FUNCTIONS.contains(&function.as_str()) {
                problems.push((
                    expr.id,
                    format!("function '{function}' is not supported by this server"),
                ));
            }
        }
        Expr::Comprehension(comprehension) => {
            check_names(&comprehension.iter_range, scope, problems);
            check_names(&comprehension.accu_init, scope, problems);
            let depth = scope.len();
            scope.push(comprehension.iter_var.clone());
            scope.extend(comprehension.iter_var2.clone());
            scope.push(comprehension.accu_var.clone());
            check_names(&comprehension.loop_cond, scope, problems);
            check_names(&comprehension.loop_step, scope, problems);
            check_names(&comprehension.result, scope, problems);
            scope.truncate(depth);
        }
        Expr::List(list) => {
            for element in &list.elements {
                check_names(element, scope, problems);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                check_entry(&entry.expr, scope, problems);
            }
        }
        Expr::Struct(structure) => {
            problems.push((
                expr.id,
                format!(
                    "undeclared reference to '{}' (in container '')",
                    structure.type_name
                ),
            ));
        }
        Expr::Select(select) => check_names(&select.operand, scope, problems),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn check_entry(entry: &EntryExpr, scope: &mut Vec<String>, problems: &mut Vec<(u64, String)>) {
    match entry {
        EntryExpr::StructField(field) => check_names(&field.value, scope, problems),
        EntryExpr::MapEntry(entry) => {
            check_names(&entry.key, scope, problems);
            check_names(&entry.value, scope, problems);
        }
    }
}

/// How deeply comprehensions nest in `expr`: a rule's work grows as the size of its
/// values to that power.
fn nesting(expr: &IdedExpr) -> u32 {
    let deepest =
        |exprs: &mut dyn Iterator<Item = &IdedExpr>| exprs.map(nesting).max().unwrap_or(0);
    match &expr.expr {
        Expr::Comprehension(c) => {
            let body = [&c.loop_cond, &c.loop_step, &c.result];
            let range = [&c.iter_range, &c.accu_init];
            deepest(&mut body.into_iter())
                .saturating_add(1)
                .max(deepest(&mut range.into_iter()))
        }
        Expr::Call(call) => deepest(&mut call.target.as_deref().into_iter().chain(&call.args)),
        Expr::List(list) => deepest(&mut list.elements.iter()),
        Expr::Map(map) => deepest(&mut map.entries.iter().flat_map(|e| match &e.expr {
            EntryExpr::StructField(field) => vec![&field.value],
            EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
        })),
        Expr::Select(select) => nesting(&select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Struct(_) | Expr::Unspecified => 0,
    }
}

/// The longest list or object in `value` (1 at least): how many times one
/// comprehension may iterate at most.
fn widest(value: &Value) -> u64 {
    match value {
        Value::Array(items) => items.iter().map(widest).fold(items.len() as u64, u64::max),
        Value::Object(fields) => fields
            .values()
            .map(widest)
            .fold(fields.len() as u64, u64::max),
        _ => 1,
    }
}

/// A rule's `fieldPath` (`.spec.replicas`, `.labels['app']`) as the field path it adds
/// below the node (`spec.replicas`, `labels[app]`), if it names a field of `schema`.
fn normalize_field_path(path: &str, schema: &Value) -> Result<String, String> {
    let mut rest = path;
    let mut schema = schema;
    let mut normalized = String::new();
    while !rest.is_empty() {
        let name;
        if let Some(after) = rest.strip_prefix("['") {
            let end = after
                .find("']")
                .ok_or_else(|| "expected ] but got end of path".to_owned())?;
            name = after[..end].replace("\\'", "'");
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err("unexpected end of JSON path".to_owned());
            }
            name = after[..end].to_owned();
            rest = &after[end..];
        } else {
            return Err(format!("expected [ or . but got: {rest}"));
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            schema = properties
                .get(&name)
                .ok_or_else(|| "does not refer to a valid field".to_owned())?;
            if !normalized.is_empty() {
                normalized.push('.');
            }
            normalized.push_str(&name);
        } else if let Some(additional) =
            schema.get("additionalProperties").filter(|a| a.is_object())
        {
            schema = additional;
            normalized.push_str(&format!("[{name}]"));
        } else {
            return Err("does not refer to a valid field".to_owned());
        }
    }
    Ok(normalized)
}

/// Every problem of the rules in a version's schema (at `path`), as upstream refuses a
/// CRD: rules that do not compile, name a function this server does not provide, or
/// misuse `message`, `reason`, `fieldPath` or `optionalOldSelf`.
pub fn check(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    check_node(schema, path, None, causes);
}

/// `uncorrelatable`: the path of the nearest list (or atomic map) above whose items have
/// no old value, where `oldSelf` cannot be used.
fn check_node(schema: &Value, path: &str, uncorrelatable: Option<&str>, causes: &mut Vec<Cause>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    let rules_path = format!("{path}.x-kubernetes-validations");
    match map.get("x-kubernetes-validations") {
        None | Some(Value::Null) => {}
        Some(Value::Array(rules)) => {
            for (i, rule) in rules.iter().enumerate() {
                let rule_path = format!("{rules_path}[{i}]");
                match compile_rule(rule, schema) {
                    Ok(compiled) => {
                        if let Some(within) = uncorrelatable.filter(|_| compiled.uses_old_self) {
                            causes.push(invalid(
                                &format!("{rule_path}.rule"),
                                &json!(compiled.source),
                                &format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {within}"),
                            ));
                        }
                    }
                    Err(refusals) => causes.extend(refusals.into_iter().map(|c| Cause {
                        field: format!("{rule_path}.{}", c.field),
                        ..c
                    })),
                }
            }
        }
        Some(other) => causes.push(invalid(&rules_path, other, "must be a list of rules")),
    }
    let atomic_map = text(schema, "x-kubernetes-map-type") == "atomic";
    let below = if atomic_map {
        Some(path)
    } else {
        uncorrelatable
    };
    for (name, child) in map
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        check_node(child, &format!("{path}.properties[{name}]"), below, causes);
    }
    if let Some(additional) = map.get("additionalProperties") {
        check_node(
            additional,
            &format!("{path}.additionalProperties"),
            below,
            causes,
        );
    }
    if let Some(items) = map.get("items") {
        let map_list = text(schema, "x-kubernetes-list-type") == "map";
        let below = if map_list { uncorrelatable } else { Some(path) };
        check_node(items, &format!("{path}.items"), below, causes);
    }
    for (below, sub) in super::combined_schemas(map, path) {
        no_rules_under(sub, &below, causes);
    }
}

/// Rules under `allOf`/`anyOf`/`oneOf`/`not` are refused, never skipped.
fn no_rules_under(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    if map.contains_key("x-kubernetes-validations") {
        causes.push(forbidden(
            &format!("{path}.x-kubernetes-validations"),
            "validation rules under allOf, anyOf, oneOf and not are not supported by this server",
        ));
    }
    for (name, child) in map
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        no_rules_under(child, &format!("{path}.properties[{name}]"), causes);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = map.get(key) {
            no_rules_under(child, &format!("{path}.{key}"), causes);
        }
    }
    for (below, sub) in super::combined_schemas(map, path) {
        no_rules_under(sub, &below, causes);
    }
}

/// Where a value is: its field path, whether it is a resource's root, and whether the
/// nearest value with an old counterpart is unchanged. Upstream ratchets: on update, a
/// rule (other than a transition rule) that fails on an unchanged value is no error.
struct Place {
    path: String,
    resource_root: bool,
    unchanged: bool,
}

impl Place {
    fn below(&self, path: String) -> Place {
        Place {
            path,
            resource_root: false,
            unchanged: self.unchanged,
        }
    }
}

/// Runs the rules of `node` on `value`, then those below, pairing each value with its
/// old one where upstream correlates them: object fields and map entries (unless the
/// map is atomic), and items of `x-kubernetes-list-type: map` lists by their keys.
fn walk(
    node: &Node,
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    place: Place,
    causes: &mut Vec<Cause>,
) {
    if value.is_null() {
        return;
    }
    let old = old.filter(|o| !o.is_null());
    let place = Place {
        unchanged: old.map_or(place.unchanged, |o| o == value),
        ..place
    };
    if !node.rules.is_empty() || !node.broken.is_empty() {
        evaluate(node, schema, value, old, &place, causes);
    }
    let path = &place.path;
    match value {
        Value::Object(fields) => {
            let correlated = text(schema, "x-kubernetes-map-type") != "atomic";
            let old_field = |key: &str| old.filter(|_| correlated).and_then(|o| o.get(key));
            for (name, child) in &node.properties {
                if let Some(field) = fields.get(name) {
                    let child_schema = &schema["properties"][name];
                    let child_place = place.below(join(path, name));
                    walk(
                        child,
                        child_schema,
                        field,
                        old_field(name),
                        child_place,
                        causes,
                    );
                }
            }
            if let Some(child) = &node.additional_properties {
                for (key, field) in fields {
                    let child_place = place.below(format!("{path}[{key}]"));
                    let child_schema = &schema["additionalProperties"];
                    walk(
                        child,
                        child_schema,
                        field,
                        old_field(key),
                        child_place,
                        causes,
                    );
                }
            }
        }
        Value::Array(items) => {
            let Some(child) = &node.items else { return };
            let keys: Vec<&str> = if text(schema, "x-kubernetes-list-type") == "map" {
                schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect()
            } else {
                Vec::new()
            };
            let old_items = old.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let old_item = old_items.filter(|_| !keys.is_empty()).and_then(|olds| {
                    olds.iter()
                        .find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
                });
                let child_place = place.below(format!("{path}[{i}]"));
                walk(child, &schema["items"], item, old_item, child_place, causes);
            }
        }
        _ => {}
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Runs the rules of one node, with `self` (and `oldSelf`) bound.
fn evaluate(
    node: &Node,
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    place: &Place,
    causes: &mut Vec<Cause>,
) {
    let path = place.path.as_str();
    let node_path = if path.is_empty() { "<nil>" } else { path };
    let this = to_cel(value, schema, place.resource_root);
    let before = old.map(|o| to_cel(o, schema, place.resource_root));
    let kind = json!(node.kind);
    for broken in &node.broken {
        let detail = format!("rule compile error: {broken}");
        causes.push(invalid(node_path, &kind, &detail));
    }
    let width = widest(value).max(old.map_or(1, widest));
    for rule in &node.rules {
        if rule.uses_old_self && before.is_none() && !rule.optional_old_self {
            continue;
        }
        if width.saturating_pow(rule.nesting) > COST_LIMIT {
            let detail = format!("'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: {}", rule.name());
            causes.push(invalid(node_path, &kind, &detail));
            return;
        }
        let context = bindings(&this, before.as_ref(), rule.optional_old_self);
        match rule.program.execute(&context) {
            Ok(CelValue::Bool(true)) => continue,
            Ok(CelValue::Bool(false)) if place.unchanged && !rule.uses_old_self => continue,
            Ok(CelValue::Bool(false)) => {}
            Ok(other) => {
                causes.push(invalid(
                    node_path,
                    &kind,
                    &format!(
                        "rule evaluated to {:?}, not a bool, evaluating rule: {}",
                        other.type_of(),
                        rule.name()
                    ),
                ));
                continue;
            }
            Err(error) => {
                causes.push(invalid(
                    node_path,
                    &kind,
                    &format!("{error} evaluating rule: {}", rule.name()),
                ));
                continue;
            }
        }
        let field = match &rule.field_path {
            Some(extra) if path.is_empty() => extra.clone(),
            Some(extra) if extra.starts_with('[') => format!("{path}{extra}"),
            Some(extra) => format!("{path}.{extra}"),
            None => node_path.to_owned(),
        };
        let detail = rule
            .message_expression
            .as_ref()
            .and_then(|expression| {
                // As upstream, messages see `oldSelf` as a value, never an optional.
                let plain;
                let context = if rule.optional_old_self {
                    plain = bindings(&this, before.as_ref(), false);
                    &plain
                } else {
                    &context
                };
                match expression.execute(context) {
                    Ok(CelValue::String(message)) => Some(message.trim().to_owned()),
                    _ => None,
                }
            })
            .filter(|m| !m.is_empty() && !m.contains('\n'))
            .unwrap_or_else(|| {
                if rule.message.is_empty() {
                    format!("failed rule: {}", rule.source.trim())
                } else {
                    rule.message.clone()
                }
            });
        causes.push(match rule.reason.as_deref() {
            Some("FieldValueForbidden") => forbidden(&field, &detail),
            Some("FieldValueRequired") => required(&field, &detail),
            Some("FieldValueDuplicate") => duplicate(&field, &kind),
            _ => cause(
                "FieldValueInvalid",
                &field,
                format!("Invalid value: {kind}: {detail}"),
            ),
        });
    }
}

/// A string of a `format` upstream gives a CEL type: `byte` as bytes, `duration` as a
/// duration, `date` and `date-time` as timestamps (parsed by the standard `duration()`
/// and `timestamp()`); `None` for other formats, or a string that does not parse.
fn formatted(text: &str, format: &str) -> Option<CelValue> {
    use base64::Engine as _;
    let (function, argument) = match format {
        "byte" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?;
            return Some(CelValue::Bytes(Arc::new(bytes)));
        }
        "duration" => ("duration", text.to_owned()),
        "date-time" => ("timestamp", text.to_owned()),
        "date" => ("timestamp", format!("{text}T00:00:00Z")),
        _ => return None,
    };
    let argument: Box<dyn Val> = CelValue::String(Arc::new(argument)).try_into().ok()?;
    let arguments = vec![CowVal::from(argument)];
    let parse = ENV.find_overload(function, &arguments)?;
    let parsed = parse(arguments).ok()?;
    CelValue::try_from(parsed.as_ref()).ok()
}

/// A rule's variables: `self`, and `oldSelf` as the old value when there is one or, for
/// rules with `optionalOldSelf`, as an optional of it.
fn bindings(this: &CelValue, old: Option<&CelValue>, optional: bool) -> Context<'static, 'static> {
    let mut context = Context::with_env(Arc::clone(&ENV));
    context.add_variable_from_value("self", this.clone());
    if optional {
        let value = match old.cloned().map(Box::<dyn Val>::try_from) {
            Some(Ok(old)) => CelOptional::of(old),
            _ => CelOptional::none(),
        };
        context.add_variable_as_val("oldSelf", Box::new(value));
    } else if let Some(old) = old {
        context.add_variable_from_value("oldSelf", old.clone());
    }
    context
}

/// A context of the rule environment binding `variables`, for programs of
/// [`compile_expression`].
pub(crate) fn expression_context(variables: Vec<(&str, CelValue)>) -> Context<'static, 'static> {
    let mut context = Context::with_env(Arc::clone(&ENV));
    for (name, value) in variables {
        context.add_variable_from_value(name, value);
    }
    context
}

/// Whether running `program` over `values` could exceed the cost limit (see
/// [`COST_LIMIT`]): such a program must not run.
pub(crate) fn too_costly(program: &Program, values: &[&Value]) -> bool {
    let width = values.iter().map(|v| widest(v)).max().unwrap_or(1);
    width.saturating_pow(nesting(program.expression())) > COST_LIMIT
}

/// A JSON value without a schema as a CEL value: numbers are ints when whole, as
/// upstream's unstructured conversion makes them.
pub(crate) fn json_to_cel(value: &Value) -> CelValue {
    to_cel(value, &Value::Null, false)
}

/// A JSON value as a CEL value, typed by its schema as upstream types it: `integer`s are
/// ints, `number`s doubles (even when written as `1`), untyped numbers (int-or-string,
/// preserved unknown fields) ints when whole, strings by their `format` ([`formatted`]).
/// At a resource's root, `metadata` shows only `name` and `generateName`.
fn to_cel(value: &Value, schema: &Value, resource_root: bool) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (text(schema, "type"), n.as_i64()) {
            ("number", _) => CelValue::Float(n.as_f64().unwrap_or(0.0)),
            (_, Some(i)) => CelValue::Int(i),
            (_, None) => {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    CelValue::Int(f as i64)
                } else {
                    CelValue::Float(f)
                }
            }
        },
        Value::String(s) => formatted(s, text(schema, "format"))
            .unwrap_or_else(|| CelValue::String(Arc::new(s.clone()))),
        Value::Array(items) => CelValue::List(Arc::new(
            items
                .iter()
                .map(|i| to_cel(i, &schema["items"], false))
                .collect(),
        )),
        Value::Object(fields) => {
            let embedded =
                resource_root || schema["x-kubernetes-embedded-resource"].as_bool() == Some(true);
            let mut entries: HashMap<Key, CelValue> = HashMap::new();
            for (name, field) in fields {
                let field_schema = schema["properties"]
                    .get(name)
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
                    .unwrap_or(&Value::Null);
                let converted = if embedded && name == "metadata" {
                    let kept: serde_json::Map<String, Value> = field
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| *k == "name" || *k == "generateName")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    to_cel(&Value::Object(kept), &Value::Null, false)
                } else {
                    to_cel(field, field_schema, false)
                };
                entries.insert(Key::String(Arc::new(name.clone())), converted);
            }
            CelValue::Map(Map {
                map: Arc::new(entries),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.minReplicas <= self.replicas", "message": "replicas must be at least minReplicas", "fieldPath": ".replicas"},
                    {"rule": "!has(self.mode) || self.mode == oldSelf.mode", "message": "mode is immutable", "reason": "FieldValueForbidden"},
                ],
                "properties": {
                    "replicas": {"type": "integer", "x-kubernetes-validations": [
                        {"rule": "self <= 10", "messageExpression": "'replicas ' + string(self) + ' is over 10'"}
                    ]},
                    "minReplicas": {"type": "integer"},
                    "ratio": {"type": "number", "x-kubernetes-validations": [{"rule": "self < 1.0"}]},
                    "mode": {"type": "string"},
                    "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "name is immutable"}]},
                    "tags": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [
                        {"rule": "self.lowerAscii() == self", "message": "tags must be lowercase"}
                    ]}, "x-kubernetes-validations": [{"rule": "self.isSorted()", "reason": "FieldValueDuplicate"}]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string",
                        "x-kubernetes-validations": [{"rule": "size(self) < 5"}]}},
                }
            }
        }})
    }

    fn errors(object: Value, old: Option<Value>) -> Vec<String> {
        let schema = schema();
        let mut causes = Vec::new();
        check(&schema, "schema", &mut causes);
        assert_eq!(causes, Vec::new());
        Rules::compile(&schema)
            .validate(&schema, &object, old.as_ref())
            .into_iter()
            .map(|c| format!("{} {}: {}", c.reason, c.field, c.message))
            .collect()
    }

    #[test]
    fn passing_objects_have_no_errors() {
        let object = json!({"spec": {"replicas": 3, "minReplicas": 1, "ratio": 0, "tags": ["a", "b"], "labels": {"a": "x"}}});
        assert_eq!(errors(object.clone(), None), Vec::<String>::new());
        assert_eq!(errors(object.clone(), Some(object)), Vec::<String>::new());
    }

    #[test]
    fn failures_report_message_field_path_and_reason() {
        let object = json!({"spec": {"replicas": 12, "minReplicas": 13, "ratio": 2, "tags": ["b", "A"], "labels": {"k": "toolong"}}});
        assert_eq!(
            errors(object, None),
            vec![
                "FieldValueInvalid spec.replicas: Invalid value: \"object\": replicas must be at least minReplicas",
                "FieldValueInvalid spec.labels[k]: Invalid value: \"string\": failed rule: size(self) < 5",
                "FieldValueInvalid spec.ratio: Invalid value: \"number\": failed rule: self < 1.0",
                "FieldValueInvalid spec.replicas: Invalid value: \"integer\": replicas 12 is over 10",
                "FieldValueDuplicate spec.tags: Duplicate value: \"array\"",
                "FieldValueInvalid spec.tags[1]: Invalid value: \"string\": tags must be lowercase",
            ]
        );
    }

    #[test]
    fn transition_rules_run_only_with_an_old_value() {
        let old = json!({"spec": {"replicas": 1, "minReplicas": 1, "mode": "a", "name": "x"}});
        let new = json!({"spec": {"replicas": 1, "minReplicas": 1, "mode": "b", "name": "y"}});
        assert_eq!(errors(new.clone(), None), Vec::<String>::new());
        assert_eq!(
            errors(new, Some(old)),
            vec![
                "FieldValueForbidden spec: Forbidden: mode is immutable",
                "FieldValueInvalid spec.name: Invalid value: \"string\": name is immutable",
            ]
        );
    }

    #[test]
    fn unchanged_values_are_ratcheted_on_update() {
        let old = json!({"spec": {"replicas": 12, "minReplicas": 1, "labels": {"k": "toolong"}}});
        assert_eq!(errors(old.clone(), Some(old.clone())), Vec::<String>::new());
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(11);
        assert_eq!(
            errors(new, Some(old)),
            vec!["FieldValueInvalid spec.replicas: Invalid value: \"integer\": replicas 11 is over 10"],
            "the unchanged label is let through, the changed replicas is not"
        );
    }

    #[test]
    fn optional_old_self_runs_on_create_too() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"a": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "oldSelf.hasValue() || self.a == 'first'", "optionalOldSelf": true}]}}});
        let rules = Rules::compile(&schema);
        let causes = rules.validate(&schema, &json!({"spec": {"a": "second"}}), None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"object\": failed rule: oldSelf.hasValue() || self.a == 'first'"
        );
        let old = json!({"spec": {"a": "first"}});
        assert!(rules
            .validate(&schema, &json!({"spec": {"a": "second"}}), Some(&old))
            .is_empty());
    }

    #[test]
    fn runtime_errors_name_the_rule() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"a": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.a == 'x'"}]}}});
        let causes = Rules::compile(&schema).validate(&schema, &json!({"spec": {}}), None);
        assert_eq!(causes[0].field, "spec");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"object\": No such key: a evaluating rule: self.a == 'x'"
        );
    }

    #[test]
    fn rules_that_do_not_compile_refuse_every_object() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.isURL()"}]}}});
        let causes = Rules::compile(&schema).validate(&schema, &json!({"spec": {}}), None);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"object\": rule compile error: compilation failed: ERROR: <input>:1:11: function 'isURL' is not supported by this server"
        );
    }

    #[test]
    fn formatted_strings_are_typed_as_upstream_types_them() {
        let schema = json!({"type": "object", "properties": {
            "at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "wait": {"type": "string", "format": "duration"},
            "data": {"type": "string", "format": "byte"},
        }, "x-kubernetes-validations": [
            {"rule": "self.at > timestamp('2020-01-01T00:00:00Z') && self.day.getFullYear() == 2024"},
            {"rule": "self.wait < duration('1h') && size(self.data) == 3"},
        ]});
        let rules = Rules::compile(&schema);
        let object = json!({"at": "2024-05-06T07:08:09Z", "day": "2024-02-03", "wait": "30m", "data": "YWJj"});
        assert_eq!(rules.validate(&schema, &object, None), Vec::new());
        let object = json!({"at": "2019-05-06T07:08:09Z", "day": "2024-02-03", "wait": "2h", "data": "YWJj"});
        assert_eq!(rules.validate(&schema, &object, None).len(), 2);
    }

    #[test]
    fn rules_whose_work_would_exceed_the_limit_do_not_run() {
        let schema = json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"}}},
            "x-kubernetes-validations": [{"rule": "self.l.all(a, self.l.all(b, self.l.all(c, a + b + c >= 0)))"}]});
        let rules = Rules::compile(&schema);
        assert_eq!(
            rules.validate(&schema, &json!({"l": [1, 2, 3]}), None),
            Vec::new()
        );
        let big = json!({"l": (0..200).collect::<Vec<i64>>()});
        let causes = rules.validate(&schema, &big, None);
        assert_eq!(causes.len(), 1);
        assert!(causes[0].message.starts_with("Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: self.l.all("), "{causes:?}");
        let program = ENV
            .compile("[1].map(x, [x].all(y, y > 0)).exists(z, z)")
            .unwrap();
        assert_eq!(nesting(program.expression()), 2);
    }

    #[test]
    fn root_rules_see_name_and_report_nil_paths() {
        let schema = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('ok-')"}]});
        let rules = Rules::compile(&schema);
        let causes = rules.validate(
            &schema,
            &json!({"metadata": {"name": "bad", "uid": "1"}}),
            None,
        );
        assert_eq!(causes[0].field, "<nil>");
        assert!(rules
            .validate(&schema, &json!({"metadata": {"name": "ok-1"}}), None)
            .is_empty());
    }

    fn refusals(rule: Value) -> Vec<String> {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "x-kubernetes-validations": [rule]});
        let mut causes = Vec::new();
        check(&schema, "s", &mut causes);
        causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn bad_rules_are_refused() {
        assert_eq!(
            refusals(json!({"rule": "self.a =="})),
            vec!["s.x-kubernetes-validations[0].rule: Invalid value: ...: compilation failed: ERROR: <input>:1:10: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n| self.a ==\n| .........^"]
        );
        assert_eq!(
            refusals(json!({"rule": "self.a.isURL()"})),
            vec!["s.x-kubernetes-validations[0].rule: Invalid value: ...: compilation failed: ERROR: <input>:1:13: function 'isURL' is not supported by this server"]
        );
        assert_eq!(
            refusals(json!({"rule": "format.dns1123Label().validate(self.a).hasValue()"})),
            vec!["s.x-kubernetes-validations[0].rule: Invalid value: ...: compilation failed: ERROR: <input>:1:20: function 'format.dns1123Label' is not supported by this server"]
        );
        assert_eq!(
            refusals(json!({"rule": "other == 1"})),
            vec!["s.x-kubernetes-validations[0].rule: Invalid value: ...: compilation failed: ERROR: <input>:1:1: undeclared reference to 'other' (in container '')"]
        );
        assert_eq!(
            refusals(json!({"rule": "", "reason": "Bad"})),
            vec![
                "s.x-kubernetes-validations[0].rule: Required value: rule is not specified",
                "s.x-kubernetes-validations[0].reason: Unsupported value: \"Bad\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
            ]
        );
        assert_eq!(
            refusals(json!({"rule": "true", "fieldPath": ".b", "optionalOldSelf": true})),
            vec![
                "s.x-kubernetes-validations[0].fieldPath: Invalid value: \".b\": fieldPath must be a valid path: does not refer to a valid field",
                "s.x-kubernetes-validations[0].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule",
            ]
        );
        assert_eq!(
            refusals(json!({"rule": "self.a.matches('^x') && [1, 2].all(x, x > 0)"})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn old_self_needs_correlatable_values() {
        let schema = json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}});
        let mut causes = Vec::new();
        check(&schema, "s", &mut causes);
        assert_eq!(
            causes[0].field,
            "s.properties[l].items.x-kubernetes-validations[0].rule"
        );
        assert!(causes[0].message.ends_with("oldSelf cannot be used on the uncorrelatable portion of the schema within s.properties[l]"));
    }

    #[test]
    fn kubernetes_list_and_string_functions() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "array", "items": {"type": "integer"}},
            "s": {"type": "string"}}});
        let cases = [
            "self.n.sum() == 6",
            "self.n.min() == 1 && self.n.max() == 3",
            "self.n.indexOf(2) == 1 && self.n.lastIndexOf(9) == -1",
            "self.n.isSorted() && !([2, 1].isSorted())",
            "self.s.upperAscii() == 'A,B ' && self.s.trim() == 'a,b'",
            "self.s.split(',').size() == 2 && ['x', 'y'].join('-') == 'x-y'",
            "self.s.replace(',', ';') == 'a;b ' && self.s.substring(2) == 'b ' && self.s.charAt(0) == 'a'",
            "self.s.indexOf('b') == 2 && self.s.lastIndexOf('a') == 0",
            "self.n.exists_one(x, x == 2) && self.n.map(x, x * 2).filter(x, x > 2).size() == 2",
            "self.s.startsWith('a') && self.s.endsWith(' ') && self.s.contains(',')",
            "isIP('10.0.0.1') && isIP('fd00::1') && !isIP('::ffff:10.0.0.1') && !isIP('010.0.0.1') && !isIP(self.s)",
            "duration('90m') > duration('1h') && duration('1s') != duration('0s')",
            "timestamp('2024-01-02T03:04:05Z').getHours() == 3",
        ];
        for rule in cases {
            let schema = {
                let mut s = schema.clone();
                s["x-kubernetes-validations"] = json!([{"rule": rule}]);
                s
            };
            let mut causes = Vec::new();
            check(&schema, "s", &mut causes);
            assert_eq!(causes, Vec::new(), "{rule}");
            let failures = Rules::compile(&schema).validate(
                &schema,
                &json!({"n": [1, 2, 3], "s": "a,b "}),
                None,
            );
            assert_eq!(failures, Vec::new(), "{rule}");
        }
    }
}
