//! Safetensors checkpoints, sharded or not, through HF's `safetensors` crate, dtype-true.
//!
//! The reader parses each header with the crate's types (`TensorInfo`, `Dtype`, `Metadata`) and
//! reads one tensor at a time with positioned reads, so loading a large checkpoint never holds more
//! than one tensor's bytes beyond the model itself, and needs no memory mapping. A tensor comes back
//! in its stored dtype ([`SafetensorsIndex::read_data`]) or converted to f32
//! ([`SafetensorsIndex::read_f32`]). Each header is checked as the reference implementation checks
//! it, without reading the data: every tensor's byte range matches its dtype and shape, and the
//! ranges tile the data section exactly, in order (no overlap, no gap, no byte left over), so two
//! tensors never share bytes.
//!
//! The writer ([`write_tensors`], [`write_sharded`]) serialises with the crate's
//! `serialize_to_file`, each tensor in the dtype it holds, pulling one tensor's bytes at a time.

mod shard;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use burn::tensor::{DType, TensorData};
use safetensors::tensor::{Metadata, TensorInfo};
use serde::Deserialize;

use crate::error::{Error, Result};

pub use safetensors::Dtype;
pub use shard::{write_sharded, DEFAULT_MAX_SHARD_BYTES, INDEX_FILE, SINGLE_FILE};
pub use write::{write_tensors, TensorSource};

// Safetensors stores little-endian values and burn's `TensorData` native-endian ones: the bytes are
// passed through unchanged, which is only right on a little-endian target.
const _: () = assert!(
    cfg!(target_endian = "little"),
    "laconic's safetensors reader and writer assume a little-endian target"
);

/// Largest header accepted (100 MB, as the reference implementation).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Where a tensor lives and how it is stored.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    /// The file holding it.
    pub path: PathBuf,
    /// Stored dtype (`F32`, `F16`, `BF16`, …).
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Absolute byte range in the file.
    pub start: u64,
    /// End of the byte range (exclusive).
    pub end: u64,
}

/// The tensors of a checkpoint: one `model.safetensors` or the shards named by
/// `model.safetensors.index.json`.
#[derive(Debug, Clone, Default)]
pub struct SafetensorsIndex {
    entries: HashMap<String, TensorEntry>,
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

impl SafetensorsIndex {
    /// Indexes the weights of an HF folder (`model.safetensors` or a sharded index).
    ///
    /// # Errors
    /// No weights file; unreadable or malformed files.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let single = dir.join(SINGLE_FILE);
        let sharded = dir.join(INDEX_FILE);
        if single.is_file() {
            return Self::from_files(&[single]);
        }
        if !sharded.is_file() {
            return Err(Error::NoWeights {
                dir: dir.to_path_buf(),
            });
        }
        let index = read_shard_index(&sharded)?;
        let mut shards: Vec<PathBuf> = index.weight_map.values().map(|f| dir.join(f)).collect();
        shards.sort();
        shards.dedup();
        let all = Self::from_files(&shards)?;
        for (name, file) in &index.weight_map {
            if !all.entries.contains_key(name) {
                return Err(Error::Safetensors {
                    path: dir.join(file),
                    message: format!(
                        "tensor `{name}` is listed in `{}` but not in this shard",
                        sharded.display()
                    ),
                });
            }
        }
        Ok(all)
    }

    /// Indexes the given safetensors files.
    ///
    /// # Errors
    /// Unreadable files, malformed headers, a tensor name present in two files.
    pub fn from_files(paths: &[PathBuf]) -> Result<Self> {
        let mut entries = HashMap::new();
        for path in paths {
            for (name, entry) in read_header(path)?.entries {
                if let Some(previous) = entries.insert(name.clone(), entry) {
                    return Err(Error::Safetensors {
                        path: path.clone(),
                        message: format!(
                            "tensor `{name}` also appears in `{}`",
                            previous.path.display()
                        ),
                    });
                }
            }
        }
        Ok(Self { entries })
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.entries.get(name)
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Reads tensor `name` as f32 values in row-major order (F32, or F16/BF16 converted).
    ///
    /// # Errors
    /// Unknown name, unsupported dtype, read failure.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let (entry, bytes) = self.read_bytes(name)?;
        decode_f32(&bytes, entry, name)
    }

