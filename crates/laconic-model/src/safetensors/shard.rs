//! Sharded checkpoints in transformers' layout: `model-00001-of-00003.safetensors`, … and
//! `model.safetensors.index.json` (`{"metadata": {"total_size": …}, "weight_map": {name: file}}`),
//! or one `model.safetensors` when everything fits in one shard.
//!
//! Tensors are packed in order, a new shard starting when the next tensor would pass the limit (a
//! tensor larger than the limit gets a shard of its own), as `huggingface_hub`'s
//! `split_torch_state_dict_into_shards` does. A save replaces the files of an earlier laconic save
//! in the same folder: shards the new index does not name, a `model.safetensors` the new index
//! would be shadowed by, an index beside a new single file. Only files that carry laconic's
//! producer mark in their header are removed, so a file laconic did not write is never deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::{Error, Result};

use super::write::{temp_path, write_tensors, TensorSource, PRODUCER, PRODUCER_KEY};
use super::{read_header, read_shard_index};

/// The one-file name of a checkpoint's weights.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// transformers' default `max_shard_size` (`"5GB"`, 5·10⁹ bytes).
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 5_000_000_000;

/// transformers' shard name: `model-00002-of-00003.safetensors` (1-based).
fn shard_name(index: usize, count: usize) -> String {
    format!("model-{:05}-of-{:05}.safetensors", index + 1, count)
}

/// Whether `name` has the shape of a shard name ([`shard_name`]).
fn is_shard_name(name: &str) -> bool {
    let five_digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix("model-")
        .and_then(|rest| rest.strip_suffix(".safetensors"))
        .and_then(|rest| rest.split_once("-of-"))
        .is_some_and(|(i, n)| five_digits(i) && five_digits(n))
}

/// Whether the safetensors file `path` says laconic wrote it (its `__metadata__` producer).
fn written_by_laconic(path: &Path) -> bool {
    read_header(path).is_ok_and(|header| {
        header
            .metadata
            .is_some_and(|m| m.get(PRODUCER_KEY).map(String::as_str) == Some(PRODUCER))
    })
}

/// Whether the index file `path` says laconic wrote it (`metadata.producer`, which [`write_index`]
/// adds beside transformers' `total_size`).
fn index_written_by_laconic(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .is_ok_and(|index| index["metadata"][PRODUCER_KEY] == PRODUCER)
}

