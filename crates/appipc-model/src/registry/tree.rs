//! An in-memory registry tree: a package's shipped keys (its `Registry.reg`), and what a
//! `.reg` file describes.

use std::collections::BTreeMap;

use super::regfile::RegEntry;
use super::{KeyPath, RegValue, Root, fold};

/// One key of a [`RegTree`]: its path as written and its values by folded name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeKey {
    /// The key.
    pub path: KeyPath,
    /// Values: folded name → (name as written, value).
    pub values: BTreeMap<String, (String, RegValue)>,
}

/// Keys by (root, folded parts); a key's ancestors are keys of the tree too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegTree {
    keys: BTreeMap<(Root, Vec<String>), TreeKey>,
}

impl RegTree {
    /// An empty tree.
    pub fn new() -> RegTree {
        RegTree::default()
    }

    /// A tree from `.reg` entries applied in order.
    pub fn from_entries(entries: &[RegEntry]) -> RegTree {
        let mut t = RegTree::new();
        t.apply(entries);
        t
    }

    /// Applies `.reg` entries in order, as an import does: `[key]` creates it (and its
    /// ancestors) and sets or deletes its values, `[-key]` deletes it with its subtree.
    pub fn apply(&mut self, entries: &[RegEntry]) {
        for e in entries {
            match e {
                RegEntry::Key { path, values } => {
                    self.create(path);
                    for (name, v) in values {
                        match v {
                            Some(v) => self.set(path, name, v.clone()),
                            None => {
                                self.delete_value(path, name);
                            }
                        }
                    }
                }
                RegEntry::DeleteKey(path) => self.delete_tree(path),
            }
        }
    }

    fn id(path: &KeyPath) -> (Root, Vec<String>) {
        (path.root_key(), path.folded())
    }

    /// Creates `path` and its ancestors (roots are not stored); whether it was new.
    pub fn create(&mut self, path: &KeyPath) -> bool {
        // A key's ancestors are always in the tree (only `delete_tree` removes keys, with all
        // below them), so only the keys from `path` up to the first one there are missing: a
        // new key under an existing parent costs its depth, not its depth squared (found by
        // the regfile fuzz target: a tree 139 keys deep, written out and read back, took a
        // second and a half).
        let mut missing = Vec::new();
        let mut at = Some(path.clone());
        while let Some(k) = at {
            if k.depth() == 0 || self.keys.contains_key(&Self::id(&k)) {
                break;
            }
            at = k.parent();
            missing.push(k);
        }
        let created = !missing.is_empty();
        for k in missing {
            self.keys.insert(Self::id(&k), TreeKey { path: k, values: BTreeMap::new() });
        }
        created
    }

    /// Sets a value of `path` (created if missing).
    pub fn set(&mut self, path: &KeyPath, name: &str, value: RegValue) {
        self.create(path);
        if let Some(k) = self.keys.get_mut(&Self::id(path)) {
            k.values.insert(fold(name), (name.to_owned(), value));
        }
    }

    /// Deletes a value; whether it was there.
    pub fn delete_value(&mut self, path: &KeyPath, name: &str) -> bool {
        self.keys.get_mut(&Self::id(path)).is_some_and(|k| k.values.remove(&fold(name)).is_some())
    }

    /// Deletes `path` and everything below it.
    pub fn delete_tree(&mut self, path: &KeyPath) {
        let (root, parts) = Self::id(path);
        self.keys.retain(|(r, p), _| !(*r == root && p.starts_with(&parts)));
    }

    /// The key, if the tree has it (a root always "has" itself only when something is below).
    pub fn get(&self, path: &KeyPath) -> Option<&TreeKey> {
        self.keys.get(&Self::id(path))
    }

    /// Whether the tree has `path`, or (for a root) anything.
    pub fn contains(&self, path: &KeyPath) -> bool {
        if path.depth() == 0 {
            return self.keys.keys().any(|(r, _)| *r == path.root_key());
        }
        self.keys.contains_key(&Self::id(path))
    }

    /// The direct subkeys of `path`, in folded order.
    pub fn children(&self, path: &KeyPath) -> Vec<&TreeKey> {
        let (root, parts) = Self::id(path);
        self.keys
            .range((root, parts.clone())..)
            .take_while(|((r, p), _)| *r == root && p.starts_with(&parts))
            .filter(|((_, p), _)| p.len() == parts.len() + 1)
            .map(|(_, k)| k)
            .collect()
    }

    /// Every key, parents before children.
    pub fn keys(&self) -> impl Iterator<Item = &TreeKey> {
        self.keys.values()
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The tree as `.reg` entries (every key, parents first, with its values).
    pub fn to_entries(&self) -> Vec<RegEntry> {
        self.keys
            .values()
            .map(|k| RegEntry::Key {
                path: k.path.clone(),
                values: k.values.values().map(|(n, v)| (n.clone(), Some(v.clone()))).collect(),
            })
            .collect()
    }
}
