//! A small reader and writer for the safetensors format, sharded or not, converting F32/F16/BF16 to f32.
//!
//! The reader parses the JSON header and reads one tensor at a time with positioned reads, so
//! loading a large checkpoint never holds more than one tensor's bytes beyond the model itself, and
//! needs no memory mapping. Each header is checked as the reference implementation (the
//! `safetensors` crate) checks it, without reading the data: every tensor's byte range matches its
//! dtype and shape, and the ranges tile the data section exactly, in order (no overlap, no gap, no
//! byte left over), so two tensors never share bytes.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Largest header accepted (100 MB, as the reference implementation).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Where a tensor lives and how it is stored.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    /// The file holding it.
    pub path: PathBuf,
    /// Stored dtype (`F32`, `F16`, `BF16`, …).
    pub dtype: String,
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
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
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
        let single = dir.join("model.safetensors");
        let sharded = dir.join("model.safetensors.index.json");
        if single.is_file() {
            return Self::from_files(&[single]);
        }
        if !sharded.is_file() {
            return Err(Error::NoWeights {
                dir: dir.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(&sharded).map_err(|e| Error::io(&sharded, e))?;
        let index: ShardIndex = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: sharded.clone(),
            source,
        })?;
        // A shard is a plain file name inside the folder: `../x` or `/x` would read outside it.
        if let Some((name, file)) = index
            .weight_map
            .iter()
            .find(|(_, file)| !is_plain_file_name(file))
        {
            return Err(Error::Safetensors {
                path: sharded.clone(),
                message: format!(
                    "tensor `{name}` names shard `{file}`, which is not a plain file name in the checkpoint folder"
                ),
            });
        }
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
            for (name, entry) in read_header(path)? {
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

    /// Reads tensor `name` as f32 values in row-major order.
    ///
    /// # Errors
    /// Unknown name, unsupported dtype, read failure.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
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
        decode_f32(&bytes, entry, name)
    }
}

fn decode_f32(bytes: &[u8], entry: &TensorEntry, name: &str) -> Result<Vec<f32>> {
    let values = match entry.dtype.as_str() {
        "F32" => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        "BF16" => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        "F16" => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        other => {
            return Err(Error::UnsupportedDtype {
                name: name.to_string(),
                path: entry.path.clone(),
                dtype: other.to_string(),
            })
        }
    };
    Ok(values)
}

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => return None,
    })
}

fn read_header(path: &Path) -> Result<Vec<(String, TensorEntry)>> {
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
    let mut entries = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        if name == "__metadata__" {
            continue;
        }
        let entry: RawEntry = serde_json::from_value(value)
            .map_err(|e| fail(format!("malformed header entry for `{name}`: {e}")))?;
        let [start, end] = entry.data_offsets;
        let elements: u64 = entry.shape.iter().map(|&d| d as u64).product();
        let expected = dtype_size(&entry.dtype).map(|size| size * elements);
        if start > end || data_start + end > file_len || expected.is_some_and(|n| n != end - start)
        {
            return Err(fail(format!(
                "tensor `{name}` has byte range {start}..{end} inconsistent with dtype `{}`, shape {:?} or the file size",
                entry.dtype, entry.shape
            )));
        }
        entries.push((
            name,
            TensorEntry {
                path: path.to_path_buf(),
                dtype: entry.dtype,
                shape: entry.shape,
                start: data_start + start,
                end: data_start + end,
            },
        ));
    }
    check_layout(&header, file_len - data_start, &fail)?;
    Ok(entries)
}

/// Checks a header's byte ranges with the reference implementation's own validation
/// (`safetensors::tensor::Metadata`): sorted by offset, the ranges must start at 0, each begin where
/// the previous one ends and match its dtype and shape, and together cover the `data_len` bytes after
/// the header exactly. `fail` makes the error that names the file.
fn check_layout(header: &[u8], data_len: u64, fail: &dyn Fn(String) -> Error) -> Result<()> {
    let metadata: safetensors::tensor::Metadata = serde_json::from_slice(header).map_err(|e| {
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

/// Writes f32 tensors `(name, shape, values)` to a safetensors file.
///
/// # Errors
/// When the file cannot be written or a tensor's value count does not match its shape.
pub fn write_f32(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let fail = |message: String| Error::Write {
        path: path.to_path_buf(),
        message,
    };
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape, values) in tensors {
        if shape.iter().product::<usize>() != values.len() {
            return Err(fail(format!(
                "tensor `{name}` has {} values for shape {shape:?}",
                values.len()
            )));
        }
        let end = offset + 4 * values.len() as u64;
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut header = serde_json::to_vec(&header).map_err(|e| fail(e.to_string()))?;
    // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    let write_err = |e: std::io::Error| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    out.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(write_err)?;
    out.write_all(&header).map_err(write_err)?;
    for (_, _, values) in tensors {
        for v in values {
            out.write_all(&v.to_le_bytes()).map_err(write_err)?;
        }
    }
    out.flush().map_err(write_err)?;
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
            dtype: "BF16".into(),
            shape: vec![2],
            start: 0,
            end: 4,
        };
        let mut bytes = half::bf16::from_f32(1.5).to_bits().to_le_bytes().to_vec();
        bytes.extend(half::bf16::from_f32(-0.25).to_bits().to_le_bytes());
        assert_eq!(decode_f32(&bytes, &entry, "t").unwrap(), vec![1.5, -0.25]);
    }
}