/// Splits tensors of the given byte sizes into consecutive shards of at most `max_bytes` (a tensor
/// larger than that alone in its shard): the index ranges of the shards.
fn plan_shards(sizes: &[u64], max_bytes: u64) -> Vec<std::ops::Range<usize>> {
    let mut shards = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && bytes + size > max_bytes {
            shards.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() || sizes.is_empty() {
        shards.push(start..sizes.len());
    }
    shards
}

/// The files the index of an earlier save in `dir` names, if it has a readable one.
fn earlier_shards(dir: &Path) -> Option<BTreeSet<String>> {
    let index = read_shard_index(&dir.join(INDEX_FILE)).ok()?;
    Some(index.weight_map.into_values().collect())
}

/// Writes `tensors` into the folder `dir` as transformers' `save_pretrained` lays out weights:
/// one [`SINGLE_FILE`] when they fit in `max_shard_bytes`, else shards
/// `model-0000i-of-0000n.safetensors` of at most `max_shard_bytes` each (a larger tensor alone in
/// its shard) and [`INDEX_FILE`] mapping each tensor to its shard, with `metadata.total_size` the
/// tensors' bytes. Each file is written atomically ([`write_tensors`]), each tensor in its dtype,
/// pulled one at a time.
///
/// Files of an earlier laconic save in `dir` that would confuse a reader are then removed: its
/// shards that the new save does not name, its `model.safetensors` when the new save is sharded,
/// its index when the new save is one file. Only files that carry laconic's producer mark (in a
/// shard's header, in the index's `metadata`) are removed.
///
/// # Errors
/// A failed write; a sharded save into a folder holding a `model.safetensors` laconic did not
/// write (a reader would load that file instead of the new shards), refused before anything is
/// written.
pub fn write_sharded(
    dir: &Path,
    tensors: Vec<(String, TensorSource<'_>)>,
    max_shard_bytes: u64,
) -> Result<()> {
    let sizes: Vec<u64> = tensors.iter().map(|(_, t)| t.byte_len()).collect();
    let plan = plan_shards(&sizes, max_shard_bytes);
    let single = dir.join(SINGLE_FILE);
    let sharded = plan.len() > 1;
    if sharded && single.exists() && !written_by_laconic(&single) {
        return Err(Error::Write {
            path: dir.join(INDEX_FILE),
            message: format!(
                "`{}` was not written by laconic and would be loaded instead of the new shards; \
                 remove it or save into another folder",
                single.display()
            ),
        });
    }
    let earlier = earlier_shards(dir);
    let count = plan.len();
    let names: Vec<String> = if sharded {
        (0..count).map(|i| shard_name(i, count)).collect()
    } else {
        vec![SINGLE_FILE.to_string()]
    };
    let mut weight_map = BTreeMap::new();
    let mut tensors = tensors.into_iter();
    for (range, file) in plan.iter().zip(&names) {
        let shard: Vec<_> = tensors.by_ref().take(range.len()).collect();
        for (name, _) in &shard {
            weight_map.insert(name.clone(), file.clone());
        }
        write_tensors(&dir.join(file), &shard)?;
    }
    if sharded {
        write_index(&dir.join(INDEX_FILE), sizes.iter().sum(), &weight_map)?;
        if single.exists() {
            remove(&single)?;
        }
    }
    if let Some(files) = earlier {
        // The earlier index's shards that this save does not name: laconic's are removed.
        let stale = files
            .iter()
            .filter(|f| is_shard_name(f) && !names.contains(f));
        for path in stale.map(|f| dir.join(f)) {
            if path.exists() && written_by_laconic(&path) {
                remove(&path)?;
            }
        }
        // Beside a new single file, laconic's earlier index goes once no file it names is left.
        if !sharded
            && index_written_by_laconic(&dir.join(INDEX_FILE))
            && files
                .iter()
                .all(|f| f == SINGLE_FILE || !dir.join(f).exists())
        {
            remove(&dir.join(INDEX_FILE))?;
        }
    }
    Ok(())
}

/// Writes transformers' index file, atomically, with laconic's producer mark in its `metadata`.
fn write_index(path: &Path, total_size: u64, weight_map: &BTreeMap<String, String>) -> Result<()> {
    let index = serde_json::json!({
        "metadata": { "total_size": total_size, PRODUCER_KEY: PRODUCER },
        "weight_map": weight_map,
    });
    let text = serde_json::to_string_pretty(&index).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let tmp = temp_path(path);
    let fail = |e: std::io::Error| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::write(&tmp, text + "\n")
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })
}