    /// Reads tensor `name` in its stored dtype: its bytes as they are in the file, with its shape
    /// and burn's name for the dtype (`F32`, `F16`, `BF16`, `F64`, or a signed or unsigned
    /// integer of 8 to 64 bits).
    ///
    /// # Errors
    /// Unknown name, a dtype burn cannot hold (`BOOL`, 8-bit floats, …), read failure.
    pub fn read_data(&self, name: &str) -> Result<TensorData> {
        let (entry, bytes) = self.read_bytes(name)?;
        let dtype = burn_dtype(entry.dtype).ok_or_else(|| Error::UnsupportedDtype {
            name: name.to_string(),
            path: entry.path.clone(),
            dtype: entry.dtype.to_string(),
            expected: "a float or integer dtype",
        })?;
        Ok(TensorData::from_bytes_vec(
            bytes,
            entry.shape.clone(),
            dtype,
        ))
    }

    /// The entry of tensor `name` and its bytes, read with one positioned read.
    fn read_bytes(&self, name: &str) -> Result<(&TensorEntry, Vec<u8>)> {
        let entry = self.entries.get(name).ok_or_else(|| Error::Safetensors {
            path: PathBuf::from("<index>"),
            message: format!("no tensor `{name}`"),
        })?;
        let mut file = File::open(&entry.path).map_err(|e| Error::io(&entry.path, e))?;
        file.seek(SeekFrom::Start(entry.start))
            .map_err(|e| Error::io(&entry.path, e))?;
        let mut bytes = vec![0u8; (entry.end - entry.start) as usize];
        file.read_exact(&mut bytes)
            .map_err(|e| Error::io(&entry.path, e))?;
        Ok((entry, bytes))
    }
}

/// The `weight_map` of the sharded index `path`, each shard a plain file name in its folder.
///
/// # Errors
/// An unreadable or malformed file, or a shard outside the folder (naming the tensor and shard).
fn read_shard_index(path: &Path) -> Result<ShardIndex> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let index: ShardIndex = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    // A shard is a plain file name inside the folder: `../x` or `/x` would read outside it.
    if let Some((name, file)) = index
        .weight_map
        .iter()
        .find(|(_, file)| !is_plain_file_name(file))
    {
        return Err(Error::Safetensors {
            path: path.to_path_buf(),
            message: format!(
                "tensor `{name}` names shard `{file}`, which is not a plain file name in the checkpoint folder"
            ),
        });
    }
    Ok(index)
}

/// burn's dtype for a stored dtype, where burn has one with the same bytes.
fn burn_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U64 => DType::U64,
        Dtype::U32 => DType::U32,
        Dtype::U16 => DType::U16,
        Dtype::U8 => DType::U8,
        _ => return None,
    })
}

fn decode_f32(bytes: &[u8], entry: &TensorEntry, name: &str) -> Result<Vec<f32>> {
    let values = match entry.dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        other => {
            return Err(Error::UnsupportedDtype {
                name: name.to_string(),
                path: entry.path.clone(),
                dtype: other.to_string(),
                expected: "F32, F16 or BF16",
            })
        }
    };
    Ok(values)
}

/// Bytes of a tensor of `shape` stored as `dtype`, or `None` on overflow or a partial last byte.
fn byte_len(dtype: Dtype, shape: &[usize]) -> Option<u64> {
    let bits = shape
        .iter()
        .try_fold(dtype.bitsize() as u64, |n, &d| n.checked_mul(d as u64))?;
    (bits % 8 == 0).then_some(bits / 8)
}

/// A file's header: its tensors and its `__metadata__`.
pub(crate) struct Header {
    /// Each tensor with its absolute byte range.
    pub(crate) entries: Vec<(String, TensorEntry)>,
    /// The free-form string map under `__metadata__`, if any.
    pub(crate) metadata: Option<HashMap<String, String>>,
}

