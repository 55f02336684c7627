//! Re-red-team of the registry (hostile value sizes): reading one value loaded every value of
//! its key with its data, so a key filled with 64 KiB values (up to the hive's quota, 64 MiB)
//! made each `RegQueryValueEx` or `RegEnumValue` allocate all of them. A read allocates what
//! it returns, not the key's contents.
//!
//! This test binary counts every heap allocation (the `cap` allocator, which fails an
//! allocation beyond its limit: the binary aborts), so it holds a single `#[test]`.

use std::alloc::System;

use appipc_broker::state::Store;
use appipc_broker::state::registry::Upper;
use appipc_model::registry::{KeyPath, Layer, RegValue, Root};
use cap::Cap;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

#[test]
fn reading_one_value_does_not_load_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("state.db")).unwrap();
    let key = KeyPath::parse("HKCU\\Software\\Big").unwrap();
    let big = RegValue::binary(&vec![7; 65_536]);
    let r = s.registry(Root::CurrentUser, Upper::None, u64::MAX, |v| {
        v.create(&key, Layer::Global)?;
        for i in 0..200 {
            v.set(&key, &format!("v{i:03}"), &big, Layer::Global)?;
        }
        Ok(())
    });
    r.unwrap().unwrap();
    // 13 MB of data in one key; a read may allocate what it returns and the database's cache.
    let before = ALLOCATOR.allocated();
    ALLOCATOR.set_limit(before + 4 * 1024 * 1024).unwrap();
    let r = s.registry(Root::CurrentUser, Upper::None, u64::MAX, |v| {
        let one = v.value(&key, "V007")?.map(|(n, v, _)| (n, v.data.len()));
        // `RegEnumValue` by index, and `RegQueryInfoKey`'s count.
        let nth = v.value_at(&key, 150)?.map(|(n, v, _)| (n, v.data.len()));
        Ok((one, nth, v.value_names(&key)?.len()))
    });
    ALLOCATOR.set_limit(usize::MAX).unwrap();
    let (one, nth, count) = r.unwrap().unwrap();
    assert_eq!(one, Some(("v007".to_owned(), 65_536)));
    assert_eq!(nth, Some(("v150".to_owned(), 65_536)));
    assert_eq!(count, 200);
}