fn remove(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        message: format!("failed to remove a file of an earlier save: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::SafetensorsIndex;
    use burn::tensor::TensorData;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("laconic-st-shard-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `n` f32 tensors `t0`, `t1`, … of 4 values each (16 bytes).
    fn tensors(n: usize) -> Vec<(String, TensorSource<'static>)> {
        (0..n)
            .map(|i| {
                let values: Vec<f32> = (0..4).map(|j| (4 * i + j) as f32).collect();
                (
                    format!("t{i}"),
                    TensorSource::from_data(TensorData::new(values, [4])),
                )
            })
            .collect()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn shards_are_packed_in_order_up_to_the_limit() {
        let spans = |sizes: &[u64], max| -> Vec<(usize, usize)> {
            let plan = plan_shards(sizes, max);
            plan.into_iter().map(|r| (r.start, r.end)).collect()
        };
        assert_eq!(spans(&[4, 4, 1, 9, 2], 8), [(0, 2), (2, 3), (3, 4), (4, 5)]);
        assert_eq!(spans(&[4, 4], 100), [(0, 2)]);
        assert_eq!(spans(&[], 8), [(0, 0)]);
        assert!(is_shard_name("model-00002-of-00003.safetensors"));
        assert!(!is_shard_name("model-2-of-3.safetensors"));
        assert!(!is_shard_name("model.safetensors"));
    }

    /// A sharded save writes transformers' index and shards, and loads back; a later save with
    /// fewer shards removes the shards it no longer names, and a single-file save the index.
    #[test]
    fn later_saves_remove_the_files_of_earlier_ones() {
        let dir = scratch("stale");
        write_sharded(&dir, tensors(3), 16).unwrap();
        assert_eq!(
            files(&dir),
            [
                "model-00001-of-00003.safetensors",
                "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors",
                INDEX_FILE
            ]
        );
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(INDEX_FILE)).unwrap()).unwrap();
        assert_eq!(index["metadata"]["total_size"], 48);
        assert_eq!(
            index["weight_map"]["t1"],
            "model-00002-of-00003.safetensors"
        );
        let loaded = SafetensorsIndex::from_dir(&dir).unwrap();
        assert_eq!(loaded.names(), ["t0", "t1", "t2"]);
        assert_eq!(loaded.read_f32("t2").unwrap(), [8.0, 9.0, 10.0, 11.0]);

        write_sharded(&dir, tensors(3), 32).unwrap();
        assert_eq!(
            files(&dir),
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                INDEX_FILE
            ]
        );
        write_sharded(&dir, tensors(3), 1000).unwrap();
        assert_eq!(files(&dir), [SINGLE_FILE]);
        write_sharded(&dir, tensors(2), 16).unwrap();
        assert_eq!(
            files(&dir),
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                INDEX_FILE
            ]
        );
        assert_eq!(
            SafetensorsIndex::from_dir(&dir).unwrap().names(),
            ["t0", "t1"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Files laconic did not write are never removed: a foreign shard an earlier index names stays
    /// (laconic's own shards of that index go), and a foreign `model.safetensors` that would shadow a
    /// sharded save is an error.
    #[test]
    fn files_laconic_did_not_write_are_kept() {
        let dir = scratch("foreign");
        write_sharded(&dir, tensors(3), 16).unwrap();
        // Another program's shard, with no producer mark, named by the index.
        let foreign = dir.join("model-00003-of-00003.safetensors");
        let bytes = safetensors::serialize(
            [(
                "t2",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0; 4])
                    .unwrap(),
            )],
            None,
        )
        .unwrap();
        std::fs::write(&foreign, &bytes).unwrap();
        write_sharded(&dir, tensors(2), 16).unwrap();
        assert!(foreign.exists(), "a file laconic did not write was removed");
        assert_eq!(
            files(&dir),
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "model-00003-of-00003.safetensors",
                INDEX_FILE
            ]
        );
        // Beside a single file, an index still naming a foreign file stays too.
        write_sharded(&dir, tensors(3), 16).unwrap();
        std::fs::write(&foreign, &bytes).unwrap();
        write_sharded(&dir, tensors(1), 16).unwrap();
        assert_eq!(
            files(&dir),
            ["model-00003-of-00003.safetensors", SINGLE_FILE, INDEX_FILE]
        );

        let dir2 = scratch("foreign-single");
        std::fs::write(dir2.join(SINGLE_FILE), &bytes).unwrap();
        let err = write_sharded(&dir2, tensors(2), 16)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not written by laconic"), "{err}");
        assert_eq!(files(&dir2), [SINGLE_FILE], "nothing written");

        // Another program's index (no producer mark) naming no file that exists stays beside a new
        // single file.
        let dir3 = scratch("foreign-index");
        let foreign_index = r#"{"metadata": {"total_size": 4}, "weight_map": {"t0": "model-00001-of-00002.safetensors"}}"#;
        std::fs::write(dir3.join(INDEX_FILE), foreign_index).unwrap();
        write_sharded(&dir3, tensors(1), 1000).unwrap();
        assert_eq!(files(&dir3), [SINGLE_FILE, INDEX_FILE]);
        std::fs::remove_dir_all(&dir3).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir2).unwrap();
    }
}