/// Reads and checks the header of the safetensors file `path` (no tensor data is read).
pub(crate) fn read_header(path: &Path) -> Result<Header> {
    let fail = |message: String| Error::Safetensors {
        path: path.to_path_buf(),
        message,
    };
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes)
        .map_err(|_| fail("file is shorter than the 8-byte header length".into()))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > file_len {
        return Err(fail(format!(
            "header length {header_len} is invalid for a file of {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| Error::io(path, e))?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| fail(format!("malformed header: {e}")))?;
    let data_start = 8 + header_len;
    let mut metadata = None;
    let mut infos = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        if name == "__metadata__" {
            let map = serde_json::from_value(value)
                .map_err(|e| fail(format!("malformed `__metadata__`: {e}")))?;
            metadata = Some(map);
            continue;
        }
        let info: TensorInfo = serde_json::from_value(value)
            .map_err(|e| fail(format!("malformed header entry for `{name}`: {e}")))?;
        let (start, end) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
        if start > end
            || data_start + end > file_len
            || byte_len(info.dtype, &info.shape) != Some(end - start)
        {
            return Err(fail(format!(
                "tensor `{name}` has byte range {start}..{end} inconsistent with dtype `{}`, shape {:?} or the file size",
                info.dtype, info.shape
            )));
        }
        infos.push((name, info));
    }
    let entries = infos
        .iter()
        .map(|(name, info)| {
            let entry = TensorEntry {
                path: path.to_path_buf(),
                dtype: info.dtype,
                shape: info.shape.clone(),
                start: data_start + info.data_offsets.0 as u64,
                end: data_start + info.data_offsets.1 as u64,
            };
            (name.clone(), entry)
        })
        .collect();
    check_layout(infos, file_len - data_start, &fail)?;
    Ok(Header { entries, metadata })
}

/// Checks a header's byte ranges with the reference implementation's own validation
/// (`safetensors::tensor::Metadata`): sorted by offset, the ranges must start at 0, each begin where
/// the previous one ends and match its dtype and shape, and together cover the `data_len` bytes after
/// the header exactly. `fail` makes the error that names the file.
fn check_layout(
    mut tensors: Vec<(String, TensorInfo)>,
    data_len: u64,
    fail: &dyn Fn(String) -> Error,
) -> Result<()> {
    // As the crate's own header parse does: in offset order, the name breaking ties.
    tensors.sort_by(|(a, x), (b, y)| x.data_offsets.cmp(&y.data_offsets).then(a.cmp(b)));
    let metadata = Metadata::new(None, tensors).map_err(|e| {
        fail(format!(
            "{e} (tensor byte ranges must tile the data section in order, without overlap or gap)"
        ))
    })?;
    let covered = metadata.data_len() as u64;
    if covered != data_len {
        return Err(fail(format!(
            "the tensors' byte ranges cover {covered} bytes of a data section of {data_len} bytes"
        )));
    }
    Ok(())
}

/// Whether `name` is one path component naming a file (no separator, not `.` or `..`).
fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !name.contains(['/', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f32 tensors `(name, shape, values)` written with [`write_tensors`].
    fn write_f32(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
        let sources: Vec<_> = tensors
            .iter()
            .map(|(name, shape, values)| {
                let data = TensorData::new(values.clone(), shape.clone());
                (name.clone(), TensorSource::from_data(data))
            })
            .collect();
        write_tensors(path, &sources)
    }

    /// A sharded index may only name files inside its folder: a shard outside it is an error naming
    /// the index, the tensor and the shard, and no file outside is opened.
    #[test]
    fn shards_outside_the_checkpoint_folder_are_rejected() {
        let dir = std::env::temp_dir().join(format!("laconic-st-shards-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_f32(
            &dir.join("inside.safetensors"),
            &[("a".into(), vec![1], vec![1.0])],
        )
        .unwrap();
        for shard in [
            "../../../../etc/passwd",
            "/etc/passwd",
            "sub/inside.safetensors",
            "..",
            "",
        ] {
            let index = serde_json::json!({"weight_map": {"a": shard}});
            std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
            let err = SafetensorsIndex::from_dir(&dir).unwrap_err().to_string();
            assert!(
                err.contains("model.safetensors.index.json")
                    && err.contains("tensor `a`")
                    && err.contains("not a plain file name"),
                "{shard}: {err}"
            );
        }
        let index = serde_json::json!({"weight_map": {"a": "inside.safetensors"}});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        assert_eq!(SafetensorsIndex::from_dir(&dir).unwrap().names(), ["a"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn round_trips_and_rejects_truncated_files() {
        let dir = std::env::temp_dir().join(format!("laconic-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        let tensors = vec![
            ("a".to_string(), vec![2, 2], vec![1.0, -2.0, 3.5, 0.0]),
            ("b.weight".to_string(), vec![3], vec![0.25, 0.5, 0.75]),
        ];
        write_f32(&path, &tensors).unwrap();
        let index = SafetensorsIndex::from_dir(&dir).unwrap();
        assert_eq!(index.names(), ["a", "b.weight"]);
        assert_eq!(index.read_f32("a").unwrap(), vec![1.0, -2.0, 3.5, 0.0]);
        assert_eq!(index.get("b.weight").unwrap().shape, vec![3]);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let err = SafetensorsIndex::from_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("b.weight"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A safetensors file with the given header and data section, as a hostile writer could make it.
    fn write_raw(path: &Path, header: serde_json::Value, data: &[u8]) {
        let header = header.to_string().into_bytes();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header);
        bytes.extend(data);
        std::fs::write(path, bytes).unwrap();
    }

    /// Issue 32: two tensors sharing one byte range loaded silently (and generated garbage). As
    /// the reference implementation does, ranges that overlap, leave a gap or leave bytes over are
    /// refused with an error naming the file (and the tensor, where one is at fault).
    #[test]
    fn byte_ranges_that_do_not_tile_the_data_are_refused() {
        let dir = std::env::temp_dir().join(format!("laconic-st-tiling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        let tensor = |start: u64, end: u64| serde_json::json!({"dtype": "F32", "shape": [2], "data_offsets": [start, end]});
        let cases = [
            (
                "shared",
                tensor(0, 8),
                tensor(0, 8),
                8,
                "invalid offset for tensor",
            ),
            (
                "overlapping",
                tensor(0, 8),
                tensor(4, 12),
                12,
                "invalid offset for tensor",
            ),
            (
                "gapped",
                tensor(0, 8),
                tensor(12, 20),
                20,
                "invalid offset for tensor",
            ),
            (
                "left over",
                tensor(0, 8),
                tensor(8, 16),
                20,
                "cover 16 bytes of a data section of 20",
            ),
        ];
        for (case, a, b, data_len, expected) in cases {
            write_raw(
                &path,
                serde_json::json!({"a": a, "b": b}),
                &vec![0x33; data_len],
            );
            let err = SafetensorsIndex::from_files(std::slice::from_ref(&path))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&path.display().to_string()) && err.contains(expected),
                "{case}: {err}"
            );
        }
        write_raw(
            &path,
            serde_json::json!({"b": tensor(8, 16), "a": tensor(0, 8), "__metadata__": {"k": "v"}}),
            &[0x33; 16],
        );
        let index = SafetensorsIndex::from_files(std::slice::from_ref(&path)).unwrap();
        assert_eq!(index.names(), ["a", "b"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn decodes_half_precision() {
        let entry = TensorEntry {
            path: "x".into(),
            dtype: Dtype::BF16,
            shape: vec![2],
            start: 0,
            end: 4,
        };
        let mut bytes = half::bf16::from_f32(1.5).to_bits().to_le_bytes().to_vec();
        bytes.extend(half::bf16::from_f32(-0.25).to_bits().to_le_bytes());
        assert_eq!(decode_f32(&bytes, &entry, "t").unwrap(), vec![1.5, -0.25]);
    }
}
