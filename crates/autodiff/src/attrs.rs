//! Op attributes as they arrive from the bridge: a small typed map (`axes`, `keepdims`,
//! `shape`, `alpha`, ...). Owns parsing of single attributes only.

use crate::error::{Error, Result};
use gorgon_core::DType;
use std::collections::BTreeMap;

/// One attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// Python `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A float.
    Float(f64),
    /// A list/tuple of ints.
    Ints(Vec<i64>),
    /// A string (e.g. a dtype name).
    Str(String),
}

/// Attribute map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attrs(pub BTreeMap<String, Attr>);

impl Attrs {
    /// Empty map.
    pub fn new() -> Self {
        Self::default()
    }
    /// Builder-style insert.
    pub fn with(mut self, k: &str, v: Attr) -> Self {
        self.0.insert(k.to_string(), v);
        self
    }
    /// Raw access.
    pub fn get(&self, k: &str) -> Option<&Attr> {
        self.0.get(k)
    }
    fn bad(k: &str, want: &str, got: &Attr) -> Error {
        Error::Graph(format!("attribute {k}: expected {want}, got {got:?}"))
    }
    /// A float (ints accepted), or `default` when absent.
    pub fn float(&self, k: &str, default: f64) -> Result<f64> {
        match self.get(k) {
            None | Some(Attr::None) => Ok(default),
            Some(Attr::Float(v)) => Ok(*v),
            Some(Attr::Int(v)) => Ok(*v as f64),
            Some(o) => Err(Self::bad(k, "a number", o)),
        }
    }
    /// An int, or `default` when absent.
    pub fn int_or(&self, k: &str, default: i64) -> Result<i64> {
        match self.get(k) {
            None | Some(Attr::None) => Ok(default),
            Some(Attr::Int(v)) => Ok(*v),
            Some(Attr::Bool(b)) => Ok(*b as i64),
            Some(o) => Err(Self::bad(k, "an int", o)),
        }
    }
    /// A bool, or `default` when absent.
    pub fn bool_or(&self, k: &str, default: bool) -> Result<bool> {
        match self.get(k) {
            None | Some(Attr::None) => Ok(default),
            Some(Attr::Bool(b)) => Ok(*b),
            Some(Attr::Int(v)) => Ok(*v != 0),
            Some(o) => Err(Self::bad(k, "a bool", o)),
        }
    }
    /// A required list of ints (a single int is a list of one).
    pub fn ints(&self, k: &str) -> Result<Vec<i64>> {
        self.opt_ints(k)?.ok_or_else(|| Error::Graph(format!("attribute {k} is required")))
    }
    /// An optional list of ints (`None` when absent or Python `None`).
    pub fn opt_ints(&self, k: &str) -> Result<Option<Vec<i64>>> {
        match self.get(k) {
            None | Some(Attr::None) => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(Attr::Int(v)) => Ok(Some(vec![*v])),
            Some(o) => Err(Self::bad(k, "a tuple of ints", o)),
        }
    }
    /// A required dtype name.
    pub fn dtype(&self, k: &str) -> Result<DType> {
        match self.get(k) {
            Some(Attr::Str(s)) => DType::parse(s).ok_or_else(|| Error::DType(format!("unknown dtype {s:?}"))),
            Some(o) => Err(Self::bad(k, "a dtype name", o)),
            None => Err(Error::Graph(format!("attribute {k} is required"))),
        }
    }
    /// A dtype name or a default.
    pub fn dtype_or(&self, k: &str, d: DType) -> Result<DType> {
        match self.get(k) {
            None | Some(Attr::None) => Ok(d),
            _ => self.dtype(k),
        }
    }
}
